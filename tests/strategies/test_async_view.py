"""The ``async-await`` variant against a real sink: writing the route as ``async def`` does not let the answer go first.

Each test sends through the real route, Flask's ``ensure_sync`` (asgiref), ``asyncio.to_thread``, Flask-Mail and
smtplib to a real aiosmtpd sink, then reads the answer, the clock, the mailbox, the delivery log and the trace.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.render.document import report, trace_document
from sandbox.smtp.client import TO_THREAD as VIA
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import DELIVERED, FAILED, UNKNOWN
from sandbox.strategies.modes import ANSWERS_AFTER_SEND, ASYNC_BLOCKING, SEND_MODES
from sandbox.strategies.modes import ASYNC_MODE as MODE
from sandbox.trace.facts import Facts
from sandbox.trace.tracer import Trace
from tests.conftest import record_trace
from tests.trace.truth import check_document

DELAY_S = 0.3


def checked_document(trace: Trace) -> dict[str, Any]:
    """The trace as the page shows it; every sentence's claims hold."""
    document = trace_document(report(trace))
    problems = check_document(document, trace.trace_id)
    assert not problems, "\n".join(problems)
    return document


def thread_of(trace: Trace, kind: str) -> tuple[str, int]:
    event = trace.first(kind)
    assert event is not None, f"no {kind} in {[e.kind for e in trace.events]}"
    return event.thread, event.thread_id


def test_the_mode_is_served_and_answers_after_its_send() -> None:
    assert MODE in SEND_MODES and MODE in ANSWERS_AFTER_SEND


def test_the_answer_leaves_only_after_the_sinks_250(app: Flask, sink: Sink, client: FlaskClient) -> None:
    sink.handler.delay_s = DELAY_S
    started = time.perf_counter()
    response = client.post(f"/send-email/{MODE}", json={})
    waited_s = time.perf_counter() - started
    body = response.get_json()
    assert 200 <= response.status_code < 300, body
    # The sink holds the message DELAY_S before its 250, and the answer came after that 250: it cannot be sooner.
    assert waited_s >= DELAY_S and body["response_ms"] >= DELAY_S * 1000
    assert sink.mailbox.copies(body["trace_id"]) == 1, "the email was in the mailbox before the answer came back"
    log = app.extensions["sandbox.delivery"]
    assert log.pending() == {} and log.stats()[DELIVERED] == 1, "the send was settled before the answer"
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    assert trace is not None and trace.complete
    accepted, answered = trace.first("sink.accepted"), trace.first("response.sent")
    assert accepted is not None and answered is not None and accepted.t_ns < answered.t_ns


def test_the_answer_is_200_sent_like_the_blocking_route(sink: Sink, client: FlaskClient) -> None:
    sink.handler.delay_s = 0.05
    response = client.post(f"/send-email/{MODE}", json={})
    assert response.status_code == 200 and response.get_json()["status"] == "sent"


def test_the_coroutine_and_the_send_run_on_threads_other_than_the_requests(app: Flask, sink: Sink) -> None:
    sink.handler.delay_s = 0.05
    trace = record_trace(app, MODE)
    request = thread_of(trace, "request.received")
    loop = thread_of(trace, "coroutine.started")
    executor = thread_of(trace, "send.started")
    assert thread_of(trace, "coroutine.called") == request == thread_of(trace, "response.sent")
    assert len({request, loop, executor}) == 3, (request, loop, executor)
    assert thread_of(trace, "smtp.data_sent") == executor == thread_of(trace, "smtp.accepted")
    assert thread_of(trace, "coroutine.finished") == loop
    assert trace.first("send.started").details["via"] == VIA
    assert trace.first("coroutine.started").details["loop"] == loop[0]
    kinds = [e.kind for e in trace.events if e.kind not in ("smtp.connecting", "smtp.command")]
    order = ["coroutine.called", "coroutine.started", "send.started", "sink.accepted", "smtp.accepted"]
    order += ["coroutine.finished", "response.sent"]
    assert [k for k in kinds if k in order] == order
    facts = Facts(trace)
    assert facts.handoff is None and facts.worker is None and facts.outcome == "delivered"
    checked_document(trace)


@pytest.mark.parametrize("mode", ["sync", MODE, ASYNC_BLOCKING])
def test_a_dead_server_answers_502_and_is_listed_as_the_blocking_route_does(mode: str, closed_port: int) -> None:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": closed_port})
    client = app.test_client()
    response = client.post(f"/send-email/{mode}", json={})
    body = response.get_json()
    assert response.status_code == 502 and body["outcome"] == FAILED and "refused the connection" in body["error"]
    [failure] = client.get("/api/failures").get_json()["failures"]
    assert failure["trace_id"] == body["trace_id"] and failure["mode"] == mode and failure["outcome"] == FAILED
    assert app.extensions["sandbox.delivery"].pending() == {}
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    assert trace is not None and trace.complete
    checked_document(trace)
    if mode != "sync":
        assert thread_of(trace, "smtp.failed") == thread_of(trace, "send.started") != thread_of(trace, "response.sent")
        assert trace.first("coroutine.failed").details["error"] == body["error"]


@pytest.mark.parametrize("mode", ["sync", MODE, ASYNC_BLOCKING])
def test_a_server_slower_than_the_timeout_answers_504_with_an_unknown_fate(mode: str, sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 0.3}, sink=sink)
    response = app.test_client().post(f"/send-email/{mode}", json={})
    body = response.get_json()
    assert response.status_code == 504 and body["outcome"] == UNKNOWN
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.mode == mode and failure.outcome == UNKNOWN
    time.sleep(0.9)  # the sink's side ends (it finds the client gone), so its lane is in the trace too
    checked_document(app.extensions["sandbox.tracer"].get(body["trace_id"]))


def test_a_task_the_view_leaves_running_is_cancelled_when_its_loop_ends(app: Flask) -> None:
    """What Flask's docs say, and the quiz's create_task option rests on: ensure_sync runs the view's loop only
    until the view returns; a task it started and did not await is cancelled then, not left to finish."""
    started: list[asyncio.Task[None]] = []

    async def view() -> str:
        started.append(asyncio.create_task(asyncio.sleep(5)))
        return "answered"

    began = time.perf_counter()
    with app.app_context():
        assert app.ensure_sync(view)() == "answered"
    assert time.perf_counter() - began < 2, "the call waited for the task"
    [task] = started
    assert task.cancelled()
