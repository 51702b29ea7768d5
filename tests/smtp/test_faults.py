"""Each sink fault, seen from a real SMTP client, from the routes, in the trace and in /api/failures."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox.errors import ConfigError
from sandbox.smtp.faults import Faults, Receiving, describe_faults
from sandbox.smtp.sink import MAX_RECIPIENTS, Sink
from sandbox.trace.facts import Facts
from tests.conftest import record_trace

MESSAGE = b"Subject: Hello\r\n\r\nHi\r\n"


def set_faults(sink: Sink, **changes) -> None:
    sink.update_settings(changes)


def send(sink: Sink, recipients: list[str] | None = None) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", recipients or ["b@example.com"], MESSAGE)


@pytest.mark.parametrize(
    "changes",
    [
        {"greet_delay_s": -1},
        {"jitter_s": 61},
        {"reject_probability": 1.5},
        {"reject_code": 250},
        {"reject_stage": "HELO"},
        {"disconnect_probability": -0.1},
        {"seed": "abc"},
        {"seed": 1.5},
        {"reject_code": True},
        {"colour": "red"},
        {"lose_reply_probability": 1.5},
        {"lose_reply_probability": -0.5},
        {"lose_reply_probability": "1"},
        {"lose_reply_probability": True},
        {"dedupe_message_id": 1},
        {"dedupe_message_id": "yes"},
        {"dedupe_message_id": None},
        {"dedupe_message_id": True, "lose_reply_probability": 2},
    ],
)
def test_bad_fault_settings_are_refused_and_change_nothing(sink: Sink, changes: dict) -> None:
    before = (sink.handler.faults, sink.handler.receiving)
    with pytest.raises(ConfigError):
        sink.update_settings(changes)
    assert (sink.handler.faults, sink.handler.receiving) == before


def test_greeting_delay_holds_the_connection(sink: Sink) -> None:
    set_faults(sink, greet_delay_s=0.4)
    started = time.perf_counter()
    with smtplib.SMTP(sink.host, sink.port, timeout=10):
        assert time.perf_counter() - started >= 0.4


def test_jitter_stays_within_its_range(app: Flask, sink: Sink) -> None:
    set_faults(sink, delay_s=0.05, jitter_s=0.1, seed=7)
    delays = [record_trace(app, "sync").first("sink.delay_started").details["delay_s"] for _ in range(4)]
    assert all(0.05 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_rejection_at_each_stage_reaches_the_route_and_the_trace(
    client: FlaskClient, app: Flask, sink: Sink, stage: str
) -> None:
    set_faults(sink, reject_probability=1.0, reject_code=550, reject_stage=stage)
    response = client.post("/send-email/sync", json={})
    assert response.status_code == 502
    assert "550" in response.get_json()["error"]
    trace = app.extensions["sandbox.tracer"].get(response.get_json()["trace_id"])
    assert trace.first("smtp.failed").details["code"] == 550
    if stage == "DATA":
        assert trace.first("sink.rejected") is not None
    assert sink.mailbox.messages() == []


def test_thread_send_rejected_is_listed_in_failures(client: FlaskClient, app: Flask, sink: Sink) -> None:
    set_faults(sink, reject_probability=1.0, reject_code=451, reject_stage="RCPT")
    trace = record_trace(app, "thread")
    [failure] = client.get("/api/failures").get_json()["failures"]
    assert failure["trace_id"] == trace.trace_id and "451" in failure["error"]
    assert trace.first("worker.failed") is not None


def test_disconnect_drops_the_connection(client: FlaskClient, app: Flask, sink: Sink) -> None:
    set_faults(sink, disconnect_probability=1.0)
    response = client.post("/send-email/sync", json={})
    assert response.status_code == 502 and "hung up" in response.get_json()["error"]
    trace = app.extensions["sandbox.tracer"].get(response.get_json()["trace_id"])
    assert trace.first("sink.disconnected") is not None
    assert sink.mailbox.messages() == []


def outcomes(seed: int) -> list[bool]:
    with Sink(faults=Faults(reject_probability=0.5, reject_stage="MAIL", seed=seed)) as sink:
        results = []
        for _ in range(12):
            try:
                send(sink)
                results.append(True)
            except smtplib.SMTPSenderRefused:
                results.append(False)
        return results


def test_a_seed_makes_the_faults_repeatable() -> None:
    first = outcomes(42)
    assert first == outcomes(42)
    assert True in first and False in first


def test_too_many_recipients_are_refused(sink: Sink) -> None:
    recipients = [f"r{n}@example.com" for n in range(MAX_RECIPIENTS + 1)]
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("a@example.com")
        codes = [smtp.rcpt(address)[0] for address in recipients]
    assert codes[:MAX_RECIPIENTS] == [250] * MAX_RECIPIENTS
    assert codes[-1] == 452


def test_sessions_are_capped(sink: Sink) -> None:
    sink.handler.max_sessions = 2
    held = [socket.create_connection((sink.host, sink.port), timeout=5) for _ in range(2)]
    try:
        for sock in held:
            assert sock.recv(1024).startswith(b"220")
        with socket.create_connection((sink.host, sink.port), timeout=5) as extra:
            assert extra.recv(1024).startswith(b"421")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.1)
    send(sink)
    assert len(sink.mailbox.messages()) == 1


def test_malformed_sessions_do_not_hurt_the_others(sink: Sink) -> None:
    with socket.create_connection((sink.host, sink.port), timeout=5) as rude:
        rude.recv(1024)
        rude.sendall(b"HELO\r\nMAIL FROM:<<<>>>\r\nRCPT TO:\r\nDATA\r\nBOGUS " + b"x" * 5000 + b"\r\n\xff\xfe\r\n")
        rude.recv(4096)
    with socket.create_connection((sink.host, sink.port), timeout=5) as half:
        half.recv(1024)
        half.sendall(b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: cut")
    with pytest.raises(smtplib.SMTPResponseException):
        send_big(sink)
    send(sink)
    assert [m.subject for m in sink.mailbox.messages()] == ["Hello"]


def send_big(sink: Sink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: big\r\n\r\n" + b"x" * (2 * 1024 * 1024))


def test_put_api_sink_changes_faults(client: FlaskClient, sink: Sink) -> None:
    body = client.put(
        "/api/sink",
        json={"reject_probability": 0.25, "reject_code": 550, "reject_stage": "data", "seed": 3, "greet_delay_s": 0.1},
    ).get_json()
    assert (body["reject_probability"], body["reject_code"], body["reject_stage"], body["seed"]) == (
        0.25,
        550,
        "DATA",
        3,
    )
    assert sink.handler.faults.greet_delay_s == 0.1
    assert client.put("/api/sink", json={"reject_code": 200}).status_code == 400
    assert client.get("/api/sink").get_json()["reject_code"] == 550


def test_greeting_delay_shows_in_the_trace(app: Flask, sink: Sink) -> None:
    set_faults(sink, greet_delay_s=0.3)
    trace = record_trace(app, "sync")
    waited_ms = trace.ms_until("smtp.connected") - trace.ms_until("smtp.connecting")
    assert waited_ms >= 300


def message(message_id: str | None) -> bytes:
    header = f"Message-ID: {message_id}\r\n" if message_id else ""
    return f"Subject: Hello\r\n{header}\r\nHi\r\n".encode()


def test_a_lost_reply_stores_the_email_and_the_client_hears_nothing(sink: Sink) -> None:
    set_faults(sink, lose_reply_probability=1.0)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], message("<1@example.com>"))
    [stored] = sink.mailbox.messages()
    assert stored.subject == "Hello" and stored.message_id_header == "<1@example.com>"


def test_a_lost_reply_leaves_the_sender_unsure_of_an_email_that_arrived(
    client: FlaskClient, app: Flask, sink: Sink
) -> None:
    set_faults(sink, lose_reply_probability=1.0)
    response = client.post("/send-email/sync", json={})
    body = response.get_json()
    assert response.status_code == 502 and body["outcome"] == "unknown"
    assert "cannot tell whether it arrived" in body["error"]
    trace = app.extensions["sandbox.tracer"].get(body["trace_id"])
    assert sink.mailbox.copies(trace.trace_id) == 1, "the sink stored it before it hung up"
    [lost] = trace.events_of("sink.reply_lost")
    assert lost.details == {"message_id": sink.mailbox.by_trace(trace.trace_id).id, "stored": True}
    assert trace.first("sink.accepted") is None and trace.first("smtp.accepted") is None
    [failure] = client.get("/api/failures").get_json()["failures"]
    assert failure["trace_id"] == trace.trace_id and failure["outcome"] == "unknown"
    facts = Facts(trace)
    assert facts.sender_outcome == "unknown", "the app itself cannot tell"
    assert facts.outcome == "delivered" and len(facts.stored_copies) == 1, "the sink's side can"


def test_a_receiver_that_dedupes_stores_one_copy_per_message_id(sink: Sink) -> None:
    set_faults(sink, dedupe_message_id=True)
    for payload in (message("<a@example.com>"), message("<a@example.com>"), message("<b@example.com>")):
        send_payload(sink, payload)  # every one is answered 250
    send_payload(sink, message(None))
    send_payload(sink, message(None))  # no Message-ID to recognise it by: stored each time
    ids = [m.message_id_header for m in sink.mailbox.messages()]
    assert ids == ["<a@example.com>", "<b@example.com>", "", ""]
    assert sink.mailbox.by_message_id("<a@example.com>").id == 1 and sink.mailbox.by_message_id("") is None
    set_faults(sink, dedupe_message_id=False)
    send_payload(sink, message("<a@example.com>"))
    assert len(sink.mailbox.messages()) == 5


def test_a_deduped_copy_is_traced_as_one_the_sink_already_held(app: Flask, sink: Sink) -> None:
    set_faults(sink, dedupe_message_id=True, lose_reply_probability=1.0)
    trace = record_trace(app, "thread-retry")
    first, *again = trace.events_of("sink.reply_lost")
    assert first.details == {"message_id": 1, "stored": True}
    assert again and all(e.details == {"message_id": 1, "stored": False, "duplicate_of": 1} for e in again)
    headers = {e.details["message_id_header"] for e in trace.events_of("sink.data_received")}
    assert len(headers) == 1 and headers != {""}, "every attempt sent the same Message-ID"


def send_payload(sink: Sink, payload: bytes) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        assert smtp.sendmail("a@example.com", ["b@example.com"], payload) == {}


def test_put_api_sink_changes_the_receiving_settings(client: FlaskClient, sink: Sink) -> None:
    shown = client.get("/api/sink").get_json()
    assert (shown["lose_reply_probability"], shown["dedupe_message_id"]) == (0.0, False)
    body = client.put("/api/sink", json={"lose_reply_probability": 0.5, "dedupe_message_id": True}).get_json()
    assert (body["lose_reply_probability"], body["dedupe_message_id"]) == (0.5, True)
    assert sink.handler.receiving == Receiving(lose_reply_probability=0.5, dedupe_message_id=True)
    for bad, words in (
        ({"dedupe_message_id": "yes"}, "dedupe_message_id"),
        ({"lose_reply_probability": 2}, "lose_reply_probability"),
        ({"lose_reply_probability": 0, "delay_s": -1}, "delay_s"),
    ):
        refused = client.put("/api/sink", json=bad)
        assert refused.status_code == 400 and words in refused.get_json()["error"], refused.get_json()
    shown = client.get("/api/sink").get_json()
    assert (shown["lose_reply_probability"], shown["dedupe_message_id"], shown["delay_s"]) == (0.5, True, 0.0)


def test_the_banner_names_the_receiving_settings() -> None:
    text = describe_faults(Faults(), Receiving(lose_reply_probability=1.0, dedupe_message_id=True))
    assert "loses 100% of its 250 replies (stores the email, then hangs up)" in text
    assert "one copy per Message-ID" in text
    assert describe_faults(Faults(), Receiving()) == describe_faults(Faults()) == "delay 0 s"
