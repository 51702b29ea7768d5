"""Stopping the sandbox: no new sends, pending workers get their chance, and what did not arrive is named."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.client import call
from sandbox.runtime import SHUTDOWN_REASON, Sandbox
from sandbox.strategies.delivery import DeliveryLog
from tests.conftest import settings_for_tests


def test_stop_waits_for_a_worker_still_talking_to_the_sink() -> None:
    sandbox = Sandbox(settings_for_tests(delay_s=1.0)).start()
    reply = call(f"{sandbox.url}send-email/thread", "POST", {})
    assert reply.status == 202
    sink = sandbox.sink
    undelivered = sandbox.stop()
    assert undelivered == []
    assert sink.mailbox.by_trace(reply.body["trace_id"]) is not None


def test_stop_reports_a_send_that_could_not_finish() -> None:
    sandbox = Sandbox(settings_for_tests(delay_s=3.0, smtp_timeout_s=0.5)).start()
    reply = call(f"{sandbox.url}send-email/thread", "POST", {})
    undelivered = sandbox.stop()
    assert [f.trace_id for f in undelivered] == [reply.body["trace_id"]]


def test_abandoning_pending_sends_records_each_once() -> None:
    log = DeliveryLog()
    log.accepted("a", "thread")
    log.accepted("b", "thread")
    log.delivered("b")
    abandoned = log.abandon_pending(SHUTDOWN_REASON)
    assert [(f.trace_id, f.error, f.outcome) for f in abandoned] == [("a", SHUTDOWN_REASON, "unknown")]
    assert log.stats() == {
        "threads_alive": 0,
        "sent": 2,
        "delivered": 1,
        "failed": 0,
        "unknown": 1,
        "pending": 0,
        "possibly_duplicated": 0,
    }
    assert log.abandon_pending(SHUTDOWN_REASON) == []


def test_a_class_runs_on_the_pooled_server_with_both_lesson_servers_beside_it(tmp_path: Path) -> None:
    settings = settings_for_tests(class_mode=True, join_code="HJK-MN3", queue_url=f"sqlite:///{tmp_path}/q.db")
    with Sandbox(settings) as sandbox:
        kinds = {server.server_mode: server.url for server in (sandbox.server, *sandbox.other_servers)}
        assert set(kinds) == {"pooled", "threaded", "single"} and kinds["pooled"] == sandbox.url
        assert set(sandbox.app.config["SANDBOX_SERVER_PORTS"]) == {"pooled", "threaded", "single"}
        for url in kinds.values():  # every door of the class asks for the join code
            assert call(f"{url}api/stats").status == 401


def test_stopping_the_pooled_server_lets_the_blocking_send_under_way_answer(tmp_path: Path) -> None:
    settings = settings_for_tests(server="pooled", delay_s=0.5, queue_url=f"sqlite:///{tmp_path}/q.db")
    sandbox = Sandbox(settings).start()
    with ThreadPoolExecutor(1) as client:
        reply = client.submit(call, f"{sandbox.url}send-email/sync", "POST", {})
        time.sleep(0.2)
        assert sandbox.stop() == []
        assert reply.result().status == 200
