"""The queue strategy on real Huey stores: retries, durability across a restart, and a consumer of its own."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask

from sandbox import create_app
from sandbox.app.emails import welcome_email
from sandbox.client import call
from sandbox.config import Settings
from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from sandbox.strategies.queue import desk_port, message_data, message_from_data
from sandbox.testing import free_port
from sandbox.trace.tracer import Trace
from tests.conftest import settings_for_tests

ROOT = Path(__file__).resolve().parents[2]


def finished_trace(sandbox: Sandbox, trace_id: str, timeout: float = 15) -> Trace:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trace = sandbox.tracer.get(trace_id)
        if trace is not None and trace.complete:
            return trace
        time.sleep(0.02)
    raise AssertionError(f"trace {trace_id} did not finish")


def test_queue_answers_once_stored_and_a_consumer_worker_delivers(tmp_path: Path) -> None:
    settings = settings_for_tests(delay_s=0.3, queue_url=f"sqlite:///{tmp_path}/q.db")
    with Sandbox(settings) as sandbox:
        reply = call(f"{sandbox.url}send-email/queue", "POST", {})
        assert reply.status == 202 and reply.body["status"] == "queued" and reply.elapsed_ms < 300
        trace = finished_trace(sandbox, reply.body["trace_id"])
        kinds = [e.kind for e in trace.events]
        assert kinds.index("queue.stored") < kinds.index("response.sent")
        assert {"worker.started", "context.pushed", "attempt.started", "sink.accepted", "worker.finished"} <= set(kinds)
        assert trace.first("worker.started").thread_id != trace.first("request.received").thread_id
        assert sandbox.sink.mailbox.by_trace(trace.trace_id) is not None


def test_queue_retries_a_451_and_delivers(tmp_path: Path) -> None:
    seed = next(s for s in range(10_000) if (lambda r: r.random() < 0.5 <= r.random())(random.Random(s)))
    settings = settings_for_tests(
        delay_s=0,
        queue_url=f"sqlite:///{tmp_path}/q.db",
        retry_backoff_s=0.1,
        reject_probability=0.5,
        reject_code=451,
        reject_stage="MAIL",
        seed=seed,
    )
    with Sandbox(settings) as sandbox:
        trace = finished_trace(sandbox, call(f"{sandbox.url}send-email/queue", "POST", {}).body["trace_id"])
        retry = trace.first("attempt.failed")
        assert retry.details["final"] is False and "451" in retry.details["error"]
        assert [e.details["attempt"] for e in trace.events if e.kind == "attempt.started"] == [1, 2]
        assert trace.first("worker.finished") is not None


def test_queue_reports_a_550_without_retrying(tmp_path: Path) -> None:
    settings = settings_for_tests(queue_url=f"sqlite:///{tmp_path}/q.db", reject_probability=1.0, reject_code=550)
    with Sandbox(settings) as sandbox:
        trace = finished_trace(sandbox, call(f"{sandbox.url}send-email/queue", "POST", {}).body["trace_id"])
        assert [e.kind for e in trace.events].count("attempt.started") == 1
        [failure] = sandbox.delivery.failures()
        assert failure.mode == "queue" and "550" in failure.error


def survives_a_restart(queue_url: str) -> None:
    """Queue while the mail server is down, stop, start again with a sink: each email arrives exactly once."""
    down = settings_for_tests(
        mail_server=("127.0.0.1", free_port()),
        queue_url=queue_url,
        retry_backoff_s=1.0,
        pool_attempts=5,
        smtp_timeout_s=2,
    )
    first = Sandbox(down).start()
    ids = {call(f"{first.url}send-email/queue", "POST", {"name": f"S{n}"}).body["trace_id"] for n in range(3)}
    time.sleep(0.5)
    assert first.stop() == [], "queued sends are not failures when the sandbox stops"
    assert first.still_queued == 3
    with Sandbox(settings_for_tests(delay_s=0, queue_url=queue_url)) as second:
        deadline = time.monotonic() + 20
        while len(second.sink.mailbox.messages()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # room for a duplicate to show up, if there were one
        delivered = [m.trace_id for m in second.sink.mailbox.messages()]
    assert sorted(delivered) == sorted(ids)


def test_sqlite_queue_survives_a_restart(tmp_path: Path) -> None:
    survives_a_restart(f"sqlite:///{tmp_path}/q.db")


def test_redis_queue_survives_a_restart(redis_url: str) -> None:
    survives_a_restart(redis_url.replace("/0", "/1"))


def external_consumer_completes_the_trace(settings: Settings, env: dict[str, str]) -> None:
    """A queued send run by ``huey_consumer`` in a process of its own: the email arrives, the web process's trace
    gains the consumer's events and completes, and its ``/api/stats`` counts the delivery."""
    with Sandbox(settings) as sandbox:
        consumer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "huey.bin.huey_consumer",
                "sandbox.queue_worker.huey",
                "--workers",
                "2",
                "--worker-type",
                "thread",
            ],
            cwd=ROOT,
            env={**env, "SANDBOX_MAIL_SERVER": sandbox.sink.address, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            reply = call(f"{sandbox.url}send-email/queue", "POST", {})
            assert reply.status == 202
            trace_id = reply.body["trace_id"]
            assert sandbox.sink.mailbox.wait_for_count(1, 20), consumer.stdout.read() if consumer.poll() else ""
            assert sandbox.sink.mailbox.messages()[0].trace_id == trace_id
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                stats = call(f"{sandbox.url}api/stats").body
                trace = sandbox.tracer.get(trace_id)
                if stats["delivered"] == 1 and trace is not None and trace.complete:
                    break
                time.sleep(0.1)
            assert (stats["sent"], stats["delivered"], stats["pending"]) == (1, 1, 0), stats
            assert trace is not None and trace.complete, [e.kind for e in trace.events] if trace else None
            started = trace.first("worker.started")
            assert started is not None and started.thread != trace.first("request.received").thread
            document = call(f"{sandbox.url}api/traces/{trace_id}").body
            assert document["outcome"] == "delivered" and document["steps"]
        finally:
            consumer.terminate()
            consumer.wait(timeout=10)


def test_an_external_consumer_completes_the_trace_through_sqlite(tmp_path: Path) -> None:
    queue_url, store_url = f"sqlite:///{tmp_path}/queue.db", f"sqlite:///{tmp_path}/traces.db"
    settings = settings_for_tests(delay_s=0, queue_url=queue_url, store_url=store_url, queue_consumer="external")
    external_consumer_completes_the_trace(settings, {"SANDBOX_QUEUE_URL": queue_url, "SANDBOX_STORE_URL": store_url})


def test_an_external_consumer_completes_the_trace_through_redis(redis_url: str) -> None:
    """One Redis for the queue and, by default, the traces."""
    queue_url = redis_url.replace("/0", "/2")
    settings = settings_for_tests(delay_s=0, queue_url=queue_url, store_url=None, queue_consumer="external")
    external_consumer_completes_the_trace(settings, {"SANDBOX_QUEUE_URL": queue_url})


def test_every_attempt_of_a_queued_email_keeps_its_message_id(app: Flask) -> None:
    with app.test_request_context():
        original = welcome_email("a@example.com", "hi", name="N", link="http://x/")
        rebuilt = message_from_data(message_data(original))
        assert rebuilt.msgId == original.msgId
        assert b"Message-ID: " + original.msgId.encode() in rebuilt.as_bytes()


def test_an_external_consumer_sends_a_desks_email_to_that_desks_port(sink: Sink) -> None:
    consumer = create_app({"TESTING": True, "MAIL_SERVER": sink.host, "MAIL_PORT": sink.port})  # no sink of its own
    data = {"desk": "0123456789abcdef", "sink": sink.address, "desk_port": 4321}
    assert desk_port(consumer, data) == 4321
    assert desk_port(consumer, data | {"sink": "127.0.0.1:9"}) is None, "it sends elsewhere: the app's own server"
    assert desk_port(consumer, {"desk": "default"}) is None
    web = create_app({"TESTING": True}, sink=sink)
    assert desk_port(web, data) is None, "a process with the sink asks the sink itself"
