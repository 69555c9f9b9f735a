"""Care coordination pages: plans."""

from django.urls import URLPattern, path

from . import views_plans as views

urlpatterns: list[URLPattern] = [
    path("care/plans/<int:pk>/", views.plan, name="plan"),
    path("care/plans/<int:pk>/sections/", views.plan_sections, name="plan_sections"),
    path("care/plans/<int:pk>/status/", views.plan_status, name="plan_status"),
    path("care/plans/<int:pk>/follow-up/", views.follow_up, name="plan_follow_up"),
    path("care/plans/<int:pk>/goals/", views.goal_add, name="goal_add"),
    path("care/plans/<int:pk>/activities/", views.activity_add, name="activity_add"),
    path(
        "care/plans/<int:pk>/goals/<int:goal_pk>/status/",
        views.goal_status,
        name="goal_status",
    ),
    path(
        "care/plans/<int:pk>/activities/<int:activity_pk>/status/",
        views.activity_status,
        name="activity_status",
    ),
    path("clinic/patients/<int:patient_pk>/care-plans/", views.patient_plans, name="patient_plans"),
    path("clinic/patients/<int:patient_pk>/care-plans/new/", views.plan_new, name="plan_new"),
]
