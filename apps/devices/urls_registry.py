"""The device registry's pages: per patient and clinic-wide (clinic), my devices (portal)."""

from django.urls import path

from .views import registry

P = "clinic/patients/<int:pid>/devices/"

urlpatterns = [
    path("clinic/devices/", registry.registry, name="registry"),
    path(P, registry.patient_devices, name="patient_devices"),
    path(P + "<int:device_pk>/retire/", registry.retire_device, name="retire_device"),
    path("record/devices/", registry.my_devices, name="my_devices"),
]
