"""A pool of one thread whose task waits for another task of the same pool: the second never gets a thread, the wait
gives up, and the send is reported failed, never lost; the trace and the schedule say who waited for what."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import emails
from sandbox.client import call
from sandbox.runtime import Sandbox
from sandbox.strategies.modes import STARVED
from sandbox.trace.gates import BEFORE_ANSWER, WORKER_START
from tests.app.student_lines import unlit_events
from tests.conftest import settings_for_tests
from tests.strategies.test_gates import release, start, waiting
from tests.trace.truth import check_document

PATIENCE_S = 0.5


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder: Path = tmp_path_factory.mktemp("starved")
    settings = settings_for_tests(delay_s=0.0, gate_bound_s=10.0, queue_url=f"sqlite:///{folder}/q.db")
    with pytest.MonkeyPatch.context() as patch, Sandbox(settings) as running:
        patch.setattr(emails, "RENDER_TIMEOUT_S", PATIENCE_S)  # the student's patience, shortened for the tests
        yield running


def events(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in document["events"] if e["kind"] == kind]


def test_the_follow_up_never_gets_the_only_thread_and_the_send_is_reported_failed(sandbox: Sandbox) -> None:
    reply = call(f"{sandbox.url}send-email/{STARVED}", "POST", {})
    assert reply.status == 202
    assert sandbox.delivery.wait_settled(10)
    trace_id = reply.body["trace_id"]
    document = call(f"{sandbox.url}api/traces/{trace_id}").body
    (queued,) = events(document, "follow_up.queued")
    (waited,) = events(document, "follow_up.waiting")
    (gave_up,) = events(document, "follow_up.timed_out")
    (failed,) = events(document, "worker.failed")
    worker = failed["thread"]
    assert queued["details"]["busy"] == [worker] and waited["details"]["starved"] is True
    assert gave_up["details"]["ran"] is False and gave_up["details"]["waited_ms"] >= PATIENCE_S * 1000 * 0.9
    assert failed["details"]["error"].startswith("TimeoutError")
    assert not events(document, "send.started")  # the email never went: failed for sure
    failures = call(f"{sandbox.url}api/failures").body["failures"]
    assert any(f["trace_id"] == trace_id and f["outcome"] == "failed" for f in failures)
    assert check_document(document, "starved") + unlit_events(document, "starved") == []
    steps = " ".join(row["action"] for row in document["steps"])
    assert f"busy now: {worker}, so the task waits in the pool's queue" in steps
    assert "no thread is left to run render_welcome()" in steps
    time.sleep(0.2)  # the follow-up runs once the thread is free, after its trace ended: nothing more is recorded
    assert len(call(f"{sandbox.url}api/traces/{trace_id}").body["events"]) == len(document["events"])


def test_scheduled_by_hand_the_starved_worker_is_listed_as_blocked_by_itself(sandbox: Sandbox) -> None:
    known = {s["trace_id"] for s in call(f"{sandbox.url}api/schedule").body["sends"]}
    with ThreadPoolExecutor(1) as clients:
        answer = start(sandbox, STARVED, clients)
        trace_id, held = waiting(sandbox, 2, known)
        assert sorted(held.values()) == sorted([BEFORE_ANSWER, WORKER_START])
        worker = next(thread for thread, gate in held.items() if gate == WORKER_START)
        release(sandbox, trace_id, worker)
        deadline = time.monotonic() + 5
        while not (send := call(f"{sandbox.url}api/schedule").body["sends"][0])["blocked"]:
            assert time.monotonic() < deadline, "the worker was never listed as blocked"
            time.sleep(0.02)
        (blocked,) = send["blocked"]
        assert (blocked["thread"], blocked["holder"]) == (worker, worker)
        assert blocked["waits_for"] == "the result of render_welcome()" and ".result(" in blocked["code"]
        assert "this one included" in blocked["why"]
        request = next(thread for thread, gate in held.items() if gate == BEFORE_ANSWER)
        release(sandbox, trace_id, request)
        assert answer.result(10).status == 202
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{trace_id}").body
    assert document["outcome"] == "failed"
    judged = call(f"{sandbox.url}api/challenges/starved-pool/check", "POST", {"trace_id": trace_id}).body
    assert judged["solved"] and "Only the wait's own timeout ended it" in judged["why"], judged
    assert check_document(document, "starved/held") + unlit_events(document, "starved/held") == []
