from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.conftest import in_ci


def test_healthz_answers_without_touching_services(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_every_configured_service(client: Client, settings: Any) -> None:
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert body["checks"]["channel_layer"] == "ok"
    if settings.REDIS_URL:
        assert body["checks"]["broker"] == "ok"
    if in_ci():
        # CI must exercise the real services, not the embedded fallbacks.
        assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
        assert settings.REDIS_URL


@pytest.mark.django_db
def test_readyz_names_the_failing_part(client: Client, settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
        }
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]
    assert response.json()["checks"]["database"] == "ok"
