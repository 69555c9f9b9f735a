import pytest
from django.test import Client


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
