"""Two students in two browsers at one sandbox: what one sets and sends stays at their desk."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox.runtime import Sandbox
from tests.web.conftest import api
from tests.web.test_browser import send_from_page

DELAY_S = 0.2
SLOW_S = 1.2


@pytest.fixture
def two_students(browser: Browser, sandbox: Sandbox) -> Iterator[tuple[Page, Page]]:
    contexts = [browser.new_context(viewport={"width": 1366, "height": 900}) for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.set_default_timeout(15_000)
        page.goto(sandbox.url)
    yield pages[0], pages[1]
    for context in contexts:
        context.close()


def test_two_browsers_have_two_desks_that_do_not_touch(two_students: tuple[Page, Page], sandbox: Sandbox) -> None:
    ada, bob = two_students
    for page in (ada, bob):
        expect(page.locator("#desk-line")).to_contain_text("Your desk: the sink settings, the mailbox")
        expect(page.locator("#sink-now")).to_have_text(f"Sink: delay {DELAY_S:g} s.")

    # Ada slows her sink down: her blocking send waits for it, Bob's does not.
    ada.locator("#delay").fill(str(SLOW_S))
    expect(ada.locator("#sink-now")).to_have_text(f"Sink: delay {SLOW_S:g} s.")
    hers = send_from_page(ada, "Send (blocking)")
    his = send_from_page(bob, "Send (blocking)")
    assert float(hers["response-ms"]) >= SLOW_S * 1000 > float(his["response-ms"]), (hers, his)
    bob.reload()
    expect(bob.locator("#sink-now")).to_have_text(f"Sink: delay {DELAY_S:g} s.")

    # Ada's mail server dies: her sends are refused, Bob's are delivered.
    ada.locator("#faults-panel summary").click()
    ada.locator("#fault-listening").uncheck()
    expect(ada.locator("#sink-now")).to_contain_text("not listening")
    refused = send_from_page(ada, "Send (blocking)")
    delivered = send_from_page(bob, "Send (blocking)")
    assert (refused["status"], delivered["status"]) == ("502", "200")

    # Neither sees the other's mail or traces.
    ada_mail = {m["trace_id"] for m in api(ada, sandbox, "/api/messages")["messages"]}
    bob_mail = {m["trace_id"] for m in api(bob, sandbox, "/api/messages")["messages"]}
    assert ada_mail == {hers["trace-id"]} and bob_mail == {his["trace-id"], delivered["trace-id"]}
    bob.goto(f"{sandbox.url}mailbox")
    expect(bob.locator("#inbox li")).to_have_count(2)
    response = bob.goto(f"{sandbox.url}traces/{hers['trace-id']}")
    assert response is not None and response.status == 404
    expect(bob.locator("main")).to_contain_text("at your desk")
    assert ada.request.get(f"{sandbox.url}api/traces/{hers['trace-id']}").ok

    # Ada starts afresh: her settings, mail, results and traces are gone; Bob's are all still there.
    ada.once("dialog", lambda dialog: dialog.accept())  # "Start afresh? ..."
    ada.get_by_role("button", name="Start my desk afresh").click()
    expect(ada.locator("#desk-line")).to_contain_text("Your desk starts afresh")
    expect(ada.locator("li.result")).to_have_count(0)
    expect(ada.locator("#sink-now")).to_have_text(f"Sink: delay {DELAY_S:g} s.")
    expect(ada.locator("#fault-listening")).to_be_checked()
    assert api(ada, sandbox, "/api/messages")["messages"] == []
    assert not ada.request.get(f"{sandbox.url}api/traces/{hers['trace-id']}").ok
    assert len(api(bob, sandbox, "/api/messages")["messages"]) == 2
