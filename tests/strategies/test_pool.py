"""The pool strategy: bounded threads, retries for what is worth retrying, and nothing lost at shutdown."""

from __future__ import annotations

import random
import threading
import time

from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.client import call
from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from tests.conftest import record_trace, settings_for_tests


def kinds(trace) -> list[str]:
    return [e.kind for e in trace.events]


def test_pool_delivers_from_a_pool_thread(app: Flask, sink: Sink) -> None:
    trace = record_trace(app, "pool")
    assert {"pool.queued", "worker.started", "context.pushed", "attempt.started", "worker.finished"} <= set(
        kinds(trace)
    )
    assert trace.first("worker.started").thread.startswith("pool")
    assert trace.first("response.sent").details["status"] == 202
    assert sink.mailbox.by_trace(trace.trace_id) is not None


def seed_rejecting_first_then_accepting(probability: float) -> int:
    """A seed whose first draw rejects and whose second accepts (one draw per message at MAIL)."""
    return next(s for s in range(10_000) if (lambda r: r.random() < probability <= r.random())(random.Random(s)))


def test_pool_retries_a_451_and_delivers(app: Flask, sink: Sink) -> None:
    app.config["SANDBOX_RETRY_BACKOFF"] = 0.05
    sink.update_settings(
        {
            "reject_probability": 0.5,
            "reject_code": 451,
            "reject_stage": "MAIL",
            "seed": seed_rejecting_first_then_accepting(0.5),
        }
    )
    trace = record_trace(app, "pool")
    attempts = [e for e in trace.events if e.kind == "attempt.failed"]
    assert len(attempts) == 1 and attempts[0].details["final"] is False and "451" in attempts[0].details["error"]
    assert kinds(trace).count("attempt.started") == 2
    assert trace.first("worker.finished") is not None
    assert sink.mailbox.by_trace(trace.trace_id) is not None


def test_pool_reports_a_550_without_retrying(client: FlaskClient, app: Flask, sink: Sink) -> None:
    sink.update_settings({"reject_probability": 1.0, "reject_code": 550, "reject_stage": "RCPT"})
    trace = record_trace(app, "pool")
    assert kinds(trace).count("attempt.started") == 1
    assert trace.first("attempt.failed").details["final"] is True
    [failure] = client.get("/api/failures").get_json()["failures"]
    assert failure["mode"] == "pool" and "550" in failure["error"]


def test_pool_gives_up_after_its_attempts(client: FlaskClient, app: Flask, sink: Sink) -> None:
    app.config.update(SANDBOX_RETRY_BACKOFF=0.01, SANDBOX_POOL_ATTEMPTS=3)
    sink.update_settings({"reject_probability": 1.0, "reject_code": 421, "reject_stage": "MAIL"})
    trace = record_trace(app, "pool")
    assert kinds(trace).count("attempt.started") == 3
    assert client.get("/api/stats").get_json()["failed"] == 1


def test_pool_never_runs_more_threads_than_its_size() -> None:
    with Sandbox(settings_for_tests(delay_s=0.3, pool_size=2)) as sandbox:
        peak = 0
        stop = threading.Event()
        earlier = set(threading.enumerate())

        def watch() -> None:
            nonlocal peak
            while not stop.is_set():
                mine = [t for t in threading.enumerate() if t.name.startswith("pool") and t not in earlier]
                peak = max(peak, len(mine))
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        replies = [call(f"{sandbox.url}send-email/pool", "POST", {}) for _ in range(8)]
        assert all(r.status == 202 for r in replies)
        assert sandbox.delivery.wait_settled(10)
        stop.set()
        watcher.join()
        assert peak == 2
        assert len(sandbox.sink.mailbox.messages()) == 8


def test_shutdown_delivers_or_reports_every_pending_send() -> None:
    sandbox = Sandbox(settings_for_tests(delay_s=0.5, pool_size=1, smtp_timeout_s=1.2)).start()
    sink = sandbox.sink
    ids = [call(f"{sandbox.url}send-email/pool", "POST", {}).body["trace_id"] for _ in range(5)]
    undelivered = {f.trace_id for f in sandbox.stop()}
    delivered = {m.trace_id for m in sink.mailbox.messages()}
    assert delivered and undelivered, "with one worker and a short wait, some arrive and some cannot"
    assert delivered.isdisjoint(undelivered)
    assert delivered | undelivered == set(ids)


def test_a_bounded_backlog_refuses_with_503_and_retry_after_and_accepts_nothing(sink: Sink) -> None:
    sink.handler.delay_s = 0.5
    app = create_app(
        {"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_POOL_SIZE": 1, "SANDBOX_POOL_BACKLOG": 1}, sink=sink
    )
    client = app.test_client()
    running, waiting, refused = (client.post("/send-email/pool", json={}) for _ in range(3))
    assert (running.status_code, waiting.status_code, refused.status_code) == (202, 202, 503)
    assert refused.headers["Retry-After"] == "1"
    body = refused.get_json()
    assert "queue is full" in body["error"] and body["trace_id"]
    log = app.extensions["sandbox.delivery"]
    assert log.stats()["sent"] == 2, "a refused email was never accepted"
    assert log.wait_settled(10) and log.failures() == []
    document = client.get(f"/api/traces/{body['trace_id']}").get_json()
    assert document["outcome"] == "refused"
    assert any("The pool's queue is full" in row["action"] for row in document["steps"])
    assert sorted(m.trace_id for m in sink.mailbox.messages()) == sorted(
        r.get_json()["trace_id"] for r in (running, waiting)
    )
    app.extensions["sandbox.pool"].stop(log)


def test_an_unbounded_backlog_accepts_every_send(sink: Sink) -> None:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_POOL_SIZE": 1}, sink=sink)
    client = app.test_client()
    assert [client.post("/send-email/pool", json={}).status_code for _ in range(5)] == [202] * 5
    assert app.extensions["sandbox.delivery"].wait_settled(10)
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])
