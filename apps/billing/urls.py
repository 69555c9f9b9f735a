"""Pages of billing: the billing staff's workspace (unbilled charges, invoices, payments, aging,
export), the clinician's review of proposed charges, and the patient's invoices in the portal."""

from django.urls import path

from . import views, views_clinic, views_invoices, views_payments, views_portal

app_name = "billing"

urlpatterns = [
    # Billing staff.
    path("billing/", views.workspace, name="workspace"),
    path("billing/generate/", views.generate, name="generate"),
    path("billing/runs/", views.start_run, name="start_run"),
    path("billing/runs/<int:pk>/", views.run_page, name="run"),
    path("billing/runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("billing/invoices/", views_invoices.invoice_list, name="invoices"),
    path("billing/invoices/<int:pk>/", views_invoices.invoice_page, name="invoice"),
    path("billing/invoices/<int:pk>/pdf/", views_invoices.invoice_pdf, name="invoice_pdf"),
    path("billing/invoices/<int:pk>/send/", views_invoices.send_to_patient, name="send"),
    path("billing/invoices/<int:pk>/claim/", views_invoices.send_claim, name="claim"),
    path(
        "billing/invoices/<int:pk>/payment/", views_invoices.record_payment, name="invoice_payment"
    ),
    path("billing/invoices/<int:pk>/credit/", views_invoices.credit_note, name="credit_note"),
    path(
        "billing/credit-notes/<int:pk>/pdf/",
        views_invoices.credit_note_pdf,
        name="credit_note_pdf",
    ),
    path("billing/payments/", views_payments.payments, name="payments"),
    path("billing/payments/import/", views_payments.import_file, name="import_payments"),
    path("billing/payments/<int:pk>/assign/", views_payments.assign, name="assign_payment"),
    path("billing/aging/", views_payments.aging_report, name="aging"),
    path("billing/export.csv", views_payments.export, name="export"),
    # Clinicians.
    path("clinic/charges/", views_clinic.charges_review, name="charges_review"),
    path(
        "clinic/charges/encounter/<int:pk>/",
        views_clinic.encounter_charges,
        name="encounter_charges",
    ),
    path("clinic/charges/device/<int:pk>/", views_clinic.device_charges, name="device_charges"),
    # The patient portal.
    path("invoices/", views_portal.my_invoices, name="my_invoices"),
    path("invoices/<int:pk>/", views_portal.my_invoice, name="my_invoice"),
    path("invoices/<int:pk>/pdf/", views_portal.my_invoice_pdf, name="my_invoice_pdf"),
    path(
        "invoices/credit-notes/<int:pk>/pdf/",
        views_portal.my_credit_note_pdf,
        name="my_credit_note_pdf",
    ),
]
