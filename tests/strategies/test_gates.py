"""Sends scheduled by hand: their real threads wait at the gates until released, so the order is yours, and the
trace tells it truly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sandbox.client import Reply, call
from sandbox.runtime import Sandbox
from sandbox.trace.gates import (
    AFTER_250,
    BEFORE_ANSWER,
    BEFORE_SEND,
    SCHEDULES_KEPT,
    SINK_BEFORE_250,
    WORKER_START,
    Scheduler,
)
from sandbox.trace.tracer import DEFAULT_DESK
from tests.app.student_lines import unlit_events
from tests.conftest import settings_for_tests
from tests.trace.truth import check_document

BOUND_S = 5.0


def gated_sandbox(folder: Path, bound_s: float) -> Sandbox:
    """A sandbox with no sink delay whose held threads wait at most ``bound_s``, its queue in ``folder``."""
    return Sandbox(settings_for_tests(delay_s=0.0, gate_bound_s=bound_s, queue_url=f"sqlite:///{folder}/q.db"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with gated_sandbox(tmp_path_factory.mktemp("gates"), BOUND_S) as running:
        yield running


def start(sandbox: Sandbox, mode: str, clients: ThreadPoolExecutor) -> Future[Reply]:
    return clients.submit(call, f"{sandbox.url}send-email/{mode}?schedule=manual", "POST", {}, 30)


def waiting(sandbox: Sandbox, count: int, known: set[str] = frozenset()) -> tuple[str, dict[str, str]]:
    """The newest scheduled send (not one of ``known``) once ``count`` of its threads wait: its id and {thread:
    gate}."""
    deadline = time.monotonic() + 10
    while True:
        sends = [s for s in call(f"{sandbox.url}api/schedule").body["sends"] if s["trace_id"] not in known]
        if sends and len(sends[0]["waiting"]) == count:
            return sends[0]["trace_id"], {w["thread"]: w["gate"] for w in sends[0]["waiting"]}
        assert time.monotonic() < deadline, f"never {count} threads waiting: {sends[:1]}"
        time.sleep(0.02)


def release(sandbox: Sandbox, trace_id: str, thread: str) -> Reply:
    return call(f"{sandbox.url}api/schedule/{trace_id}/release", "POST", {"thread": thread})


def kinds(document: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in document["events"]]


def test_you_make_the_email_arrive_before_the_answer(sandbox: Sandbox) -> None:
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, "thread", clients)
        trace_id, held = waiting(sandbox, 2)
        request = next(thread for thread, gate in held.items() if gate == BEFORE_ANSWER)
        worker = next(thread for thread, gate in held.items() if gate == WORKER_START)
        for gate in (WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250):
            _, held = waiting(sandbox, 2)
            thread = next(t for t, g in held.items() if g == gate)
            assert thread == ("smtp-sink" if gate == SINK_BEFORE_250 else worker)
            assert release(sandbox, trace_id, thread).body["released"] == gate
        waiting(sandbox, 1)
        assert not answer.done()  # the route still waits at its gate, with the email long accepted
        assert release(sandbox, trace_id, request).status == 200
        assert answer.result().status == 202
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{trace_id}").body
    order = kinds(document)
    assert order.index("sink.accepted") < order.index("smtp.accepted") < order.index("response.sent")
    released = [e["details"]["by"] for e in document["events"] if e["kind"] == "gate.released"]
    assert released == ["you"] * 5
    assert check_document(document, "gates/email first") + unlit_events(document, "gates/email first") == []


def test_you_let_the_answer_leave_before_the_worker_starts(sandbox: Sandbox) -> None:
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, "thread", clients)
        trace_id, held = waiting(sandbox, 2)
        request = next(thread for thread, gate in held.items() if gate == BEFORE_ANSWER)
        release(sandbox, trace_id, request)
        assert answer.result(10).status == 202  # while the worker still waits at its first gate
        for _ in range(4):
            _, held = waiting(sandbox, 1)
            (thread,) = held
            release(sandbox, trace_id, thread)
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{trace_id}").body
    order = kinds(document)
    assert order.index("response.sent") < order.index("send.started") < order.index("sink.accepted")
    assert check_document(document, "gates/answer first") + unlit_events(document, "gates/answer first") == []


@pytest.mark.parametrize(("mode", "enqueues"), [("pool", ".submit("), ("queue", ".enqueue(")])
def test_a_pool_or_queue_send_waits_at_the_gates_of_the_route_and_the_worker(
    sandbox: Sandbox, mode: str, enqueues: str
) -> None:
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, mode, clients)
        trace_id, held = waiting(sandbox, 2)
        assert sorted(held.values()) == sorted([BEFORE_ANSWER, WORKER_START])
        worker = next(thread for thread, gate in held.items() if gate == WORKER_START)
        assert not worker.startswith("Thread-")  # a thread of the pool or the consumer, not one the route started
        route = call(f"{sandbox.url}api/schedule").body["sends"][0]["waiting"]
        assert any(enqueues in w["code"] for w in route if w["gate"] == BEFORE_ANSWER)
        for gate in (WORKER_START, BEFORE_SEND, SINK_BEFORE_250, AFTER_250):
            _, held = waiting(sandbox, 2)
            thread = next(t for t, g in held.items() if g == gate)
            release(sandbox, trace_id, thread)
        request = next(thread for thread, gate in waiting(sandbox, 1)[1].items() if gate == BEFORE_ANSWER)
        release(sandbox, trace_id, request)
        assert answer.result(10).status == 202
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{trace_id}").body
    order = kinds(document)
    assert order.index("sink.accepted") < order.index("response.sent")
    assert check_document(document, f"gates/{mode}") + unlit_events(document, f"gates/{mode}") == []


def test_a_gate_left_alone_lets_its_thread_go_after_the_bound(tmp_path: Path) -> None:
    with gated_sandbox(tmp_path, 0.2) as sandbox:
        reply = call(f"{sandbox.url}send-email/thread-no-context?schedule=manual", "POST", {})
        assert reply.status == 202
        assert sandbox.delivery.wait_settled(10)
        document = call(f"{sandbox.url}api/traces/{reply.body['trace_id']}").body
    gates = [(e["details"]["gate"], e["details"]["by"]) for e in document["events"] if e["kind"] == "gate.released"]
    assert (BEFORE_ANSWER, "the bound") in gates and (BEFORE_SEND, "the bound") in gates
    assert document["outcome"] == "failed"  # the mistake still fails, as it does unscheduled
    assert check_document(document, "gates/bound") == []


def test_a_send_not_scheduled_passes_no_gate(sandbox: Sandbox) -> None:
    reply = call(f"{sandbox.url}send-email/thread", "POST", {})
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{reply.body['trace_id']}").body
    assert "gate.parked" not in kinds(document) and document["outcome"] == "delivered"


def test_bad_schedules_and_releases_say_what_is_wrong(sandbox: Sandbox) -> None:
    wrong = call(f"{sandbox.url}send-email/thread?schedule=auto", "POST", {})
    assert wrong.status == 400 and "manual" in wrong.body["error"]
    nowhere = call(f"{sandbox.url}send-email/thread?schedule=manual&hold=nowhere", "POST", {})
    assert nowhere.status == 400 and "after-250" in nowhere.body["error"]
    observed = call(f"{sandbox.url}send-email/thread?schedule=observe&hold=after-250", "POST", {})
    assert observed.status == 400 and "schedule=manual" in observed.body["error"]
    computing = call(f"{sandbox.url}send-email/thread-cpu?schedule=manual", "POST", {})
    assert computing.status == 400 and "cannot be scheduled yet" in computing.body["error"]
    assert release(sandbox, "0" * 32, "request-1").status == 404
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, "sync", clients)
        trace_id, held = waiting(sandbox, 1, known)
        assert list(held.values()) == [BEFORE_SEND]  # the blocking route sends on the request's own thread
        assert release(sandbox, trace_id, "no-such-thread").status == 409
        nameless = call(f"{sandbox.url}api/schedule/{trace_id}/release", "POST", {})
        assert nameless.status == 400 and "thread" in nameless.body["error"]
        for gate in (BEFORE_SEND, SINK_BEFORE_250, AFTER_250):
            _, held = waiting(sandbox, 1, known)
            (thread,) = held
            assert release(sandbox, trace_id, thread).body["released"] == gate
        assert answer.result(10).status == 200


def test_a_challenge_is_judged_only_on_a_finished_send_of_its_route_scheduled_by_hand(sandbox: Sandbox) -> None:
    def check(slug: str, body: object) -> Reply:
        return call(f"{sandbox.url}api/challenges/{slug}/check", "POST", body)

    assert check("no-such-challenge", {"trace_id": "x"}).status == 404
    assert check("email-first", {}).status == 400
    assert check("email-first", {"trace_id": "0" * 32}).status == 404
    unscheduled = call(f"{sandbox.url}send-email/thread", "POST", {}).body["trace_id"]
    assert sandbox.delivery.wait_settled(10)
    refused = check("email-first", {"trace_id": unscheduled})
    assert refused.status == 409 and "scheduled by hand" in refused.body["error"]
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, "thread", clients)
        trace_id, held = waiting(sandbox, 2)
        early = check("email-first", {"trace_id": trace_id})
        assert early.status == 409 and "still under way" in early.body["error"]
        request = next(thread for thread, gate in held.items() if gate == BEFORE_ANSWER)
        release(sandbox, trace_id, request)  # the answer first: not the goal
        assert answer.result(10).status == 202
        for _ in range(4):  # the worker's three gates and the sink's
            _, held = waiting(sandbox, 1)
            (thread,) = held
            release(sandbox, trace_id, thread)
    assert sandbox.delivery.wait_settled(10)
    judged = check("email-first", {"trace_id": trace_id})
    assert judged.status == 200 and not judged.body["solved"]
    assert judged.body["why"].startswith("The answer came at step")


def test_no_order_saves_the_proxy_and_the_verdict_says_why(sandbox: Sandbox) -> None:
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, "thread-proxy", clients)
        trace_id, held = waiting(sandbox, 2)
        worker = next(thread for thread, gate in held.items() if gate == WORKER_START)
        release(sandbox, trace_id, worker)  # the worker first, while the request still holds its own context
        waiting(sandbox, 1)
        (request,) = [thread for thread, gate in held.items() if gate == BEFORE_ANSWER]
        release(sandbox, trace_id, request)
        assert answer.result(10).status == 202
    assert sandbox.delivery.wait_settled(10)
    judged = call(f"{sandbox.url}api/challenges/proxy/check", "POST", {"trace_id": trace_id})
    assert judged.status == 200 and not judged.body["solved"]
    assert "Working outside of application context" in judged.body["why"]
    assert "whatever the order" in judged.body["why"]


def test_the_scheduler_forgets_old_sends_but_never_one_still_holding_a_thread() -> None:
    scheduler = Scheduler(bound_s=5)
    held = scheduler.start("held", DEFAULT_DESK, "thread")
    parked = threading.Thread(target=held.park, args=(WORKER_START, lambda *a, **k: None, ("", 0, "")))
    parked.start()
    while not held.parked():
        time.sleep(0.01)
    for n in range(SCHEDULES_KEPT + 5):
        scheduler.start(f"done-{n}", DEFAULT_DESK, "thread")
    kept = [s.trace_id for s in scheduler.of_desk(DEFAULT_DESK)]
    assert len(kept) == SCHEDULES_KEPT and "held" in kept and "done-0" not in kept
    assert held.release(threading.current_thread().name) is None  # only a held thread can be released
    assert held.release(parked.name) == WORKER_START
    parked.join(5)
