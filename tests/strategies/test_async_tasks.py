"""The two views that create a task for the send and return without awaiting it, against a real sink.

``async-fire-and-forget``'s task awaits before it sends: the view's event loop cancels it as soon as the view has
returned, so the email is never sent, and the sandbox lists it as failed. ``async-to-thread-and-forget``'s task hands
the send to a thread: the task is cancelled too, but the loop waits for that thread before it closes, so the email
arrives and the answer waits for the sink all the same. Each test reads the answer, the clock, the mailbox, the
delivery log and the task's recorded fate; no asyncio warning may be printed.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.render.document import report, trace_document
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import DELIVERED, FAILED
from sandbox.strategies.modes import ANSWERS_AFTER_SEND, FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK, SEND_MODES
from sandbox.trace.timeline import timeline
from sandbox.trace.tracer import Trace
from tests.app.student_lines import code_line, unlit_events
from tests.conftest import record_trace
from tests.trace.truth import check_document

DELAY_S = 1.0  # far longer than a view that does not wait for the sink takes to answer


@pytest.fixture(autouse=True)
def no_asyncio_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Neither "Task was destroyed but it is pending" (asyncio's logger) nor "coroutine ... was never awaited"."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="asyncio"):
        warnings.simplefilter("always")
        yield
        gc.collect()  # a pending task or an unawaited coroutine complains when it is collected
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert [str(w.message) for w in caught if "never awaited" in str(w.message) or "Task" in str(w.message)] == []


def checked(trace: Trace) -> dict[str, Any]:
    """The trace's document: every sentence's claims hold, and every event lights the student's line it is about."""
    document = trace_document(report(trace))
    problems = check_document(document, trace.mode) + unlit_events(document, trace.mode)
    assert not problems, "\n".join(problems)
    return document


def send(client: FlaskClient, mode: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post(f"/send-email/{mode}", json={})
    waited_s = time.perf_counter() - started
    assert response.status_code == 202, response.get_json()
    return response.get_json(), waited_s


def test_both_are_served_and_answer_202_queued() -> None:
    for mode in (FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK):
        assert mode in SEND_MODES and mode not in ANSWERS_AFTER_SEND


def test_a_task_that_awaits_first_is_cancelled_and_its_email_never_sent(
    app: Flask, sink: Sink, client: FlaskClient
) -> None:
    sink.handler.delay_s = DELAY_S
    body, waited_s = send(client, FORGOTTEN_TASK)
    assert body["status"] == "queued"
    assert waited_s < DELAY_S  # nothing was sent, so nothing held the answer for the sink's delay
    assert sink.mailbox.copies(body["trace_id"]) == 0
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.trace_id == body["trace_id"] and failure.outcome == FAILED
    assert failure.error.startswith("never sent: Task-") and "cancelled at line" in failure.error
    stats = app.extensions["sandbox.delivery"].stats()
    assert (stats["sent"], stats[FAILED], stats["pending"]) == (1, 1, 0)
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    kinds = [e.kind for e in trace.events]
    assert "send.started" not in kinds and "sink.data_received" not in kinds
    order = ["task.created", "coroutine.finished", "task.started", "task.cancelled", "loop.closed", "task.unsent"]
    assert [k for k in kinds if k in order] == order, kinds
    assert kinds[-1] == "response.sent"
    cancelled = trace.first("task.cancelled")
    assert cancelled.thread_id == trace.first("coroutine.started").thread_id  # on the loop's own thread
    assert "await asyncio.sleep(0)" in code_line(cancelled.file, cancelled.line)
    document = checked(trace)
    assert document["outcome"] == "failed"
    assert any(m["title"] == "Did the task outlive the view?" for m in document["key_moments"])


def test_a_task_that_hands_the_send_to_a_thread_is_cancelled_but_the_answer_waits_for_the_sink(
    app: Flask, sink: Sink, client: FlaskClient
) -> None:
    sink.handler.delay_s = DELAY_S
    body, waited_s = send(client, FORGOTTEN_THREAD_TASK)
    assert waited_s >= DELAY_S  # the loop closed only after the thread's send had its 250
    assert sink.mailbox.copies(body["trace_id"]) == 1
    assert app.extensions["sandbox.delivery"].failures() == []
    assert app.extensions["sandbox.delivery"].stats()[DELIVERED] == 1
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    loop, send_started = trace.first("coroutine.started"), trace.first("send.started")
    assert send_started.thread_id not in (loop.thread_id, trace.first("request.received").thread_id)
    cancelled, accepted, closed = (
        trace.first("task.cancelled"),
        trace.first("smtp.accepted"),
        trace.first("loop.closed"),
    )
    assert cancelled.t_ns < accepted.t_ns < closed.t_ns < trace.first("response.sent").t_ns
    assert trace.first("task.unsent") is None
    document = checked(trace)
    assert document["outcome"] == "delivered"
    lanes = {lane.name: [span.label for span in lane.spans] for lane in timeline(trace).lanes}
    assert lanes["Task on the event loop"] == [
        f"{trace.first('task.created').details['task']}: send_in_thread(), cancelled"
    ]
    assert "the loop closing (asyncio.run)" in lanes["Event loop thread"]
    assert lanes["Executor thread"] == ["waiting for the SMTP server"]


@pytest.mark.parametrize("mode", [FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK])
def test_with_the_server_down_every_email_is_listed_as_failed(mode: str, closed_port: int) -> None:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": closed_port})
    trace = record_trace(app, mode)
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.trace_id == trace.trace_id and failure.outcome == FAILED
    refused = trace.first("smtp.failed")
    if mode == FORGOTTEN_TASK:
        assert refused is None and failure.error.startswith("never sent")
    else:  # the thread's refused connection, which no code of the view's could see
        assert refused is not None and failure.error == refused.details["error"]
    assert checked(trace)["outcome"] == "failed"
