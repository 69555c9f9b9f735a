"""Pages of secure messaging: the patient's conversations, the clinic's triage inbox, a
patient's conversations in the chart, the fragments the live updates fetch, and the files."""

from django.urls import path

from . import views, views_clinic

app_name = "messaging"

urlpatterns = [
    # The patient portal.
    path("messages/", views.thread_list, name="thread_list"),
    path("messages/new/", views.thread_new, name="thread_new"),
    path("messages/<int:pk>/", views.thread_page, name="thread"),
    path("messages/<int:pk>/reply/", views.post_reply, name="post"),
    path("messages/<int:pk>/read/", views.mark_read, name="mark_read"),
    path("messages/<int:pk>/row/", views.thread_row, name="row"),
    path("messages/message/<int:pk>/", views.message_fragment, name="message"),
    path("messages/<int:pk>/status/", views.status_fragment, name="status"),
    path("messages/files/<int:pk>/", views.attachment, name="attachment"),
    # The clinic.
    path("clinic/messages/", views_clinic.inbox, name="inbox"),
    path("clinic/messages/<int:pk>/", views_clinic.clinic_thread, name="clinic_thread"),
    path("clinic/messages/<int:pk>/assign/", views_clinic.assign, name="assign"),
    path("clinic/messages/<int:pk>/urgency/", views_clinic.set_urgency, name="urgency"),
    path("clinic/messages/<int:pk>/resolve/", views_clinic.resolve, name="resolve"),
    path("clinic/messages/<int:pk>/reopen/", views_clinic.reopen, name="reopen"),
    path("clinic/messages/files/<int:pk>/file/", views_clinic.file_attachment, name="file"),
    path(
        "clinic/patients/<int:patient_pk>/messages/",
        views_clinic.patient_threads,
        name="patient_threads",
    ),
    path(
        "clinic/patients/<int:patient_pk>/messages/new/",
        views_clinic.new_staff_thread,
        name="staff_thread_new",
    ),
]
