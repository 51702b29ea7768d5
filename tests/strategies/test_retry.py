"""The blind retrier (``thread-retry``) against a real sink: lost replies make duplicates, a deduping sink does not.

Each test sends through Flask-Mail and smtplib to a real aiosmtpd sink, then reads the mailbox, the delivery log,
the trace's facts and the rendered document (checked sentence by sentence by the truth checker).
"""

from __future__ import annotations

import random
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.render.document import report, trace_document
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import DELIVERED, FAILED, UNKNOWN
from sandbox.strategies.modes import RETRY_ATTEMPTS as ATTEMPTS
from sandbox.strategies.modes import RETRY_MODE as MODE
from sandbox.trace.facts import SINK_ENDS, Facts
from sandbox.trace.tracer import Trace
from tests.conftest import record_trace
from tests.trace.truth import check_document


def checked_document(trace: Trace) -> dict[str, Any]:
    """The trace as the page shows it; every sentence's claims hold."""
    document = trace_document(report(trace))
    problems = check_document(document, trace.trace_id)
    assert not problems, "\n".join(problems)
    return document


def only_failure(app: Flask) -> Any:
    [failure] = app.extensions["sandbox.delivery"].failures()
    return failure


def seed_losing(pattern: list[bool], probability: float) -> int:
    """A seed whose draws lose the reply to exactly the messages ``pattern`` marks, given the sink's one draw per
    message (no other random fault is on)."""

    def lost(seed: int) -> list[bool]:
        draws = random.Random(seed)
        return [draws.random() < probability for _ in pattern]

    return next(seed for seed in range(10_000) if lost(seed) == pattern)


def test_the_route_answers_at_once(client: FlaskClient) -> None:
    response = client.post(f"/send-email/{MODE}", json={})
    assert response.status_code == 202 and response.get_json()["status"] == "queued"


def test_one_attempt_when_the_first_gets_its_250(app: Flask, sink: Sink) -> None:
    trace = record_trace(app, MODE)
    assert [e.details["attempt"] for e in trace.events_of("attempt.started")] == [1]
    assert trace.first("attempt.failed") is None and trace.first("worker.finished") is not None
    assert sink.mailbox.copies(trace.trace_id) == 1
    assert app.extensions["sandbox.delivery"].stats()[DELIVERED] == 1
    checked_document(trace)


def test_every_reply_lost_makes_a_copy_per_attempt(app: Flask, sink: Sink) -> None:
    sink.update_settings({"lose_reply_probability": 1.0})
    trace = record_trace(app, MODE)
    assert len(trace.events_of("attempt.started")) == ATTEMPTS
    assert sink.mailbox.copies(trace.trace_id) == ATTEMPTS, "the same email, delivered once per attempt"
    assert all(e.details["policy"] == "blind" for e in trace.events_of("attempt.failed"))
    failure = only_failure(app)
    assert failure.outcome == UNKNOWN and "cannot tell whether it arrived" in failure.error
    facts = Facts(trace)
    assert len(facts.stored_copies) == ATTEMPTS and not facts.recognised_copies
    assert (facts.sender_outcome, facts.outcome) == ("unknown", "delivered")
    document = checked_document(trace)
    [copies] = [m["text"] for m in document["key_moments"] if m["title"] == "How many copies arrived?"]
    assert f"stored this email {ATTEMPTS} times" in copies and "same Message-ID" in copies
    [question] = [q for q in document["quiz"] if q["kind"] == "copies"]
    assert question["options"][question["answer"]] == str(ATTEMPTS)


def test_a_receiver_that_dedupes_keeps_one_copy_of_the_retries(app: Flask, sink: Sink) -> None:
    sink.update_settings({"lose_reply_probability": 1.0, "dedupe_message_id": True})
    trace = record_trace(app, MODE)
    assert len(trace.events_of("attempt.started")) == ATTEMPTS
    assert sink.mailbox.copies(trace.trace_id) == 1
    assert only_failure(app).outcome == UNKNOWN, "the sender still heard no 250"
    facts = Facts(trace)
    assert len(facts.stored_copies) == 1 and len(facts.recognised_copies) == ATTEMPTS - 1
    document = checked_document(trace)
    [copies] = [m["text"] for m in document["key_moments"] if m["title"] == "How many copies arrived?"]
    assert "recognised the Message-ID of message #1" in copies
    [question] = [q for q in document["quiz"] if q["kind"] == "copies"]
    assert question["options"][question["answer"]] == "1"


def test_a_retry_after_a_lost_reply_delivers_twice_and_is_listed_so(app: Flask, sink: Sink) -> None:
    sink.update_settings({"lose_reply_probability": 0.5, "seed": seed_losing([True, False], 0.5)})
    trace = record_trace(app, MODE)
    assert len(trace.events_of("attempt.started")) == 2 and trace.first("worker.finished") is not None
    assert sink.mailbox.copies(trace.trace_id) == 2
    log = app.extensions["sandbox.delivery"]
    assert log.stats()[DELIVERED] == 1 and log.failures() == []
    [duplicate] = log.duplicates()
    assert duplicate.trace_id == trace.trace_id and "attempt 1" in duplicate.reason
    facts = Facts(trace)
    assert [e.kind for e in facts.stored_copies] == ["sink.reply_lost", "sink.accepted"]
    assert facts.sender_outcome == facts.outcome == "delivered"
    checked_document(trace)


def test_a_dead_server_fails_every_attempt(closed_port: int) -> None:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": closed_port})
    trace = record_trace(app, MODE)
    assert len(trace.events_of("attempt.failed")) == ATTEMPTS
    failure = only_failure(app)
    assert failure.outcome == FAILED and "refused the connection" in failure.error
    assert Facts(trace).outcome == "failed"
    checked_document(trace)


def test_a_refusal_after_a_lost_reply_leaves_the_fate_unknown(app: Flask, sink: Sink) -> None:
    """The last attempt was refused, but the first may have delivered (here it did): not "failed"."""

    def pattern(seed: int) -> list[str]:
        # Per message the sink draws for a DATA rejection, then, if it stored the email, for a lost reply.
        draws, ends = random.Random(seed), []
        for _ in range(ATTEMPTS):
            ends.append("rejected" if draws.random() < 0.5 else "lost" if draws.random() < 0.5 else "accepted")
        return ends

    seed = next(s for s in range(10_000) if pattern(s) == ["lost", "rejected", "rejected"])
    sink.update_settings(
        {"seed": seed, "reject_probability": 0.5, "reject_stage": "DATA", "lose_reply_probability": 0.5}
    )
    trace = record_trace(app, MODE)
    ends = [e.kind for e in trace.events if e.kind in SINK_ENDS]
    assert ends == ["sink.reply_lost", "sink.rejected", "sink.rejected"]
    ended = trace.first("worker.failed")
    assert ended.details["outcome"] == "unknown" and ended.details["answered"] is True
    assert "attempt 1 had sent the whole message and got no answer" in ended.details["error"]
    assert only_failure(app).outcome == UNKNOWN
    assert sink.mailbox.copies(trace.trace_id) == 1
    checked_document(trace)
