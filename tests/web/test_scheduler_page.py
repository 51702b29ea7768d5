"""You are the scheduler, in a real browser: a student releases the real threads one by one, and the server judges
the run's trace against the challenge."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from sandbox.explorer import explore
from sandbox.render.files import write_exploration
from sandbox.runtime import Sandbox
from tests.web.screens import check_at_every_width

DELAY_S = 0.0


def release_in_order(page: Page, last_role: str, first_role: str | None = None) -> None:
    """Press "Run to next gate" until the send is over: a thread of ``first_role`` whenever one is held, else any
    thread but ``last_role``'s, and ``last_role``'s only when it is the one left."""
    threads = page.locator("#threads li")
    while not page.locator("#verdict").inner_text():
        if threads.count() == 0:
            page.wait_for_timeout(100)
            continue
        held = [threads.nth(i).locator("strong").inner_text() for i in range(threads.count())]
        pick = next((h for h in held if first_role and h.startswith(f"{first_role}:")), None)
        pick = pick or next((h for h in held if not h.startswith(f"{last_role}:")), held[0])
        button = threads.filter(has_text=pick).get_by_role("button")
        if button.is_enabled():
            button.click()
        page.wait_for_timeout(150)


def test_a_student_makes_the_email_arrive_before_the_answer(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    check_at_every_width(page, "scheduler")
    challenge = page.locator('.challenge[data-slug="email-first"]')
    challenge.get_by_role("button", name="Start a thread send").click()
    expect(page.locator("#threads li")).to_have_count(2)  # the route at its gate, the worker at its first
    expect(page.locator("#threads")).to_contain_text("thr.start()")  # the line the route waits on
    release_in_order(page, last_role="request")
    expect(page.locator("#verdict")).to_contain_text("Solved. The sink's 250 came at step")
    expect(challenge.locator(".solved-badge")).to_be_visible()
    check_at_every_width(page, "scheduler, solved")
    page.reload()  # kept with the desk
    expect(page.locator('.challenge[data-slug="email-first"] .solved-badge')).to_be_visible()


def test_the_blocking_answer_cannot_come_first_and_the_page_says_why(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    page.locator('.challenge[data-slug="answer-first"]').get_by_role("button", name="Start a sync send").click()
    expect(page.locator("#threads li")).to_have_count(1)
    release_in_order(page, last_role="nobody", first_role="request")
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
