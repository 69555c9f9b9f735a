"""A new patient signs up, confirms the email, signs in and switches language."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, User
from tests.e2e.conftest import check_accessibility

pytestmark = pytest.mark.e2e

EMAIL = "claire.martin@example.test"
PASSWORD = "une phrase de passe solide"


def test_a_new_patient_signs_up_verifies_signs_in_and_switches_language(page: Page) -> None:
    # given the welcome page, in French by default
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    check_accessibility(page)

    # when the patient signs up
    page.goto("/accounts/signup/")
    check_accessibility(page)
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/accounts/confirm-email/")

    # then a verification email arrives; its link confirms the address
    assert User.objects.get(email=EMAIL).role == Role.PATIENT
    (message,) = mail.outbox
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body)
    assert link, message.body
    page.goto(link.group(0))
    page.locator("main form button[type=submit]").click()

    # and the patient signs in and lands on the portal home
    page.goto("/accounts/login/")
    check_accessibility(page)
    page.fill("input[name=login]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(lambda url: url.endswith("/"))
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("[data-notification-list]")).to_be_visible()
    check_accessibility(page)

    for language in ("en", "de", "fr"):
        page.select_option("#language-select", language)
        page.locator(".language-form button[type=submit]").click()
        expect(page.locator("html")).to_have_attribute("lang", language)
    assert any(c["name"] == "django_language" for c in page.context.cookies())

    for path in (
        "/notifications/",
        "/notifications/preferences/",
        "/accounts/security/",
        "/accounts/profile/",
    ):
        page.goto(path)
        check_accessibility(page)
