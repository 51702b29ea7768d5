"""Fixtures with real parts: an aiosmtpd sink on a free loopback port, the app sending to it, live HTTP servers."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app

# The queue strategy stores tasks in instance/queue.db by default, and the traces go to instance/traces.db; tests
# (and the commands they start) use throwaway stores instead, so no run leaves anything in the project folder.
os.environ.setdefault("SANDBOX_QUEUE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='sandbox-tests-')}/queue.db")
os.environ.setdefault("SANDBOX_STORE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='sandbox-tests-')}/traces.db")
from sandbox.config import Settings
from sandbox.smtp.sink import Mailbox, Sink, StoredMessage
from sandbox.testing import free_port, redis_server
from sandbox.trace.tracer import Trace
from sandbox.web.serving import AppServer


def settings_for_tests(**changes: object) -> Settings:
    """Settings as a fresh run would read them (this session's throwaway queue included), with ``changes``."""
    return Settings.from_env().replace(**changes)


def _redis_or_skip() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except FileNotFoundError as err:
        pytest.skip(f"{err}; .ci/run installs it")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free port for this module; skipped, with the reason, where none is installed."""
    yield from _redis_or_skip()


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """A redis-server for this test alone, which it may stop."""
    yield from _redis_or_skip()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A real sink with no delay; tests that need a slow one set ``sink.handler.delay_s``."""
    with Sink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def app(sink: Sink) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 5.0}, sink=sink)
    yield app
    # Let worker threads finish before the sink stops, so no test leaks a send into the next.
    assert app.extensions["sandbox.delivery"].wait_settled(10), "a send was still pending when the test ended"
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])


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


def store(mailbox: Mailbox, subject: str = "m") -> StoredMessage:
    """A message put straight into the mailbox, as the sink does after its 250."""
    return mailbox.add(
        mail_from="a@example.com",
        rcpt_tos=("b@example.com",),
        subject=subject,
        received_at="",
        size=1,
        raw=b"Subject: m\r\n\r\nx\r\n",
        trace_id=None,
        accepted_ns=0,
    )


def record_trace(app: Flask, mode: str, **fields: str) -> Trace:
    """Send one email by ``mode`` through the app and return its finished trace."""
    response = app.test_client().post(f"/send-email/{mode}", json=fields)
    trace_id = response.get_json()["trace_id"]
    tracer = app.extensions["sandbox.tracer"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        trace = tracer.get(trace_id)
        if trace is not None and trace.complete:
            return trace
        time.sleep(0.01)
    raise AssertionError(f"trace {trace_id} did not complete")


@pytest.fixture(scope="session")
def recorded_traces() -> list[tuple[Trace, Trace]]:
    """Real (sync, thread) trace pairs at several sink delays, and a pair with the sink down."""
    pairs = []
    with Sink("127.0.0.1", 0) as sink:
        app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 5.0}, sink=sink)
        for delay in (0.0, 0.05, 0.2):
            sink.handler.delay_s = delay
            pairs.append((record_trace(app, "sync"), record_trace(app, "thread")))
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": free_port()})
    pairs.append((record_trace(app, "sync"), record_trace(app, "thread")))
    return pairs


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test item, so fixtures can tell a failed test (and save a screenshot)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
