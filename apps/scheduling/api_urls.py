from rest_framework.routers import SimpleRouter

from .api import AppointmentTypeViewSet, AppointmentViewSet, SlotViewSet

router = SimpleRouter()
router.register("appointment-types", AppointmentTypeViewSet, basename="appointment-type")
router.register("slots", SlotViewSet, basename="slot")
router.register("appointments", AppointmentViewSet, basename="appointment")
urlpatterns = router.urls
