"""Pages of video consultations; the room's JSON endpoints come from urls_api.py."""

from django.urls import include, path

from . import views, views_lists
from .urls_api import download_urlpatterns

app_name = "teleconsult"

urlpatterns = [
    path("consult/check/", views.device_check, name="check"),
    path("consult/appointment/<int:pk>/", views.join_appointment, name="appointment"),
    path("consult/urgent/<int:patient_pk>/", views.open_urgent_room, name="urgent"),
    path("consult/join/<str:token>/", views.guest_join, name="join"),
    *download_urlpatterns,
    path("consult/<str:room>/", views.room_page, name="room"),
    path("consult/<str:room>/end/", views.end_call, name="end"),
    path("consult/<str:room>/note/", views.write_note, name="note"),
    path("consult/<str:room>/summary/", views_lists.summary, name="summary"),
    path("consult/<str:room>/", include("apps.teleconsult.urls_api")),
    path("clinic/consultations/", views_lists.consultations, name="consultations"),
]
