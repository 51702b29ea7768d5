"""Fixtures with real parts: an aiosmtpd sink on a free loopback port, the app sending to it, live HTTP servers."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.serving import AppServer
from sandbox.sink import Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A real sink with no delay; tests that need a slow one set ``sink.handler.delay_s``."""
    with Sink("127.0.0.1", 0, delay_s=0.0) as running:
        yield running


@pytest.fixture
def app(sink: Sink) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 5.0}, sink=sink)
    yield app
    # Let worker threads finish before the sink stops, so no test leaks a send into the next.
    assert app.extensions["sandbox.delivery"].wait_settled(10), "a send was still pending when the test ended"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def live_server(app: Flask) -> Iterator[Callable[[str], AppServer]]:
    """Start the app in a real Werkzeug server: ``live_server("single")`` or ``live_server("threaded")``."""
    started: list[AppServer] = []

    def start(server_mode: str) -> AppServer:
        server = AppServer(app, "127.0.0.1", 0, server_mode).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
