from django.urls import path

from .api import ingest_view

urlpatterns = [path("devices/ingest", ingest_view, name="devices-ingest")]
