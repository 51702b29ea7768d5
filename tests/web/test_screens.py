"""The student's first five minutes, in a real Chromium on a laptop (1366x900) and a phone (390x844, 320x640):
every page fits the screen and passes axe-core; the payoff of "Send both" is in the first screen; Back, a double
click, another tab, a dead link and the keyboard leave the student where they expect.

The screenshots of each page at both widths go to test-artifacts/screens/ (named in the README)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox.render.document import report
from sandbox.render.files import write_reports
from sandbox.runtime import Sandbox
from sandbox.trace.facts import observed_server
from sandbox.web.lessons import lessons
from tests.web.conftest import api, deliver, put_sink
from tests.web.screens import LAPTOP, assert_accessible, assert_fits, check_at_every_width, screenshot

DELAY_S = 0.5


def send_both(page: Page) -> list[str]:
    """Press "Send both" and wait for its own verdict (not the one a press before left); the two trace ids, blocking
    first."""
    before = page.locator("#comparison").get_attribute("data-comparison") or ""
    page.get_by_role("button", name="Send both").click()
    expect(page.locator("#comparison")).not_to_have_attribute("data-comparison", before, timeout=20_000)
    expect(page.locator("#send-both")).to_be_enabled()  # the verdict is written before the button is freed
    expect(page.locator("#verdict")).to_contain_text("Send (blocking) answered in")
    rows = page.locator("#comparison .compare-row")
    expect(rows).to_have_count(2)
    return [rows.nth(i).get_attribute("data-trace-id") for i in (0, 1)]


@dataclass(frozen=True)
class SentBoth:
    """One "Send both" for the pages to show: its trace ids (blocking first), and the cookies of the browser that
    sent it, so another page can sit at the same desk."""

    ids: list[str]
    cookies: list[Any]

    def join(self, page: Page) -> None:
        page.context.add_cookies(self.cookies)


@pytest.fixture(scope="module")
def sent(browser: Browser, sandbox: Sandbox) -> SentBoth:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(sandbox.url)
        ids = send_both(page)
        cookies = context.cookies()
    finally:
        context.close()
    assert sandbox.delivery.wait_settled(10)
    return SentBoth(ids, cookies)


def test_after_send_both_the_verdict_and_the_comparison_are_in_the_first_screen(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url)
    blocking, threaded = send_both(page)
    b, t = (api(page, sandbox, f"/api/traces/{trace_id}") for trace_id in (blocking, threaded))
    for element in (page.locator("#verdict"), page.locator("#comparison")):
        box = element.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP[1], box
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("role", "status")  # read out once, when it is written
    # Every number in it is the trace's (the server's clock), as the trace page shows it.
    for value in (b["response_ms"], t["response_ms"], b["accepted_ms"], t["accepted_ms"]):
        shown = f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"
        expect(verdict).to_contain_text(shown)
    # The stopwatch is not in a live region: a screen reader hears the verdict, not every frame of the clock.
    assert page.locator("#results").get_attribute("aria-live") is None
    screenshot(page, "sandbox after send both")


# Each page by name, and its path; "{message}" and "{trace}" are filled from the module's "Send both".
PAGES = {
    "sandbox": "",
    "lessons": "lessons",
    "mailbox": "mailbox",
    "message": "mailbox/{message}",
    "trace": "traces/{trace}",
    "dead trace link": "traces/0123456789abcdef",
} | {f"lesson {lesson.slug}": f"lessons/{lesson.slug}" for lesson in lessons()}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_fits_a_phone_and_passes_axe(page: Page, sandbox: Sandbox, sent: SentBoth, name: str) -> None:
    sent.join(page)
    message = api(page, sandbox, "/api/messages")["messages"][0]["id"]
    page.goto(sandbox.url + PAGES[name].format(message=message, trace=sent.ids[1]))
    page.wait_for_timeout(400)  # the first polls (sink settings, mailbox, stats) have drawn
    check_at_every_width(page, name)


def test_the_offline_files_fit_a_phone_and_pass_axe(
    page: Page, sandbox: Sandbox, sent: SentBoth, tmp_path: Path
) -> None:
    tracer, log = sandbox.app.extensions["sandbox.tracer"], sandbox.app.extensions["sandbox.requests"]
    traces = [tracer.get(trace_id) for trace_id in sent.ids]
    write_reports([report(trace, server=observed_server(trace, log)) for trace in traces], tmp_path)  # as run_demo
    for name in ("index.html", "sync.html", "thread.html"):
        page.goto((tmp_path / name).as_uri())
        check_at_every_width(page, f"offline {name}")
    # Written files keep everything open: a reader of a file has no server to fold anything away from.
    assert page.locator("details.fold:not([open])").count() == 0


def test_back_from_a_trace_finds_the_results_and_the_comparison(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url)
    ids = send_both(page)
    verdict = page.locator("#verdict").inner_text()
    page.get_by_text("Broken on purpose").click()
    page.locator("li.result").first.get_by_role("link", name="Open the trace").click()
    expect(page.locator("h1")).to_contain_text("send")
    page.go_back()
    expect(page.locator("li.result")).to_have_count(2)
    expect(page.locator("#verdict")).to_have_text(verdict)
    rows = page.locator("#comparison .compare-row")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-trace-id") for i in (0, 1)] == ids
    expect(page.locator("li.result").first).to_have_attribute("data-accepted-ms", re.compile(r"^\d+\.\d$"))
    expect(page.locator("#broken-panel")).to_have_attribute("open", "")  # the panel opened before is still open


def test_a_double_click_sends_once(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url)
    sent_before = api(page, sandbox, "/api/stats")["sent"]
    page.get_by_role("button", name="Send (blocking)", exact=True).dblclick()
    expect(page.locator("button[data-mode='sync']")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#verdict")).to_contain_text("Send (blocking) answered in", timeout=10_000)
    expect(page.locator("li.result")).to_have_count(1)
    assert api(page, sandbox, "/api/stats")["sent"] - sent_before == 1


def test_a_change_made_elsewhere_shows_where_the_student_sends(page: Page, sandbox: Sandbox) -> None:
    """Another tab of the same browser (here, its API requests) turns on a 451 at RCPT: the open page says so before
    the next send, and opens the faults panel with its count of faults on."""
    page.goto(sandbox.url)
    sink_line = page.locator("#sink-now")
    expect(sink_line).to_have_text(f"Sink: delay {DELAY_S:g} s.")
    expect(page.locator("#faults-panel")).not_to_have_attribute("open", "")
    try:
        put_sink(page, sandbox, {"reject_probability": 1, "reject_code": 451, "delay_s": 0.2})
        expect(sink_line).to_have_text("Sink: delay 0.2 s, rejects 100% at RCPT with 451.", timeout=5_000)
        expect(page.locator("#faults-panel")).to_have_attribute("open", "")
        expect(page.locator("#faults-active")).to_have_text("1 on")
        expect(page.locator("#delay-value")).to_have_text("0.2 s")
        expect(page.locator("#fault-reject")).to_have_value("1")
    finally:
        put_sink(page, sandbox, {"reject_probability": 0, "delay_s": DELAY_S})
    expect(sink_line).to_have_text(f"Sink: delay {DELAY_S:g} s.", timeout=5_000)


def test_a_dead_link_is_a_page_with_a_way_back(page: Page, sandbox: Sandbox) -> None:
    response = page.goto(f"{sandbox.url}mailbox/987654")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("no message #987654")
    page.get_by_role("link", name="Back to the sandbox").click()
    expect(page.locator("h1")).to_have_text("Concurrency sandbox")


def test_step_through_it_gives_the_stepper_the_keys(page: Page, sandbox: Sandbox) -> None:
    page.goto(sandbox.url)
    page.get_by_role("button", name="Send (thread)", exact=True).click()
    expect(page.locator("#verdict")).to_contain_text("Send (thread) answered in")
    page.locator("li.result").first.get_by_role("button", name="Step through it").click()
    frame = page.frame_locator("#trace-frame")
    position = frame.locator("[data-position]")
    expect(position).to_contain_text("Step 1 of")
    expect(frame.locator("[data-stepper]")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(position).to_contain_text("Step 2 of")
    page.keyboard.press("End")
    total = frame.locator("table.steps tbody tr").count()
    expect(position).to_have_text(f"Step {total} of {total}")
    # A "step N" link anywhere on the trace page moves the stepper, not just the table.
    frame.get_by_text("Key moments").click()
    link = frame.locator(".moments a").first
    step = link.get_attribute("href").removeprefix("#step-")
    link.click()
    expect(position).to_have_text(f"Step {step} of {total}")
    expect(frame.locator("[data-stepper]")).to_be_focused()
    # Keys outside the stepper are the page's own: End on the page body does not move it.
    frame.locator("h1").click()
    page.keyboard.press("Home")
    expect(position).to_have_text(f"Step {step} of {total}")


def test_the_mailbox_updates_live_and_a_message_opens_on_its_body(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}mailbox")
    before = page.locator("#inbox li").count()
    deliver(
        page,
        sandbox,
        "ada@example.com",
        "Arrives while you look",
        "<p>Hello <a href='https://example.com/'>a link</a></p>",
    )
    newest = page.locator("#inbox li").first
    expect(page.locator("#inbox li")).to_have_count(before + 1)
    expect(newest.locator(".inbox-from")).to_have_text("ada@example.com")
    expect(newest.locator(".inbox-subject")).to_have_text("Arrives while you look")
    expect(newest.locator("time")).to_have_text("just now")
    newest.locator(".inbox-open").click()
    # Opens on the rendered body; Text, Headers and Raw are a tab away.
    html_tab = page.get_by_role("tab", name="HTML")
    expect(html_tab).to_have_attribute("aria-selected", "true")
    expect(page.frame_locator("iframe.email-html").locator("a")).to_have_attribute("href", "https://example.com/")
    expect(page.locator("#panel-raw")).to_be_hidden()
    html_tab.focus()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Raw")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-raw pre")).to_contain_text("Subject: Arrives while you look")
    page.get_by_role("tab", name="Headers").click()
    expect(page.locator("#panel-headers")).to_contain_text("ada@example.com")
    assert_fits(page, "message")
    assert_accessible(page, "message, headers tab")


def expected_order(blocking: dict, threaded: dict) -> str:
    """The verdict's headline, from the two traces' events as the API gives them."""

    def before(t: dict) -> bool | None:
        return None if t["accepted_ms"] is None else t["response_ms"] < t["accepted_ms"]

    b, t = before(blocking), before(threaded)
    if b is None or t is None:
        return ""
    if b == t:
        return f"Both answered {'before' if b else 'after'} their emails were accepted."
    return f"Only Send ({'blocking' if b else 'thread'}) answered before its email was accepted."


@pytest.mark.parametrize("sink", ["delay 0", "dead server"])
def test_the_verdict_is_read_from_the_run_not_from_the_mode(page: Page, sandbox: Sandbox, sink: str) -> None:
    """With no delay the thread's email may be accepted before its answer leaves, and a dead server delivers
    nothing: the verdict says what each run's events show, never what the modes are meant to do."""
    changes = {"delay_s": 0.0} if sink == "delay 0" else {"listening": False}
    put_sink(page, sandbox, changes)
    try:
        page.goto(sandbox.url)
        for _ in range(3 if sink == "delay 0" else 1):
            ids = send_both(page)
            blocking, threaded = (api(page, sandbox, f"/api/traces/{trace_id}") for trace_id in ids)
            text = page.locator("#verdict").inner_text()
            headline = page.locator("#verdict strong").inner_text()
            order = expected_order(blocking, threaded)
            assert headline == (order or "Neither email was delivered."), (text, order)
            if sink == "dead server":
                assert text.count("not delivered") == 2 and "accepted their emails" not in text, text
    finally:
        put_sink(page, sandbox, {"delay_s": DELAY_S, "listening": True})


