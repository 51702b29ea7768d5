"""The shared count of sent emails: two workers held at the right gates lose an update, and under the lock the same
order makes the second wait for the first, which the trace and the schedule both say."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sandbox.client import Reply, call
from sandbox.runtime import Sandbox
from sandbox.strategies.modes import COUNT_MODE, LOCKED_COUNT_MODE
from sandbox.trace.facts import Facts
from sandbox.trace.gates import BEFORE_ANSWER, COUNT_READ
from sandbox.web.predictions import every_email_counted
from tests.app.student_lines import unlit_events
from tests.strategies.test_gates import gated_sandbox, release, start
from tests.trace.truth import check_document

BOUND_S = 10.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with gated_sandbox(tmp_path_factory.mktemp("counting"), BOUND_S) as running:
        yield running


def sends(sandbox: Sandbox, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    return {s["trace_id"]: s for s in call(f"{sandbox.url}api/schedule").body["sends"] if s["trace_id"] in trace_ids}


def started(sandbox: Sandbox, mode: str, clients: ThreadPoolExecutor, known: set[str]) -> str:
    """Start a scheduled send and return its trace id once its threads wait at their first gates."""
    start(sandbox, mode, clients)
    deadline = time.monotonic() + 10
    while True:
        new = [s for s in call(f"{sandbox.url}api/schedule").body["sends"] if s["trace_id"] not in known]
        if new and len(new[0]["waiting"]) == 2:
            known.add(new[0]["trace_id"])
            return new[0]["trace_id"]
        assert time.monotonic() < deadline, "the send's threads never reached their first gates"
        time.sleep(0.02)


def run_until(sandbox: Sandbox, trace_id: str, gate: str) -> str:
    """Release the send's worker and sink, gate by gate, until its worker waits at ``gate`` (the route stays held);
    the worker's name."""
    deadline = time.monotonic() + 10
    while True:
        waiting = sends(sandbox, [trace_id])[trace_id]["waiting"]
        if any(w["gate"] == gate for w in waiting):
            return next(w["thread"] for w in waiting if w["gate"] == gate)
        movable = [w for w in waiting if w["gate"] != BEFORE_ANSWER]
        if movable:
            release(sandbox, trace_id, movable[0]["thread"])
        assert time.monotonic() < deadline, f"the worker never reached {gate!r}: {waiting}"
        time.sleep(0.02)


def finish(sandbox: Sandbox, trace_ids: list[str]) -> None:
    """Release every thread still held until the sends are over."""
    deadline = time.monotonic() + 20
    while True:
        current = sends(sandbox, trace_ids)
        if all(s["complete"] and not s["waiting"] for s in current.values()):
            return
        for trace_id, send in current.items():
            for waiting in send["waiting"]:
                release(sandbox, trace_id, waiting["thread"])
        assert time.monotonic() < deadline, f"the sends never ended: {current}"
        time.sleep(0.02)


def check(sandbox: Sandbox, slug: str, trace_ids: list[str]) -> Reply:
    return call(f"{sandbox.url}api/challenges/{slug}/check", "POST", {"trace_ids": trace_ids})


def documents(sandbox: Sandbox, trace_ids: list[str]) -> list[dict[str, Any]]:
    return [call(f"{sandbox.url}api/traces/{trace_id}").body for trace_id in trace_ids]


def written(document: dict[str, Any]) -> dict[str, Any]:
    return next(e["details"] for e in document["events"] if e["kind"] == "count.written")


def both_read_first(sandbox: Sandbox) -> tuple[str, str]:
    """Two counting sends, both workers let read the count before either writes it; their trace ids once over."""
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(2) as clients:
        first = started(sandbox, COUNT_MODE, clients, known)
        second = started(sandbox, COUNT_MODE, clients, known)
        run_until(sandbox, first, COUNT_READ)
        run_until(sandbox, second, COUNT_READ)  # both have read, neither has written
        finish(sandbox, [first, second])
    assert sandbox.delivery.wait_settled(10)
    return first, second


