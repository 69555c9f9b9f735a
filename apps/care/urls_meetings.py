"""Care coordination pages: multidisciplinary meetings."""

from django.urls import URLPattern, path

from . import views_meetings as views

M = "clinic/meetings/<int:pk>/"
C = "clinic/meetings/cases/<int:pk>/"

urlpatterns: list[URLPattern] = [
    path("clinic/meetings/", views.meetings, name="meetings"),
    path("clinic/meetings/new/", views.meeting_new, name="meeting_new"),
    path(M, views.meeting, name="meeting"),
    path(M + "live/", views.meeting_live, name="meeting_live"),
    path(M + "edit/", views.meeting_edit, name="meeting_edit"),
    path(M + "cancel/", views.meeting_cancel, name="meeting_cancel"),
    path(M + "start/", views.meeting_start, name="meeting_start"),
    path(M + "close/", views.meeting_close, name="meeting_close"),
    path(M + "participants/", views.participant_add, name="meeting_participant_add"),
    path(M + "participants/remove/", views.participant_remove, name="meeting_participant_remove"),
    path(M + "attendance/", views.attendance, name="meeting_attendance"),
    path(M + "cases/", views.case_add, name="meeting_case_add"),
    path(M + "video/", views.meeting_video, name="meeting_video"),
    path(C, views.case_fragment, name="meeting_case"),
    path(C + "move/", views.case_move, name="meeting_case_move"),
    path(C + "summary/", views.case_summary, name="meeting_case_summary"),
    path(C + "decision/", views.case_decision, name="meeting_decision"),
    path(C + "sign/", views.case_sign, name="meeting_sign"),
]
