"""The ``async-blocking`` variant against a real sink: an ``async def`` view that calls ``mail.send`` itself sends on
its event loop's own thread, and the answer still waits for the sink's 250 (its failures: ``test_async_view``)."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient

from sandbox.render.document import report, trace_document
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import DELIVERED
from sandbox.strategies.modes import ANSWERS_AFTER_SEND
from sandbox.strategies.modes import ASYNC_BLOCKING as MODE
from sandbox.trace.timeline import timeline
from tests.app.student_lines import unlit_events
from tests.trace.truth import check_document

DELAY_S = 0.3


def test_the_answer_waits_for_the_250_and_the_loop_thread_sends(app: Flask, sink: Sink, client: FlaskClient) -> None:
    assert MODE in ANSWERS_AFTER_SEND
    sink.handler.delay_s = DELAY_S
    started = time.perf_counter()
    response = client.post(f"/send-email/{MODE}", json={})
    waited_s = time.perf_counter() - started
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "sent"
    assert waited_s >= DELAY_S  # the sink held its 250 that long, and the answer came after it
    assert sink.mailbox.copies(body["trace_id"]) == 1
    assert app.extensions["sandbox.delivery"].stats()[DELIVERED] == 1
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    loop, send = trace.first("coroutine.started"), trace.first("send.started")
    request = trace.first("request.received")
    assert loop.thread_id == send.thread_id != request.thread_id  # no executor: the loop's own thread sends
    assert "via" not in send.details
    document = trace_document(report(trace))
    assert check_document(document, MODE) + unlit_events(document, MODE) == []
    actions = " ".join(row["action"] for row in document["steps"])
    assert "The coroutine calls mail.send(msg) itself, with no await" in actions
    lanes = {lane.name: [span.label for span in lane.spans] for lane in timeline(trace).lanes}
    assert "the coroutine, blocked in mail.send()" in lanes["Event loop thread"]
    assert "Executor thread" not in lanes
