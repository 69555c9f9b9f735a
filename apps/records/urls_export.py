"""URLs of the record: export (included by apps/records/urls.py)."""

from django.urls import path

from .views import export as views

urlpatterns = [
    path("record/export/", views.export_page, name="export"),
    path("record/export/bundle.json", views.export_bundle, name="export_bundle"),
    path("record/export/summary.pdf", views.export_pdf, name="export_pdf"),
]
