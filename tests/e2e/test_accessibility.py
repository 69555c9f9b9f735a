"""Every page passes axe-core (no serious or critical violation) and fits a 360 px screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils.timezone import now
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from tests.conftest import add_totp, signed_in_client, verified_client
from tests.e2e.conftest import axe_violations, check_accessibility, share_session, submit

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 900}

# (who is looking, page): each page as the person who normally sees it.
PAGES = [
    ("visitor", "/"),
    ("visitor", "/accounts/login/"),
    ("visitor", "/accounts/signup/"),
    ("patient", "/"),
    ("patient", "/notifications/"),
    ("patient", "/notifications/preferences/"),
    ("patient", "/accounts/security/"),
    ("patient", "/accounts/profile/"),
    ("staff before the code", "/accounts/2fa/verify/"),
    ("staff without an authenticator", "/accounts/2fa/setup/"),
    ("staff", "/clinic/"),
    ("staff", "/notifications/"),
    ("staff", "/accounts/security/"),
    ("staff", "/clinic/monitoring/"),
    ("staff", "/clinic/alerts/"),
    ("staff", "/clinic/devices/"),
    ("staff", "/clinic/agenda/"),
    ("staff", "/clinic/agenda/book/"),
    ("staff", "/clinic/availability/"),
    ("staff", "/clinic/follow-ups/"),
    ("staff", "/account/calendar/"),
    ("patient", "/account/calendar/"),
]


def client_for(
    who: str, make_user: Callable[..., User], organization: Organization
) -> Client | None:
    if who == "visitor":
        return None
    if who == "patient":
        user = make_user(Role.PATIENT)
    else:
        user = make_user(Role.PHYSICIAN, organization=organization)
    # A read and an unread entry, one with a link, so lists are checked with content.
    user.notifications.create(
        kind="announcement", title="Bienvenue", body="Votre espace est prêt.", read_at=now()
    )
    user.notifications.create(
        kind="message", title="Nouveau message de l'équipe soignante", link="/notifications/"
    )
    if who == "staff":
        return verified_client(user)
    if who == "staff before the code":
        add_totp(user)
    return signed_in_client(user)


@pytest.mark.parametrize("language", ["fr", "de", "en"])
@pytest.mark.parametrize(("who", "path"), PAGES)
def test_page_is_accessible_and_fits_a_phone(
    page: Page,
    live_server: Any,
    make_user: Callable[..., User],
    organization: Organization,
    who: str,
    path: str,
    language: str,
) -> None:
    # given the person who sees this page, in this language, on a 360 px phone
    client = client_for(who, make_user, organization)
    if client is not None:
        share_session(page, client, live_server.url)
    page.context.add_cookies(
        [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url}]
    )

    # when they open it
    response = page.goto(path)

    # then it is that page (no redirect), it passes axe-core and does not scroll sideways
    assert response is not None and response.status == 200
    expect(page).to_have_url(f"{live_server.url}{path}")
    expect(page.locator("html")).to_have_attribute("lang", language)
    check_accessibility(page)

    # and it passes axe-core on a desktop screen too (the navigation lays out differently)
    page.set_viewport_size(DESKTOP)
    violations = axe_violations(page)
    assert not violations, f"{page.url} at {DESKTOP['width']} px:\n" + "\n".join(violations)


def test_form_errors_are_accessible(page: Page, make_user: Callable[..., User]) -> None:
    # given a patient who mistypes the password
    patient = make_user(Role.PATIENT)
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(patient.email)
    page.locator("input[name=password]").fill("not the password")

    # when they submit the form
    submit(page)

    # then the error is shown, and the page with it is still accessible
    expect(page.locator("main form .errorlist, main form [role=alert]").first).to_be_visible()
    check_accessibility(page)

    # and a sign-up whose passwords differ too
    page.goto("/accounts/signup/")
    page.locator("input[name=email]").fill("new.patient@example.test")
    page.locator("input[name=password1]").fill("une phrase de passe solide")
    page.locator("input[name=password2]").fill("une autre phrase de passe")
    submit(page)
    expect(page.locator("main form .errorlist, main form [role=alert]").first).to_be_visible()
    check_accessibility(page)
