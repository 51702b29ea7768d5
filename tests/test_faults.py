"""Each sink fault, seen from a real SMTP client, from the routes, in the trace and in /api/failures."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox.errors import ConfigError
from sandbox.faults import Faults
from sandbox.sink import MAX_RECIPIENTS, Sink
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
    ],
)
def test_bad_fault_settings_are_refused_and_change_nothing(sink: Sink, changes: dict) -> None:
    before = sink.handler.faults
    with pytest.raises(ConfigError):
        sink.update_settings(changes)
    assert sink.handler.faults == before


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
