from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("clinic/", views.clinic_home, name="clinic_home"),
]
