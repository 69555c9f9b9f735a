import pytest
from django.test import Client


@pytest.mark.django_db
def test_the_openapi_schema_describes_the_api_and_its_bearer_tokens() -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")

    schema = response.json()
    assert response.status_code == 200
    assert "/api/v1/me/" in schema["paths"]
    assert "/api/v1/notifications/{id}/read/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


@pytest.mark.django_db
def test_the_api_docs_work_without_internet() -> None:
    page = Client().get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn." not in page
    asset = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
    assert asset.status_code == 200
