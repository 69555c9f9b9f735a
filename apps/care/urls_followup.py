"""Care coordination pages: follow-up (medication reminders, questionnaires, surveys)."""

from django.urls import URLPattern, path

from . import views_followup as views

urlpatterns: list[URLPattern] = [
    path("care/", views.my_care, name="my_care"),
    path("care/doses/<int:pk>/", views.dose, name="dose"),
    path("care/doses/<int:pk>/answer/", views.dose_answer, name="dose_answer"),
    path("care/questionnaires/<int:pk>/", views.questionnaire, name="questionnaire"),
    path("care/reminders/", views.preferences, name="reminder_preferences"),
    path(
        "clinic/patients/<int:patient_pk>/follow-up/",
        views.patient_followup,
        name="patient_followup",
    ),
    path(
        "clinic/questionnaire-responses/<int:pk>/",
        views.followup_response,
        name="followup_response",
    ),
]
