"""REST API of care coordination under /api/v1/ (apps/care/api.py)."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from .api import (
    CarePlanViewSet,
    DoseViewSet,
    ProposalViewSet,
    QuestionnaireRequestViewSet,
)
from .api_tasks import TaskViewSet

router = SimpleRouter()
router.register("care-plans", CarePlanViewSet, basename="care-plan")
router.register("tasks", TaskViewSet, basename="task")
router.register(
    "questionnaire-requests", QuestionnaireRequestViewSet, basename="questionnaire-request"
)
router.register("doses", DoseViewSet, basename="dose")
router.register("proposals", ProposalViewSet, basename="proposal")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
