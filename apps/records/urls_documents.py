"""URLs of the record: documents (included by apps/records/urls.py)."""

from django.urls import URLPattern, path

from .views.documents import documents_list, download, thumbnail, upload

P = "clinic/patients/<int:pid>/"

urlpatterns: list[URLPattern] = [
    path(P + "documents/", documents_list, name="documents"),
    path(P + "documents/upload/", upload, name="document_upload"),
    path("record/documents/", documents_list, name="my_documents"),
    path("record/documents/upload/", upload, name="my_document_upload"),
    path("documents/<int:did>/download/", download, name="document_download"),
    path("documents/<int:did>/thumbnail/", thumbnail, name="document_thumbnail"),
]
