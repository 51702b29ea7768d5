"""You are the scheduler, in a real browser: a student releases the real threads one by one, and the server judges
the run's trace against the challenge."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from sandbox.explorer import explore
from sandbox.render.files import write_exploration
from sandbox.runtime import Sandbox
from sandbox.trace.gates import AFTER_250, BEFORE_ANSWER, BEFORE_SEND, SINK_BEFORE_250, WORKER_START
from tests.web.screens import check_at_every_width

DELAY_S = 0.0


def release(page: Page, gates: list[str]) -> None:
    """Press "Run to next gate" for the thread held at each of ``gates`` in turn, once the page shows it there."""
    for gate in gates:
        held = page.locator("#threads li").filter(has_text=gate)
        expect(held).to_have_count(1)
        held.get_by_role("button").click()


def test_a_student_makes_the_email_arrive_before_the_answer(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    check_at_every_width(page, "scheduler")
    challenge = page.locator('.challenge[data-slug="email-first"]')
    challenge.get_by_role("button", name="Start a thread send").click()
    expect(page.locator("#threads li")).to_have_count(2)  # the route at its gate, the worker at its first
    expect(page.locator("#threads")).to_contain_text("thr.start()")  # the line the route waits on
    release(page, [WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250, BEFORE_ANSWER])
    expect(page.locator("#verdict")).to_contain_text("Solved. The sink's 250 came at step")
    expect(challenge.locator(".solved-badge")).to_be_visible()
    check_at_every_width(page, "scheduler, solved")
    page.reload()  # kept with the desk
    expect(page.locator('.challenge[data-slug="email-first"] .solved-badge')).to_be_visible()


def test_the_blocking_answer_cannot_come_first_and_the_page_says_why(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    page.locator('.challenge[data-slug="answer-first"]').get_by_role("button", name="Start a sync send").click()
    expect(page.locator("#threads li")).to_have_count(1)
    release(page, [BEFORE_SEND, SINK_BEFORE_250, AFTER_250])
    expect(page.locator("#verdict")).to_contain_text("Not this time.")
    expect(page.locator("#verdict")).to_contain_text("The route's own thread ran mail.send()")
    expect(page.locator("#trace-link")).to_be_visible()


def test_the_explorers_page_fits_a_phone_and_passes_axe(page: Page, sandbox: Sandbox, tmp_path: Path) -> None:
    exploration = explore(sandbox, "thread", 3)
    write_exploration(exploration, tmp_path)
    page.goto((tmp_path / "explore-thread.html").as_uri())
    expect(page.locator("tbody tr")).to_have_count(5)
    check_at_every_width(page, "explore-thread")


def test_a_held_trace_page_shows_who_held_the_threads(page: Page, sandbox: Sandbox) -> None:
    ordering = explore(sandbox, "thread", 0).orderings[-1]  # the route released last
    page.goto(f"{sandbox.url}traces/{ordering.trace_id}")
    expect(page.locator("body")).to_contain_text("Who held the threads?")
    check_at_every_width(page, "trace, held")
