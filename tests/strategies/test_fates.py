"""Every send ends delivered, failed or unknown, and is reported as exactly that: near the SMTP timeout, when the
server hangs up on QUIT, when the sandbox stops with a pool backlog, and when the queue's store is down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask

from sandbox import create_app
from sandbox.client import call
from sandbox.render.document import report
from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import FAILED, FAILURES_KEPT, UNKNOWN, DeliveryLog, Failure
from sandbox.strategies.pool import NEVER_SENT
from sandbox.testing import free_port
from sandbox.trace.facts import Facts
from sandbox.trace.tracer import Trace
from sandbox.web.routes import page_after
from tests.conftest import record_trace, settings_for_tests


def test_the_log_keeps_each_fate_apart() -> None:
    log = DeliveryLog()
    for trace_id in "abcde":
        log.accepted(trace_id, "queue", maybe_sent_before="cut by a crash" if trace_id in "de" else None)
    log.delivered("a")
    log.failed("b", "queue", "550 no", FAILED)
    log.failed("c", "queue", "no answer after the data", UNKNOWN)
    log.delivered("d")
    log.failed("e", "queue", "refused")
    assert [(f.trace_id, f.outcome) for f in log.failures()] == [("b", FAILED), ("c", UNKNOWN), ("e", UNKNOWN)]
    assert "cut by a crash" in log.failures()[-1].error, "a failed retry of a send a crash cut may still have arrived"
    assert [d.trace_id for d in log.duplicates()] == ["d"]
    stats = log.stats()
    assert (stats["delivered"], stats["failed"], stats["unknown"], stats["possibly_duplicated"]) == (2, 1, 2, 1)


def test_an_abandoned_send_stays_as_reported() -> None:
    log = DeliveryLog()
    log.accepted("a", "thread")
    [abandoned] = log.abandon_pending("stopped mid-send")
    assert abandoned.outcome == UNKNOWN
    log.delivered("a")  # the worker finished after the report was made
    log.failed("a", "thread", "late")
    assert log.stats()["delivered"] == 0 and [f.error for f in log.failures()] == ["stopped mid-send"]


def test_failures_page_in_order_and_say_what_was_dropped() -> None:
    log = DeliveryLog()
    for n in range(600):
        log.accepted(str(n), "thread")
        log.failed(str(n), "thread", "x")
    body = page_after("failures", 0, log.failures(), Failure.to_dict, FAILURES_KEPT, limit=50)
    assert [f["id"] for f in body["failures"]] == list(range(101, 151)) and body["dropped"] == 100
    body = page_after("failures", 590, log.failures(), Failure.to_dict, FAILURES_KEPT, limit=50)
    assert [f["id"] for f in body["failures"]] == list(range(591, 601)) and body["dropped"] == 0
    body = page_after("failures", 600, log.failures(), Failure.to_dict, FAILURES_KEPT)
    assert (body["failures"], body["dropped"]) == ([], 0)


def test_each_desk_keeps_its_own_failures_counts_and_ids() -> None:
    log = DeliveryLog()
    log.accepted("b1", "sync", desk="bob")
    log.failed("b1", "sync", "refused")
    for n in range(FAILURES_KEPT + 20):  # ada's flood
        log.accepted(f"a{n}", "thread", desk="ada")
        log.failed(f"a{n}", "thread", "x")
    log.accepted("b2", "thread", desk="bob")
    log.delivered("b2")
    assert [(f.id, f.trace_id) for f in log.failures("bob")] == [(1, "b1")], "ada's flood pushed out none of bob's"
    ada = log.failures("ada")
    assert len(ada) == FAILURES_KEPT and (ada[0].id, ada[-1].id) == (21, FAILURES_KEPT + 20)
    body = page_after("failures", 0, ada, Failure.to_dict, FAILURES_KEPT, limit=5)
    assert body["dropped"] == 20, "paging a desk's failures counts that desk's dropped ones only"
    assert log.stats("bob") | {"threads_alive": 0} == {
        "threads_alive": 0,
        "sent": 2,
        "delivered": 1,
        "failed": 1,
        "unknown": 0,
        "pending": 0,
        "possibly_duplicated": 0,
    }
    assert log.stats()["sent"] == FAILURES_KEPT + 22
    assert "desk" not in log.failures("bob")[0].to_dict()
    log.forget_desk("ada")
    assert log.failures("ada") == [] and log.stats("ada")["sent"] == 0 and log.stats()["sent"] == 2


class HangUpOnQuit(SMTP):
    """A server that accepts the message, then drops the connection instead of answering QUIT."""

    async def smtp_QUIT(self, arg: str) -> None:
        self.transport.close()


class Keep:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        await asyncio.sleep(0)
        return "250 OK"


def test_a_server_that_hangs_up_on_quit_after_its_250_is_a_delivery() -> None:
    handler = Keep()

    class Rude(Controller):
        def factory(self) -> SMTP:
            return HangUpOnQuit(self.handler)

    controller = Rude(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        app = create_app(
            {
                "TESTING": True,
                "MAIL_SUPPRESS_SEND": False,
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": controller.port,
                "SANDBOX_SMTP_TIMEOUT": 2.0,
            }
        )
        response = app.test_client().post("/send-email/sync", json={})
        assert response.status_code == 200, response.get_json()
        assert handler.count == 1 and app.extensions["sandbox.delivery"].stats()["delivered"] == 1
    finally:
        controller.stop()


def test_no_answer_after_the_data_is_unknown_and_not_retried(sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    app = create_app(
        {"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 0.3, "SANDBOX_RETRY_BACKOFF": 0.01},
        sink=sink,
    )
    trace = record_trace(app, "pool")
    assert [e.kind for e in trace.events].count("attempt.started") == 1, "a retry could deliver it twice"
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.outcome == UNKNOWN and "cannot tell whether it arrived" in failure.error
    assert app.extensions["sandbox.delivery"].wait_settled(5)
    time.sleep(1.0)  # the sink finishes its wait and sees the client gone
    assert sink.mailbox.messages() == []
    facts = Facts(sink_side_complete(app, trace.trace_id))
    assert facts.outcome == "failed", "the sink's lane shows it stored nothing"
    text = " ".join(m.text for m in report(facts.trace).moments)
    assert "the sink stored nothing, so the email did not arrive" in text
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])


def sink_side_complete(app: Flask, trace_id: str) -> Trace:
    """The trace once the sink's lane has ended too: it saw the client leave."""
    tracer = app.extensions["sandbox.tracer"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        trace = tracer.get(trace_id)
        if trace is not None and trace.first("sink.client_left") is not None:
            return trace
        time.sleep(0.02)
    raise AssertionError("the sink never saw the client leave")


@pytest.mark.parametrize("mode", ["sync", "thread", "pool", "queue"])
def test_near_the_timeout_each_send_is_reported_as_what_happened(mode: str, tmp_path: Path) -> None:
    """A sink delay straddling the client's timeout: some sends arrive, some do not, some the client cannot tell.
    Whatever happens, no email arrives twice, no email reported failed arrives, and no email reported delivered is
    missing."""
    settings = settings_for_tests(
        delay_s=0.45,
        jitter_s=0.1,
        smtp_timeout_s=0.5,
        retry_backoff_s=0.05,
        pool_size=12,
        queue_workers=6,
        seed=7,
        queue_url=f"sqlite:///{tmp_path}/q.db",
    )
    with Sandbox(settings) as sandbox:
        sink = sandbox.sink
        assert sink is not None
        with ThreadPoolExecutor(12) as clients:
            replies = list(clients.map(lambda n: call(f"{sandbox.url}send-email/{mode}", "POST", {}), range(12)))
        ids = {reply.body["trace_id"] for reply in replies}
        assert sandbox.delivery.wait_settled(20, ignore=frozenset()), "every send settles"
        time.sleep(0.3)  # the sink's last waits end
        failures = {f.trace_id: f for f in sandbox.delivery.failures()}
        stored = Counter(m.trace_id for m in sink.mailbox.messages())
    assert set(stored) <= ids and max(stored.values(), default=1) == 1, f"an email arrived twice: {stored}"
    for trace_id in ids:
        failure = failures.get(trace_id)
        if failure is None:
            assert stored[trace_id] == 1, "reported delivered, but not in the mailbox"
        elif failure.outcome == FAILED:
            assert stored[trace_id] == 0, f"reported failed, but it arrived: {failure.error}"
    for reply in replies:
        if mode == "sync" and reply.status != 200:
            assert reply.body["outcome"] == failures[reply.body["trace_id"]].outcome


def test_stopping_with_a_pool_backlog_reports_only_what_did_not_arrive() -> None:
    settings = settings_for_tests(delay_s=0.3, pool_size=2, smtp_timeout_s=1.0)
    sandbox = Sandbox(settings).start()
    sink = sandbox.sink
    ids = [call(f"{sandbox.url}send-email/pool", "POST", {}).body["trace_id"] for _ in range(20)]
    time.sleep(0.4)
    assert sink is not None
    undelivered = {f.trace_id: f for f in sandbox.stop()}
    stored = Counter(m.trace_id for m in sink.mailbox.messages())
    assert set(ids) == set(stored) | set(undelivered), "each email is either in the mailbox or reported"
    for trace_id, failure in undelivered.items():
        if failure.outcome == FAILED:
            assert stored[trace_id] == 0, f"reported not delivered, yet it arrived: {failure.error}"
    assert any(f.error == NEVER_SENT for f in undelivered.values()), "the backlog no worker took was cancelled"
    assert sandbox.report.in_mailbox == {trace_id: stored[trace_id] for trace_id in undelivered}
    assert max(stored.values()) == 1


@pytest.fixture
def dead_redis_url() -> Iterator[str]:
    yield f"redis://127.0.0.1:{free_port()}/0"


def test_a_queue_store_that_cannot_be_reached_is_a_503_reported_and_survived(dead_redis_url: str) -> None:
    with Sandbox(settings_for_tests(delay_s=0, queue_url=dead_redis_url)) as sandbox:
        assert sandbox.queue_problem and "could not be reached" in sandbox.queue_problem
        reply = call(f"{sandbox.url}send-email/queue", "POST", {})
        assert reply.status == 503 and "queue's store could not be reached" in reply.body["error"]
        [failure] = call(f"{sandbox.url}api/failures").body["failures"]
        assert failure["trace_id"] == reply.body["trace_id"] and failure["mode"] == "queue"
        assert call(f"{sandbox.url}send-email/thread", "POST", {}).status == 202, "the other modes still work"
        trace = call(f"{sandbox.url}api/traces/{reply.body['trace_id']}").body
        assert trace["outcome"] == "refused", "nothing was sent: the route answered 503 first"
    assert sandbox.still_queued is None and "could not be reached" in (sandbox.queue_problem or "")


def test_redis_going_down_mid_run_is_a_503_not_a_500(own_redis_url: str) -> None:
    with Sandbox(settings_for_tests(delay_s=0, queue_url=own_redis_url)) as sandbox:
        assert call(f"{sandbox.url}send-email/queue", "POST", {}).status == 202
        assert sandbox.sink is not None and sandbox.sink.mailbox.wait_for_count(1, 15)
        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis.from_url(own_redis_url).shutdown(nosave=True)
        reply = call(f"{sandbox.url}send-email/queue", "POST", {})
        assert reply.status == 503, reply.body
        assert call(f"{sandbox.url}api/failures").body["failures"][-1]["trace_id"] == reply.body["trace_id"]
    assert sandbox.still_queued is None and sandbox.queue_problem


def test_a_send_that_may_have_arrived_before_its_250_is_listed_as_possibly_twice() -> None:
    log = DeliveryLog()
    log.accepted("t1", "thread-retry")
    log.may_have_arrived("t1", "attempt 1 got no answer")
    log.delivered("t1")
    [duplicate] = log.duplicates()
    assert (duplicate.trace_id, duplicate.reason) == ("t1", "attempt 1 got no answer")
    assert log.stats()["delivered"] == 1 and log.stats()["possibly_duplicated"] == 1
    log.may_have_arrived("t2", "never accepted")  # not pending: nothing to mark
    log.accepted("t2", "thread-retry")
    log.delivered("t2")
    assert len(log.duplicates()) == 1
