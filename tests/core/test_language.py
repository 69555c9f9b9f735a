import pytest
from django.test import Client

from apps.accounts.models import User
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_french_is_the_default_whatever_the_browser_says() -> None:
    response = Client().get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")

    assert response.headers["Content-Language"] == "fr"
    assert '<html lang="fr"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "de"])
def test_the_switcher_changes_the_language(language: str) -> None:
    client = Client()

    client.post("/i18n/setlang/", {"language": language, "next": "/"})
    response = client.get("/")

    assert response.headers["Content-Language"] == language
    assert f'<html lang="{language}"' in response.content.decode()


def test_footer_switch_is_saved_on_the_account_and_survives_login(
    patient: User,
) -> None:
    client = Client()
    client.force_login(patient, backend="django.contrib.auth.backends.ModelBackend")
    client.post("/i18n/setlang/", {"language": "de", "next": "/"})
    patient.refresh_from_db()
    assert patient.preferred_language == "de"
    client.logout()
    client.post("/accounts/login/", {"login": patient.email, "password": PASSWORD})
    assert client.cookies["django_language"].value == "de"
