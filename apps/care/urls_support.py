"""Care coordination pages: decision support (the chart's tab, the clinic-wide list, decisions
on a proposal, and the fragments live updates fetch)."""

from django.urls import URLPattern, path

from . import views_support as views

urlpatterns: list[URLPattern] = [
    path(
        "clinic/patients/<int:patient_pk>/decision-support/",
        views.patient_proposals,
        name="patient_proposals",
    ),
    path(
        "clinic/patients/<int:patient_pk>/decision-support/check/",
        views.patient_proposals_check,
        name="patient_proposals_check",
    ),
    path("clinic/decision-support/", views.proposals, name="proposals"),
    path("clinic/decision-support/<int:pk>/", views.proposal_fragment, name="proposal"),
    path("clinic/decision-support/<int:pk>/accept/", views.proposal_accept, name="proposal_accept"),
    path(
        "clinic/decision-support/<int:pk>/dismiss/", views.proposal_dismiss, name="proposal_dismiss"
    ),
]
