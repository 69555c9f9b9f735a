"""Care coordination pages: tasks."""

from django.urls import URLPattern, path

from .views_pending import pending

urlpatterns: list[URLPattern] = [
    path("clinic/tasks/", pending, name="my_tasks"),
    path("clinic/tasks/<int:pk>/", pending, name="task"),
    path("clinic/patients/<int:patient_pk>/tasks/", pending, name="patient_tasks"),
]
