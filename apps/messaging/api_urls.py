from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import ThreadViewSet, attachment_file, unread

router = SimpleRouter()
router.register("threads", ThreadViewSet, basename="thread")
urlpatterns = [
    *router.urls,
    path("messaging/unread/", unread, name="messaging-unread"),
    path("messaging/files/<int:pk>/", attachment_file, name="messaging-file"),
]
