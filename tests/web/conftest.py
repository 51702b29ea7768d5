"""What the page tests share: Debian's Chromium through Playwright (its own download does not work here), a sandbox
per module (with the module's ``DELAY_S``), a fresh page per test, and the JSON API the pages read."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from sandbox.runtime import Sandbox
from sandbox.web.desks import COOKIE_NAME
from tests.conftest import settings_for_tests
from tests.web.screens import LAPTOP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's sync API runs an event loop in this thread while it is open, and the
    tests of async views that run later in the session need the thread without one."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium found (apt-get install chromium); .ci/run installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A sandbox whose sink waits the module's ``DELAY_S`` (and any other ``SETTINGS`` of the module: class mode
    runs on the pooled server, others on the threaded one), with a queue of its own: the page's live counts must
    not include emails other tests left in the shared store."""
    queue_url = f"sqlite:///{tmp_path_factory.mktemp('pages')}/queue.db"
    extra = getattr(request.module, "SETTINGS", {})  # a module's own, e.g. class mode
    settings = settings_for_tests(delay_s=request.module.DELAY_S, server=None, queue_url=queue_url, **extra)
    with Sandbox(settings) as running:
        yield running


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A laptop-sized page in a context of its own (no session storage from another test); a JavaScript error fails
    the test, and a failed test leaves a screenshot in test-artifacts/."""
    context = browser.new_context(viewport={"width": LAPTOP[0], "height": LAPTOP[1]})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def seat(page: Page, sandbox: Sandbox) -> None:
    """Give the page's browser its desk, as opening the sandbox page does (once per browser context)."""
    if not any(cookie["name"] == COOKIE_NAME for cookie in page.context.cookies(sandbox.url)):
        page.request.get(sandbox.url, headers={"Accept": "text/html"})


def api(page: Page, sandbox: Sandbox, path: str) -> dict:
    """GET one of the sandbox's JSON routes as the page does: from its browser, at its desk."""
    seat(page, sandbox)
    response = page.request.get(f"{sandbox.url}{path.lstrip('/')}")
    assert response.ok, f"{path}: {response.status} {response.text()}"
    return response.json()


def put_sink(page: Page, sandbox: Sandbox, changes: dict) -> dict:
    """Change the sink's settings for the page's desk, as another tab of the same browser would."""
    seat(page, sandbox)
    response = page.request.put(f"{sandbox.url}api/sink", data=changes)
    assert response.ok, f"PUT /api/sink {changes}: {response.status} {response.text()}"
    return response.json()


def deliver(page: Page, sandbox: Sandbox, sender: str, subject: str, html: str) -> int:
    """Hand the sink an email by smtplib, past the app, on the page's desk's port: a text part and ``html``, as an
    outside client would. Returns its id in the desk's mailbox."""
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = sender, "student@example.com", subject
    email.set_content("plain part")
    email.add_alternative(html, subtype="html")
    with smtplib.SMTP(sandbox.sink.host, api(page, sandbox, "/api/sink")["port"], timeout=10) as smtp:
        smtp.send_message(email)
    return api(page, sandbox, "/api/messages")["messages"][0]["id"]
