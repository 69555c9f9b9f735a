from django.urls import URLPattern, URLResolver, path

from .views import feeds, follow_ups

urlpatterns: list[URLPattern | URLResolver] = [
    path("calendar/<str:token>.ics", feeds.feed, name="feed"),
    path("account/calendar/", feeds.feed_settings, name="feed_settings"),
    path("appointments/<int:pk>/calendar.ics", feeds.appointment_ics, name="appointment_ics"),
    path("clinic/follow-ups/", follow_ups.follow_ups, name="follow_ups"),
]
