"""URLs of the record: prescriptions (included by apps/records/urls.py)."""

from django.urls import URLPattern, path

from .views import prescriptions as views

P = "clinic/patients/<int:pid>/"

urlpatterns: list[URLPattern] = [
    path(P + "prescriptions/", views.prescriptions_list, name="prescriptions"),
    path(P + "prescriptions/new/", views.prescription_new, name="prescription_new"),
    path("prescriptions/<int:rx>/", views.prescription_detail, name="prescription"),
    path("prescriptions/<int:rx>/pdf/", views.prescription_pdf_view, name="prescription_pdf"),
    path("prescriptions/<int:rx>/cancel/", views.cancel, name="prescription_cancel"),
    path("prescriptions/<int:rx>/renew/", views.renew, name="prescription_renew"),
    # Drafts written through the FHIR API: reviewed, then signed or discarded.
    path("prescriptions/<int:rx>/draft/", views.draft, name="prescription_draft"),
    path(
        "prescriptions/<int:rx>/draft/lines/<int:line>/",
        views.draft_line,
        name="prescription_draft_line",
    ),
    path(
        "prescriptions/<int:rx>/draft/lines/<int:line>/remove/",
        views.remove_draft_line,
        name="prescription_draft_line_remove",
    ),
    path("prescriptions/<int:rx>/discard/", views.discard_draft, name="prescription_discard"),
    path("record/prescriptions/", views.prescriptions_list, name="my_prescriptions"),
    # Public (no sign-in): the address in the QR code of the printed prescription.
    path("rx/<str:token>/", views.verify, name="prescription_verify"),
]