def test_the_page_prints_a_time_with_the_digits_the_trace_page_prints(page: Page, sandbox: Sandbox) -> None:
    """The same value, the same digits: JavaScript's toFixed rounds an exact tie (4.25) up, Python's % to even."""
    values = [k / 4 for k in range(0, 40)] + [k / 8 for k in range(7990, 8010)] + [4.153, 999.95, 1000.0, 2025.5]
    python = [f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms" for v in values]
    page.goto(sandbox.url)
    shown = page.evaluate(
        "async (values) => { const { formatMs } = await import('/static/js/api.js'); "
        "return values.map((value) => formatMs(value)); }",
        values,
    )
    assert shown == python


def test_a_kept_result_whose_trace_is_gone_says_so(page: Page, sandbox: Sandbox) -> None:
    """A result kept from before a restart: its trace is no longer there, and the entry says so instead of waiting."""
    page.goto(sandbox.url)
    gone = {
        "mode": "thread",
        "note": "",
        "comparison": None,
        "status": 202,
        "elapsedMs": 12.0,
        "body": {"status": "queued", "trace_id": "0" * 32, "response_ms": 4.0},
        "traceId": "0" * 32,
    }
    page.evaluate("record => sessionStorage.setItem('sandbox:results', JSON.stringify([record]))", gone)
    page.reload()
    entry = page.locator("li.result")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("its trace could not be read")
    expect(entry).to_have_attribute("data-status", "202")
