"""Browser tests: Playwright driving Debian's Chromium against the live test server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from apps.accounts.models import User
from tests.conftest import PASSWORD, verified_client
from tests.e2e.asgi_server import AsgiServer, asgi_server  # noqa: F401 - the fixture

# Playwright's sync API runs an event loop in this thread; the ORM calls of the tests are safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXE = Path(__file__).resolve().parents[2] / "static" / "vendor" / "axe" / "axe.min.js"
# Patients use the portal on their phones first: every browser test runs at this width.
PHONE = {"width": 360, "height": 800}
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert AXE.is_file(), f"{AXE} is missing: run `node scripts/vendor-static.mjs`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, live_server: Any, transactional_db: None) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A fresh page; the test fails if any page script throws (the WebSocket may not connect)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    yield page
    assert not errors, f"uncaught JavaScript errors: {errors}"


def submit(page: Page) -> None:
    """Click the main form's submit button, as a person would after filling it in."""
    page.locator("main form").first.locator("button[type=submit]").click()


def sign_in_with_password(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    submit(page)
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def share_session(page: Page, client: Client, server_url: str) -> None:
    """Give the browser the session of a Django test client that is already signed in."""
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": server_url}])


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING_IMPACTS
    ]


def check_accessibility(page: Page) -> None:
    """axe-core finds no serious or critical violation; nothing scrolls sideways at 360 px."""
    page.wait_for_load_state("load")
    violations = axe_violations(page)
    assert not violations, f"{page.url}:\n" + "\n".join(violations)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways at 360 px ({width} px wide)"


class Browsers:
    """One browser context per person, each page failing the test on a script error."""

    def __init__(self, browser: Browser, server: AsgiServer) -> None:
        self.browser, self.server = browser, server
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def page_for(self, user: User) -> Page:
        phone = ViewportSize(width=PHONE["width"], height=PHONE["height"])
        context = self.browser.new_context(base_url=self.server.url, viewport=phone)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        share_session(page, verified_client(user), self.server.url)
        context.add_cookies(
            [{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": self.server.url}]
        )
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browsers(browser: Browser, asgi_server: AsgiServer) -> Iterator[Browsers]:  # noqa: F811
    people = Browsers(browser, asgi_server)
    yield people
    people.close()
    assert not people.errors, f"uncaught JavaScript errors: {people.errors}"
