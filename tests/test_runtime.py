"""Stopping the sandbox: no new sends, pending workers get their chance, and what did not arrive is named."""

from __future__ import annotations

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


def test_a_class_runs_on_the_pooled_server_with_both_lesson_servers_beside_it(tmp_path) -> None:
    """Stopping waits for the blocking send under way on waitress, so its visitor has an answer."""
    settings = settings_for_tests(
        class_mode=True, join_code="HJK-MN3", delay_s=0.5, queue_url=f"sqlite:///{tmp_path}/q.db"
    )
    sandbox = Sandbox(settings).start()
    kinds = {server.server_mode: server.url for server in (sandbox.server, *sandbox.other_servers)}
    assert set(kinds) == {"pooled", "threaded", "single"} and kinds["pooled"] == sandbox.url
    assert set(sandbox.app.config["SANDBOX_SERVER_PORTS"]) == {"pooled", "threaded", "single"}
    assert call(f"{sandbox.url}api/ping").status == 401  # the class's own door: join first
    for other in sandbox.other_servers:
        assert call(f"{other.url}api/ping").status == 401
    sandbox.stop()
