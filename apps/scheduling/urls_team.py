"""Clinic pages of scheduling: the team agenda, booking for a patient, availability."""

from django.urls import URLPattern, URLResolver, path

from .views.team_agenda import team_agenda
from .views.team_availability import availability
from .views.team_book import staff_book

urlpatterns: list[URLPattern | URLResolver] = [
    path("clinic/agenda/", team_agenda, name="team_agenda"),
    path("clinic/agenda/book/", staff_book, name="staff_book"),
    path("clinic/availability/", availability, name="availability"),
]
