"""URLs of the JSON endpoints, included by urls.py under "consult/<str:room>/" (namespace
`teleconsult`); `download_urlpatterns` carry their full path (outside the room prefix)."""

from django.urls import URLPattern, path

from . import views_api

urlpatterns: list[URLPattern] = [
    path("chat/", views_api.chat, name="chat"),
    path("chat/<int:message_id>/file/", views_api.chat_file, name="chat_file"),
    path("consent/", views_api.consent, name="consent"),
    path("recordings/", views_api.recording_start, name="recording_start"),
    path(
        "recordings/<int:recording_id>/chunks/",
        views_api.recording_chunk,
        {"seq": None},
        name="recording_chunks",
    ),
    path(
        "recordings/<int:recording_id>/chunks/<int:seq>/",
        views_api.recording_chunk,
        name="recording_chunk",
    ),
    path("recordings/<int:recording_id>/stop/", views_api.recording_stop, name="recording_stop"),
    path("snapshot/", views_api.snapshot, name="snapshot"),
    path("invites/", views_api.invites, name="invites"),
    path("invites/<int:invite_id>/revoke/", views_api.invite_revoke, name="invite_revoke"),
]

download_urlpatterns: list[URLPattern] = [
    path(
        "consult/recordings/<int:recording_id>/",
        views_api.recording_download,
        name="recording_download",
    ),
]
