from django.urls import path  # noqa: F401 - the routes follow

urlpatterns: list = []  # type: ignore[type-arg]
