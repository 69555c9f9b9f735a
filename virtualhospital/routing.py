"""WebSocket routes of every app, gathered in one place."""

from django.urls import path

from apps.messaging.consumers import ThreadConsumer
from apps.notifications.consumers import NotificationConsumer
from apps.teleconsult.consumers import ConsultConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/consult/<str:room>/", ConsultConsumer.as_asgi()),
    path("ws/messages/<int:thread>/", ThreadConsumer.as_asgi()),
]
