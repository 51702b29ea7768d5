from __future__ import annotations

import threading

from flask import Flask

from sandbox.smtp.sink import Sink
from sandbox.trace.tracer import SINK_THREAD_NAME, Tracer
from tests.conftest import record_trace


def test_concurrent_recording_keeps_every_event() -> None:
    tracer = Tracer()
    tracer.start("t", "thread", "threaded", 0.0, {})

    def record_many(n: int) -> None:
        for i in range(500):
            tracer.record("t", "test.event", n=n, i=i)

    threads = [threading.Thread(target=record_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trace = tracer.get("t")
    assert len(trace.events) == 8 * 500
    assert [e.t_ns for e in trace.events] == sorted(e.t_ns for e in trace.events)


def test_keeps_the_newest_traces_and_ignores_unknown_ids() -> None:
    tracer = Tracer(capacity=3)
    for n in range(5):
        tracer.start(f"t{n}", "sync", "threaded", 0.0, {})
    assert [tracer.get(f"t{n}") is not None for n in range(5)] == [False, False, True, True, True]
    tracer.record("t0", "ignored")
    tracer.record("nope", "ignored")
    assert tracer.get("t4").events == []


def test_a_partner_comes_only_from_the_same_comparison() -> None:
    tracer = Tracer()
    for trace_id, mode in (("a", "sync"), ("b", "thread"), ("c", "thread"), ("d", "thread")):
        tracer.start(trace_id, mode, "threaded", 0.0, {})
    tracer.join_comparison("a", "cmp-1")
    tracer.join_comparison("b", "cmp-1")
    tracer.join_comparison("d", "cmp-2")
    assert tracer.partner(tracer.get("a"), ("thread",)).trace_id == "b"
    assert tracer.partner(tracer.get("c"), ("sync",)) is None  # no comparison, no partner
    assert tracer.partner(tracer.get("d"), ("sync",)) is None  # a comparison of one


def test_disabled_tracer_records_nothing() -> None:
    tracer = Tracer(enabled=False)
    tracer.start("t", "sync", "threaded", 0.0, {})
    tracer.record("t", "x")
    assert tracer.get("t") is None


def test_thread_trace_is_honest(app: Flask, sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    trace = record_trace(app, "thread")
    kinds = [e.kind for e in trace.events]
    assert kinds.index("response.sent") < kinds.index("sink.accepted")
    assert trace.response_ms < 500
    assert trace.accepted_ms >= 1000
    times = [e.t_ns for e in trace.events]
    assert times == sorted(times)
    request_thread = trace.events[0].thread_id
    worker_kinds = {
        "worker.started",
        "context.pushed",
        "send.started",
        "smtp.connected",
        "smtp.data_sent",
        "smtp.accepted",
        "worker.finished",
    }
    assert worker_kinds <= set(kinds)
    worker = trace.first("worker.spawned").details["worker"]  # the name Thread() gave the student's thread
    assert worker.endswith("(send_async_email)")
    for event in trace.events:
        if event.kind in worker_kinds:
            assert event.thread_id != request_thread and event.thread == worker, event
        if event.kind.startswith("sink."):
            assert event.thread == SINK_THREAD_NAME, event
    assert trace.first("response.sent").thread_id == request_thread
    assert trace.first("sink.delay_started").details["delay_s"] == 1.0


def test_sync_trace_is_honest(app: Flask, sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    trace = record_trace(app, "sync")
    kinds = [e.kind for e in trace.events]
    assert kinds.index("sink.accepted") < kinds.index("smtp.accepted") < kinds.index("response.sent")
    assert trace.response_ms >= 1000 and trace.accepted_ms >= 1000
    assert "worker.started" not in kinds
    request_thread = trace.events[0].thread_id
    assert all(e.thread_id == request_thread for e in trace.events if not e.kind.startswith("sink."))
    assert trace.first("response.sent").details["status"] == 200


def test_failed_sends_are_traced(recorded_traces) -> None:
    sync, thread = recorded_traces[-1]
    assert sync.first("smtp.failed") is not None and sync.first("response.sent").details["status"] == 502
    assert "refused" in thread.first("worker.failed").details["error"]
    assert thread.complete and thread.accepted_ms is None
