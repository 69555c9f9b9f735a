"""The patient's booking pages, and the appointment page shared with the care team."""

from django.urls import path

from .views import patient_appointments, patient_booking

urlpatterns = [
    path("appointments/", patient_appointments.my_appointments, name="my_appointments"),
    path("appointments/book/", patient_booking.book, name="book"),
    path("appointments/waiting-list/", patient_appointments.waiting_list, name="waiting_list"),
    path("appointments/<int:pk>/", patient_appointments.appointment_detail, name="appointment"),
    path("appointments/<int:pk>/move/", patient_booking.reschedule, name="reschedule"),
]
