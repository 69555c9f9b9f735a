"""Care coordination pages. Each area has its own urls module (plans, tasks, meetings,
follow-up, decision support); this one joins them under the `care` namespace."""

from __future__ import annotations

from . import urls_followup, urls_meetings, urls_plans, urls_support, urls_tasks

app_name = "care"

urlpatterns = [
    *urls_plans.urlpatterns,
    *urls_tasks.urlpatterns,
    *urls_meetings.urlpatterns,
    *urls_followup.urlpatterns,
    *urls_support.urlpatterns,
]
