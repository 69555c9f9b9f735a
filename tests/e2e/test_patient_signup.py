"""A new patient signs up, confirms the email, signs in and switches language."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import mail
from django.utils import translation
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, User
from tests.e2e.conftest import sign_in_with_password, submit

pytestmark = pytest.mark.e2e

EMAIL = "claire.martin@example.test"
PASSWORD = "une phrase de passe solide"
CONFIRMATION_LINK = re.compile(r"https?://\S+/accounts/confirm-email/[^/\s]+/")


def sign_up(page: Page) -> None:
    page.goto("/")
    page.locator("main a[href='/accounts/signup/']").click()
    expect(page).to_have_url(re.compile(r"/accounts/signup/$"))
    page.locator("input[name=email]").fill(EMAIL)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    submit(page)
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))


def test_a_new_patient_signs_up_confirms_the_email_and_signs_in(
    page: Page, live_server: Any
) -> None:
    # given a visitor who signs up from the welcome page
    sign_up(page)
    patient = User.objects.get(email=EMAIL)
    assert patient.role == Role.PATIENT
    assert not EmailAddress.objects.get(user=patient).verified

    # when they open the link of the verification email and confirm
    (message,) = mail.outbox
    assert message.to == [EMAIL]
    link = CONFIRMATION_LINK.search(message.body)
    assert link, message.body
    page.goto(link.group(0))
    submit(page)

    # then the address is verified and they can sign in to the portal home
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    assert EmailAddress.objects.get(user=patient).verified
    sign_in_with_password(page, EMAIL, PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("body")).to_have_class(re.compile(r"\bportal\b"))
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("[data-notification-list]")).to_be_visible()
    expect(page.locator("header form[action='/accounts/logout/'] button")).to_be_visible()


def test_a_patient_cannot_sign_in_before_confirming_the_email(page: Page) -> None:
    # given a patient who signed up but did not open the verification email
    sign_up(page)

    # when they try to sign in
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(EMAIL)
    page.locator("input[name=password]").fill(PASSWORD)
    submit(page)

    # then they are asked to confirm the address and stay signed out
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    page.goto("/")
    expect(page.locator("header a[href='/accounts/login/']")).to_be_visible()
    expect(page.locator("header form[action='/accounts/logout/']")).to_have_count(0)


def sign_out_label(language: str) -> str:
    with translation.override(language):
        return translation.gettext("Sign out")


def test_a_patient_switches_language_with_the_footer_form(
    page: Page, live_server: Any, make_user: Callable[..., User]
) -> None:
    # given a patient on the portal home, in French by default
    labels = {language: sign_out_label(language) for language in ("fr", "en", "de")}
    assert len(set(labels.values())) == 3, f"catalogues not compiled (make messages): {labels}"
    patient = make_user(Role.PATIENT)
    sign_in_with_password(page, patient.email)
    expect(page).to_have_url(f"{live_server.url}/")
    html = page.locator("html")
    sign_out = page.locator("header form[action='/accounts/logout/'] button")
    expect(html).to_have_attribute("lang", "fr")
    expect(sign_out).to_have_text(labels["fr"])

    for language in ("en", "de", "fr"):
        # when they choose a language in the footer and submit
        page.locator("select#language-select").select_option(language)
        page.locator("footer form.language-form button[type=submit]").click()

        # then the same page comes back in that language, and the choice is remembered
        expect(html).to_have_attribute("lang", language)
        expect(page).to_have_url(f"{live_server.url}/")
        expect(sign_out).to_have_text(labels[language])
        expect(page.locator("select#language-select")).to_have_value(language)
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies.get(settings.LANGUAGE_COOKIE_NAME) == language
