from __future__ import annotations

import socket

import pytest
from flask import Flask
from flask_mail import Message

from sandbox.mailer import SendError, build_message, send_async_email, send_sync
from sandbox.sink import TRACE_HEADER, Sink
from sandbox.smtp_client import mail


def test_message_comes_from_templates_and_settings(app: Flask) -> None:
    with app.test_request_context():
        msg = build_message("welcome", "ada@example.com", "Hello", "t-1", name="Ada", link="http://x/")
    assert msg.subject == "[Sandbox] Hello"
    assert msg.sender == app.config["MAIL_DEFAULT_SENDER"]
    assert msg.recipients == ["ada@example.com"]
    assert msg.extra_headers == {TRACE_HEADER: "t-1"}
    assert "Hello Ada," in msg.body and "http://x/" in msg.body
    assert "Hello Ada," in msg.html and 'href="http://x/"' in msg.html


def test_names_are_escaped_in_the_html_body(app: Flask) -> None:
    with app.test_request_context():
        msg = build_message("welcome", "ada@example.com", "Hi", "t", name="<script>x</script>", link="http://x/")
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html


def test_smtp_timeout_is_per_connection_not_global(app: Flask, sink: Sink) -> None:
    app.config["SANDBOX_SMTP_TIMEOUT"] = 3.5
    with app.app_context(), mail.connect() as connection:
        assert connection.host.sock.gettimeout() == 3.5
    assert socket.getdefaulttimeout() is None


def test_sync_send_raises_send_error_when_the_server_is_gone(app: Flask, closed_port: int) -> None:
    app.config["MAIL_PORT"] = closed_port
    mail.init_app(app)
    with app.test_request_context():
        msg = build_message("welcome", "ada@example.com", "Hi", "t-2", name="Ada", link="http://x/")
        with pytest.raises(SendError) as excinfo:
            send_sync(msg, "t-2")
    assert not excinfo.value.timed_out
    [failure] = app.extensions["sandbox.delivery"].failures()
    assert failure.trace_id == "t-2" and failure.mode == "sync"


def test_worker_records_any_exception_instead_of_losing_it(app: Flask) -> None:
    log = app.extensions["sandbox.delivery"]
    log.accepted("t-3", "thread")
    send_async_email(app, Message(subject="no recipients", sender="a@example.com"), "t-3")
    [failure] = log.failures()
    assert failure.trace_id == "t-3" and "No recipients" in failure.error
    assert log.pending() == {}
