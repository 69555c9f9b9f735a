"""Staff sign in with a password, then a TOTP code, before seeing the clinic."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, User
from apps.accounts.services import BACKUP_CODE_COUNT
from tests.conftest import add_totp, current_code
from tests.e2e.conftest import check_accessibility, sign_in_with_password, submit

pytestmark = pytest.mark.e2e

VERIFY = re.compile(r"/accounts/2fa/verify/(\?|$)")
SETUP = re.compile(r"/accounts/2fa/setup/(\?|$)")


def code_from_displayed_key(key: str) -> str:
    """What an authenticator app shows for the key typed in from the set-up page."""
    raw = key.replace(" ", "")
    secret = base64.b32decode(raw + "=" * (-len(raw) % 8))
    return f"{totp(secret):06d}"


def test_a_physician_signs_in_with_a_totp_code(
    page: Page, live_server: Any, make_user: Callable[..., User]
) -> None:
    # given a physician with an authenticator app
    physician = make_user(Role.PHYSICIAN)
    device = add_totp(physician)

    # when they sign in with their password
    sign_in_with_password(page, physician.email)

    # then they must give a code before the clinic or the admin open
    expect(page).to_have_url(VERIFY)
    for guarded in ("/admin/", "/clinic/"):
        page.goto(guarded)
        expect(page).to_have_url(VERIFY)
        expect(page.locator("main input[name=next]")).to_have_value(guarded)

    # and with the current code they land on the clinic
    page.locator("input[name=token]").fill(current_code(device))
    submit(page)
    expect(page).to_have_url(f"{live_server.url}/clinic/")
    expect(page.locator("body")).to_have_class(re.compile(r"\bclinic\b"))
    expect(page.locator("h1")).to_contain_text(physician.get_full_name())


def test_a_wrong_totp_code_is_refused(page: Page, make_user: Callable[..., User]) -> None:
    # given a physician who signed in with a password
    physician = make_user(Role.PHYSICIAN)
    device = add_totp(physician)
    sign_in_with_password(page, physician.email)
    expect(page).to_have_url(VERIFY)

    # when they type a code that is not the current one
    wrong = f"{(int(current_code(device)) + 500_000) % 1_000_000:06d}"
    page.locator("input[name=token]").fill(wrong)
    submit(page)

    # then the error is announced and the clinic stays closed
    expect(page.locator("main [role=alert]")).to_be_visible()
    expect(page.locator("input[name=token]")).to_have_attribute("aria-invalid", "true")
    page.goto("/clinic/")
    expect(page).to_have_url(VERIFY)


def test_new_staff_set_up_their_authenticator(
    page: Page, live_server: Any, make_user: Callable[..., User]
) -> None:
    # given a nurse without an authenticator app
    nurse = make_user(Role.NURSE)

    # when they sign in, they are sent to set one up
    sign_in_with_password(page, nurse.email)
    expect(page).to_have_url(SETUP)
    page.goto("/clinic/")
    expect(page).to_have_url(SETUP)
    expect(page.locator("main figure.qr svg")).to_be_visible()
    key = page.locator("code[data-totp-secret]")
    expect(key).to_have_text(re.compile(r"^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$"))

    # and type the code their app computes from the key shown
    page.locator("input[name=token]").fill(code_from_displayed_key(key.inner_text()))
    submit(page)

    # then they see their backup codes once, and continue to the clinic
    codes = page.locator("[data-backup-codes] li")
    expect(codes).to_have_count(BACKUP_CODE_COUNT)
    assert TOTPDevice.objects.get(user=nurse).confirmed
    check_accessibility(page)
    page.locator("main a[role=button]").click()
    expect(page).to_have_url(f"{live_server.url}/clinic/")
    expect(page.locator("body")).to_have_class(re.compile(r"\bclinic\b"))


def test_idle_staff_are_warned_and_can_stay_signed_in(
    page: Page, make_user: Callable[..., User], settings: Any
) -> None:
    # given a verified coordinator whose session ends after 61 s of inactivity,
    # so the warning (one minute before the end) shows after about a second
    settings.STAFF_IDLE_TIMEOUT = 61
    coordinator = make_user(Role.COORDINATOR)
    device = add_totp(coordinator)
    sign_in_with_password(page, coordinator.email)
    page.locator("input[name=token]").fill(current_code(device))
    submit(page)
    expect(page).to_have_url(re.compile(r"/clinic/$"))

    # when the warning appears
    dialog = page.locator("#idle-dialog")
    expect(dialog).to_be_visible(timeout=5_000)
    check_accessibility(page)

    # then "stay signed in" refreshes the session and closes it
    with page.expect_response(lambda r: r.url.endswith("/accounts/keepalive/")) as keepalive:
        dialog.get_by_role("button").click()
    assert keepalive.value.status == 204
    expect(dialog).to_be_hidden()
