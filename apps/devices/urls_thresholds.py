"""A patient's threshold rules (clinic): list and add, edit, pause or resume, apply defaults."""

from django.urls import path

from .views import thresholds

P = "clinic/patients/<int:pid>/thresholds/"

urlpatterns = [
    path(P, thresholds.thresholds, name="thresholds"),
    path(P + "defaults/", thresholds.threshold_apply, name="threshold_apply"),
    path(P + "<int:rule_id>/edit/", thresholds.threshold_edit, name="threshold_edit"),
    path(P + "<int:rule_id>/active/", thresholds.threshold_active, name="threshold_active"),
]
