from django.urls import include, path

from .views import chart

app_name = "records"

P = "clinic/patients/<int:pid>/"

urlpatterns = [
    # Clinic (care team and emergency access)
    path("clinic/patients/", chart.my_patients, name="my_patients"),
    path("clinic/emergency-access/", chart.emergency_search, name="emergency_search"),
    path(P, chart.summary, name="chart"),
    path(P + "results/", chart.results, name="results"),
    path(P + "reports/", chart.reports, name="reports"),
    path(P + "notes/", chart.notes, name="notes"),
    path(P + "notes/new/", chart.note_new, name="note_new"),
    path(P + "notes/<int:nid>/amend/", chart.note_amend, name="note_amend"),
    path(P + "timeline/", chart.timeline, name="timeline"),
    path(P + "care-team/", chart.care_team, name="care_team"),
    path(P + "emergency-access/", chart.break_glass, name="break_glass"),
    path("clinic/observations/<int:oid>/", chart.observation, name="observation"),
    # Patient portal: the signed-in patient's own record
    path("record/", chart.summary, name="my_record"),
    path("record/results/", chart.results, name="my_results"),
    path("record/reports/", chart.reports, name="my_reports"),
    path("record/timeline/", chart.timeline, name="my_timeline"),
    path("record/access-log/", chart.access_log, name="access_log"),
    path("record/observations/<int:oid>/", chart.observation, name="my_observation"),
    path("", include("apps.records.urls_documents")),
    path("", include("apps.records.urls_prescriptions")),
    path("", include("apps.records.urls_export")),
]
