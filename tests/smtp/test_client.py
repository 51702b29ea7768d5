from __future__ import annotations

import socket

from flask import Flask
from flask_mail import Message

from sandbox.app.emails import mail, send_async_email, welcome_email
from sandbox.smtp.sink import Sink
from sandbox.strategies.watch import as_worker
from sandbox.trace.tracer import TRACE_HEADER, Binding


def test_message_comes_from_templates_and_settings(app: Flask) -> None:
    with app.test_request_context():
        msg = welcome_email("ada@example.com", "Hello", name="Ada", link="http://x/")
    assert msg.subject == "[Sandbox] Hello"
    assert msg.sender == app.config["MAIL_DEFAULT_SENDER"]
    assert msg.recipients == ["ada@example.com"]
    assert TRACE_HEADER not in (msg.extra_headers or {}), (
        "the trace id is added by the send, outside the student's code"
    )
    assert "Hello Ada," in msg.body and "http://x/" in msg.body
    assert "Hello Ada," in msg.html and 'href="http://x/"' in msg.html


def test_names_are_escaped_in_the_html_body(app: Flask) -> None:
    with app.test_request_context():
        msg = welcome_email("ada@example.com", "Hi", name="<script>x</script>", link="http://x/")
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html


def test_smtp_timeout_is_per_connection_not_global(app: Flask, sink: Sink) -> None:
    app.config["SANDBOX_SMTP_TIMEOUT"] = 3.5
    with app.app_context(), mail.connect() as connection:
        assert connection.host.sock.gettimeout() == 3.5
    assert socket.getdefaulttimeout() is None


def test_sync_send_answers_502_when_the_server_is_gone(app: Flask, closed_port: int) -> None:
    app.config["MAIL_PORT"] = closed_port
    mail.init_app(app)
    response = app.test_client().post("/send-email/sync", json={})
    body = response.get_json()
    assert response.status_code == 502 and "refused the connection" in body["error"], body
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.trace_id == body["trace_id"] and failure.mode == "sync"


def test_worker_records_any_exception_instead_of_losing_it(app: Flask) -> None:
    log = app.extensions["sandbox.delivery"]
    binding = Binding(app.extensions["sandbox.tracer"], log, "t-3", "thread")
    log.accepted("t-3", "thread")
    as_worker(binding, send_async_email)(app, Message(subject="no recipients", sender="a@example.com"))
    [failure] = log.failures()
    assert failure.trace_id == "t-3" and "No recipients" in failure.error
    assert log.pending() == {}