def test_two_workers_that_read_before_either_writes_lose_an_update(sandbox: Sandbox) -> None:
    first, second = both_read_first(sandbox)
    one, two = documents(sandbox, [first, second])
    assert written(one)["read"] == written(two)["read"]
    assert written(one)["value"] == written(two)["value"]  # two emails, one count
    assert sorted(w["found"] != w["read"] for w in (written(one), written(two))) == [False, True]
    for n, document in enumerate((one, two)):
        assert check_document(document, f"count/{n}") + unlit_events(document, f"count/{n}") == []
    lost = next(d for d in (one, two) if written(d)["found"] != written(d)["read"])
    assert any("this write overwrites it, so that update is lost" in row["action"] for row in lost["steps"])
    judged = check(sandbox, "lost-update", [first, second])
    assert judged.status == 200 and judged.body["solved"], judged.body
    assert "is lost" in judged.body["why"] and "went from" in judged.body["why"]


def test_workers_that_count_in_turn_lose_nothing(sandbox: Sandbox) -> None:
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(2) as clients:
        first = started(sandbox, COUNT_MODE, clients, known)
        finish(sandbox, [first])
        second = started(sandbox, COUNT_MODE, clients, known)
        finish(sandbox, [second])
    one, two = documents(sandbox, [first, second])
    assert written(two)["read"] == written(one)["value"]
    judged = check(sandbox, "lost-update", [first, second])
    assert judged.status == 200 and not judged.body["solved"]
    assert "no update was lost" in judged.body["why"]


def test_under_the_lock_the_second_worker_waits_and_nothing_is_lost(sandbox: Sandbox) -> None:
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(2) as clients:
        first = started(sandbox, LOCKED_COUNT_MODE, clients, known)
        second = started(sandbox, LOCKED_COUNT_MODE, clients, known)
        holder = run_until(sandbox, first, COUNT_READ)  # inside the lock, between its read and its write
        deadline = time.monotonic() + 10
        while not sends(sandbox, [second])[second]["blocked"]:
            waiting = [w for w in sends(sandbox, [second])[second]["waiting"] if w["gate"] != BEFORE_ANSWER]
            if waiting:
                release(sandbox, second, waiting[0]["thread"])
            assert time.monotonic() < deadline, "the second worker never reached the lock"
            time.sleep(0.02)
        (blocked,) = sends(sandbox, [second])[second]["blocked"]
        assert blocked["waits_for"] == "stats_lock" and blocked["holder"] == holder and blocked["role"] == "worker"
        assert "with stats_lock:" in blocked["code"]
        assert release(sandbox, second, blocked["thread"]).status == 409  # a lock is no gate: its holder frees it
        finish(sandbox, [first, second])
    one, two = documents(sandbox, [first, second])
    assert written(two)["read"] == written(one)["value"]
    assert all(written(d)["found"] == written(d)["read"] for d in (one, two))
    waits = [e for e in two["events"] if e["kind"] == "lock.waiting"]
    assert [e["details"]["holder"] for e in waits] == [holder]
    for n, document in enumerate((one, two)):
        assert check_document(document, f"locked/{n}") + unlit_events(document, f"locked/{n}") == []
    assert any(f"but {holder} holds it" in row["action"] for row in two["steps"])
    judged = check(sandbox, "lost-update-locked", [first, second])
    assert judged.status == 200 and not judged.body["solved"]
    assert (
        f"while {holder} held it" in judged.body["why"] and "no order of releases loses an update" in judged.body["why"]
    )


def test_a_two_send_challenge_needs_two_different_sends(sandbox: Sandbox) -> None:
    for body in ({"trace_id": "x"}, {"trace_ids": ["x"]}, {"trace_ids": ["x", "x"]}, {"trace_ids": "x"}):
        refused = call(f"{sandbox.url}api/challenges/lost-update/check", "POST", body)
        assert refused.status == 400 and "2 different sends" in refused.body["error"]


def test_the_lessons_verdict_reads_the_lost_update_from_the_writes(sandbox: Sandbox) -> None:
    first, second = both_read_first(sandbox)
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(2) as clients:
        in_turn = [started(sandbox, COUNT_MODE, clients, known)]
        finish(sandbox, in_turn)
        in_turn.append(started(sandbox, COUNT_MODE, clients, known))
        finish(sandbox, in_turn)
    lost = every_email_counted([Facts(sandbox.tracer.get(t)) for t in (first, second)])
    assert lost.answer == "lost" and "1 write replaced a number other than the one its worker had read" in lost.evidence
    kept = every_email_counted([Facts(sandbox.tracer.get(t)) for t in in_turn])
    assert kept.answer == "all_counted" and "every write found the number its worker had read" in kept.evidence
    assert every_email_counted([Facts(sandbox.tracer.get(first))]).answer is None
