"""Staff sign in with a password, then a TOTP code, before seeing the clinic."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, User
from tests.conftest import PASSWORD, add_totp, current_code
from tests.e2e.conftest import check_accessibility

pytestmark = pytest.mark.e2e


def sign_in(page: Page, user: User) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("main form button[type=submit]").click()


def test_a_physician_signs_in_with_a_totp_code(page: Page, make_user: Callable[..., User]) -> None:
    physician = make_user(Role.PHYSICIAN)
    device = add_totp(physician)

    sign_in(page, physician)

    page.wait_for_url(re.compile(r"/accounts/2fa/verify/"))
    check_accessibility(page)
    for guarded in ("/admin/", "/clinic/"):
        page.goto(guarded)
        expect(page).to_have_url(re.compile(r"/accounts/2fa/verify/"))
    page.fill("input[name=token]", current_code(device))
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/clinic/$"))
    expect(page.locator("body")).to_have_class(re.compile("clinic"))
    check_accessibility(page)


def test_new_staff_set_up_their_authenticator(page: Page, make_user: Callable[..., User]) -> None:
    nurse = make_user(Role.NURSE)

    sign_in(page, nurse)

    page.wait_for_url(re.compile(r"/accounts/2fa/setup/"))
    check_accessibility(page)
    expect(page.locator("[data-totp-secret]")).to_be_visible()
    device = TOTPDevice.objects.get(user=nurse, confirmed=False)
    page.fill("input[name=token]", current_code(device))
    page.locator("main form button[type=submit]").click()
    codes = page.locator("[data-backup-codes] li")
    expect(codes).to_have_count(10)
    check_accessibility(page)
    page.locator("main a[role=button]").click()
    page.wait_for_url(re.compile(r"/clinic/$"))


def test_idle_staff_are_warned_and_can_stay_signed_in(
    page: Page, make_user: Callable[..., User], settings: object
) -> None:
    # the warning appears one minute before the end: with 61 s it shows after about 1 s
    settings.STAFF_IDLE_TIMEOUT = 61  # type: ignore[attr-defined]
    coordinator = make_user(Role.COORDINATOR)
    device = add_totp(coordinator)
    sign_in(page, coordinator)
    page.wait_for_url(re.compile(r"/accounts/2fa/verify/"))
    page.fill("input[name=token]", current_code(device))
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/clinic/$"))

    dialog = page.locator("#idle-dialog")
    expect(dialog).to_be_visible(timeout=5_000)
    check_accessibility(page)
    with page.expect_response(lambda r: r.url.endswith("/accounts/keepalive/")) as keepalive:
        dialog.get_by_role("button").click()

    assert keepalive.value.status == 204
    expect(dialog).to_be_hidden()
