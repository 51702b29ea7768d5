"""You are the scheduler, in a real browser: a student releases the real threads one by one, and the server judges
the run's trace against the challenge."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from sandbox.explorer import explore
from sandbox.render.files import write_exploration
from sandbox.runtime import Sandbox
from sandbox.trace.gates import AFTER_250, BEFORE_ANSWER, BEFORE_SEND, COUNT_READ, SINK_BEFORE_250, WORKER_START
from tests.web.screens import check_at_every_width

DELAY_S = 0.0


def release(page: Page, gates: list[str], send: int | None = None) -> None:
    """Press "Run to next gate" for the thread held at each of ``gates`` in turn (of the ``send``-th send, when the
    challenge takes several), once the page shows it there."""
    items = page.locator("#threads li")
    if send is not None:
        items = items.filter(has_text=f"send {send}, ")
    for gate in gates:
        held = items.filter(has_text=gate)
        expect(held).to_have_count(1)
        held.get_by_role("button").click()


TO_THE_COUNT = [WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250]  # a counting worker's gates up to its read


def test_a_student_makes_the_email_arrive_before_the_answer(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    check_at_every_width(page, "scheduler")
    challenge = page.locator('.challenge[data-slug="email-first"]')
    challenge.get_by_role("button", name="Start a thread send").click()
    expect(page.locator("#threads li")).to_have_count(2)  # the route at its gate, the worker at its first
    expect(page.locator("#threads")).to_contain_text("thr.start()")  # the line the route waits on
    held = page.locator("#threads li .held-code .code-row.held")  # each thread's line, marked in its function
    expect(held).to_have_count(2)
    expect(held.filter(has_text="thr.start()")).to_have_count(1)
    release(page, [WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250, BEFORE_ANSWER])
    expect(page.locator("#verdict")).to_contain_text("Solved. The sink's 250 came at step")
    expect(challenge.locator(".solved-badge")).to_be_visible()
    check_at_every_width(page, "scheduler, solved")
    page.reload()  # kept with the desk
    expect(page.locator('.challenge[data-slug="email-first"] .solved-badge')).to_be_visible()


def test_a_student_loses_an_update_and_the_trace_shows_the_order(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    challenge = page.locator('.challenge[data-slug="lost-update"]')
    challenge.get_by_role("button", name="Start 2 thread-count sends").click()
    expect(page.locator("#threads li")).to_have_count(4)  # each send: the route at its gate, the worker at its first
    release(page, TO_THE_COUNT, send=1)
    expect(page.locator("#threads li").filter(has_text="send 1, ").filter(has_text=COUNT_READ)).to_contain_text(
        'sent = stats["sent"]'
    )
    release(page, TO_THE_COUNT, send=2)  # the second reads too, before the first writes
    release(page, [COUNT_READ, BEFORE_ANSWER], send=1)
    release(page, [COUNT_READ, BEFORE_ANSWER], send=2)
    expect(page.locator("#verdict")).to_contain_text("Solved.")
    expect(page.locator("#verdict")).to_contain_text("this write overwrites that update, which is lost")
    expect(page.locator("#verdict")).to_contain_text("After 2 emails the count went from")
    expect(challenge.locator(".solved-badge")).to_be_visible()
    check_at_every_width(page, "scheduler, lost update")
    page.locator("#trace-links a").filter(has_text="send 2").click()
    expect(page.locator("body")).to_contain_text("this write overwrites it, so that update is lost")
    expect(page.locator("body")).to_contain_text("You release")


def test_with_the_lock_the_update_cannot_be_lost_and_the_page_says_who_waits(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    challenge = page.locator('.challenge[data-slug="lost-update-locked"]')
    challenge.get_by_role("button", name="Start 2 thread-count-locked sends").click()
    expect(page.locator("#threads li")).to_have_count(4)
    release(page, TO_THE_COUNT, send=1)  # send 1's worker now holds stats_lock, between its read and its write
    holder = page.locator("#threads li").filter(has_text="send 1, ").filter(has_text=COUNT_READ)
    expect(holder).to_have_count(1)
    holder_name = holder.locator("strong").inner_text().split(": ", 1)[1]
    release(page, TO_THE_COUNT, send=2)
    blocked = page.locator("#threads li.blocked")
    expect(blocked).to_have_count(1)
    expect(blocked).to_contain_text("send 2, worker: ")
    expect(blocked).to_contain_text(f"waits for stats_lock, which {holder_name} holds: only {holder_name} can let")
    expect(blocked).to_contain_text("with stats_lock:")
    expect(blocked.get_by_role("button")).to_have_count(0)  # no gate: only the holder's release frees it
    check_at_every_width(page, "scheduler, lock wait")
    release(page, [COUNT_READ, BEFORE_ANSWER], send=1)
    release(page, [COUNT_READ, BEFORE_ANSWER], send=2)
    expect(page.locator("#verdict")).to_contain_text("Not this time.")
    expect(page.locator("#verdict")).to_contain_text("asked for stats_lock")
    expect(page.locator("#verdict")).to_contain_text("no order of releases loses an update")
    expect(challenge.locator(".solved-badge")).to_be_hidden()


def test_a_student_starves_the_pool_and_sees_the_timeout_end_the_wait(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    challenge = page.locator('.challenge[data-slug="starved-pool"]')
    challenge.get_by_role("button", name="Start a pool-starved send").click()
    expect(page.locator("#threads li")).to_have_count(2)
    release(page, [WORKER_START])
    blocked = page.locator("#threads li.blocked")
    expect(blocked).to_contain_text("waits for the result of render_welcome()")
    expect(blocked).to_contain_text("this one included")
    expect(blocked).to_contain_text("rendering.result(timeout=RENDER_TIMEOUT_S)")
    release(page, [BEFORE_ANSWER])
    expect(page.locator("#verdict")).to_contain_text("Solved.", timeout=20_000)
    expect(page.locator("#verdict")).to_contain_text(".result() raised TimeoutError")


def test_the_blocking_answer_cannot_come_first_and_the_page_says_why(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    page.locator('.challenge[data-slug="answer-first"]').get_by_role("button", name="Start a sync send").click()
    expect(page.locator("#threads li")).to_have_count(1)
    release(page, [BEFORE_SEND, SINK_BEFORE_250, AFTER_250])
    expect(page.locator("#verdict")).to_contain_text("Not this time.")
    expect(page.locator("#verdict")).to_contain_text("The route's own thread ran mail.send()")
    expect(page.locator("#trace-links a")).to_have_text("Open the trace of this run")


def test_a_student_holds_two_queue_sends_in_an_order_of_their_own(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    page.get_by_label("Route").select_option("queue")
    page.get_by_label("Sends at once").select_option("2")
    page.get_by_role("button", name="Start, held at every gate").click()
    expect(page.locator("#threads li")).to_have_count(4)  # each send: the route after enqueue(), the consumer
    expect(page.locator("#threads")).to_contain_text("mail_queue(current_app).enqueue(send_async_email, msg)")
    for send in (2, 1):
        release(page, [WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250, BEFORE_ANSWER], send=send)
    expect(page.locator("#verdict")).to_contain_text("Over: every thread ran to its end")
    expect(page.locator("#trace-links a")).to_have_count(2)


def test_the_page_explores_two_counting_workers_and_links_their_traces(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}scheduler")
    page.get_by_label("Scenario").select_option("thread-count")
    page.get_by_label("Runs nobody holds").fill("3")
    page.get_by_role("button", name="Explore").click()
    rows = page.locator("#explore-table tbody tr")
    expect(rows).to_have_count(6, timeout=60_000)
    expect(page.locator("#explore-summary")).to_contain_text(
        "In 4 of them a worker wrote the count back over a value it had not read"
    )
    expect(page.locator("#explore-table thead")).to_contain_text("An update lost")
    assert sum(rows.nth(i).locator("td").nth(1).inner_text() == "yes" for i in range(6)) == 4
    check_at_every_width(page, "scheduler, explored")
    rows.first.get_by_role("link", name="send 2").click()
    expect(page.locator("body")).to_contain_text('stats["sent"]')


def test_the_explorers_page_fits_a_phone_and_passes_axe(page: Page, sandbox: Sandbox, tmp_path: Path) -> None:
    exploration = explore(sandbox, "thread", 3)
    write_exploration(exploration, tmp_path)
    page.goto((tmp_path / "explore-thread.html").as_uri())
    expect(page.locator("tbody tr")).to_have_count(5)
    check_at_every_width(page, "explore-thread")


def test_a_held_trace_page_shows_who_held_the_threads(page: Page, sandbox: Sandbox) -> None:
    ordering = explore(sandbox, "thread", 0).orderings[-1]  # the route released last
    page.goto(f"{sandbox.url}traces/{ordering.trace_ids[0]}")
    expect(page.locator("body")).to_contain_text("Who held the threads?")
    check_at_every_width(page, "trace, held")
