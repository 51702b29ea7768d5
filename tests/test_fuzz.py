"""Property-based abuse: random requests at every route, random bytes at the HTTP server and at the SMTP sink.

Whatever arrives, the answer is never a 500, nothing hangs, and the servers keep serving afterwards.
"""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import create_app
from sandbox.client import call
from sandbox.serving import AppServer
from sandbox.sink import Sink

# Every email gets a Message-ID from email.utils.make_msgid, which draws from the global random module; Hypothesis
# notices that and warns, but it is the application's own behaviour, not a flaw in the strategies.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
SEGMENT = st.text(st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1, max_size=20)


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with Sink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture(scope="module")
def fuzz_app(sink: Sink) -> Iterator[Flask]:
    app = create_app(
        {"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 5.0, "SANDBOX_RETRY_BACKOFF": 0.01},
        sink=sink,
    )
    yield app
    app.extensions["sandbox.delivery"].wait_settled(20)
    app.extensions["sandbox.pool"].shutdown()


def paths() -> st.SearchStrategy[str]:
    fixed = st.sampled_from(
        [
            "/",
            "/lessons",
            "/mailbox",
            "/api/ping",
            "/api/stats",
            "/api/failures",
            "/api/sink",
            "/api/messages",
            "/send-email/sync",
            "/send-email/thread",
            "/send-email/pool",
            "/send-email/thread-no-context",
            "/send-email/thread-proxy",
        ]
    )
    templated = st.builds(
        lambda pattern, part: pattern.format(quote(part)),
        st.sampled_from(
            [
                "/send-email/{}",
                "/api/traces/{}",
                "/traces/{}",
                "/lessons/{}",
                "/mailbox/{}",
                "/mailbox/{}/html",
                "/api/messages/{}",
                "/static/{}",
            ]
        ),
        SEGMENT | st.integers(-5, 10**12).map(str),
    )
    return fixed | templated


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
FIELDS = st.dictionaries(st.sampled_from(["to", "subject", "name", "cc", ""]) | TEXT, TEXT | JSON, max_size=4)
BODIES = st.one_of(
    st.binary(max_size=3000),
    FIELDS.map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.just(b"x" * 20_000),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
        "",
        "application/json; charset=latin-1",
        "image/png",
    ]
)
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@FAST
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=paths(),
    body=BODIES,
    content_type=CONTENT_TYPES,
    accept=HEADER_VALUE,
    origin=st.none() | HEADER_VALUE,
)
def test_no_request_gets_a_500(
    fuzz_app: Flask, method: str, path: str, body: bytes, content_type: str, accept: str, origin: str | None
) -> None:
    headers = {"Accept": accept, **({"Origin": origin} if origin is not None else {})}
    response = fuzz_app.test_client().open(path, method=method, data=body, content_type=content_type, headers=headers)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400 and response.mimetype == "application/json" and method != "HEAD":
        assert response.get_json()["error"]


def test_the_app_still_serves_after_the_storm(fuzz_app: Flask) -> None:
    client = fuzz_app.test_client()
    assert client.get("/api/ping").status_code == 200
    assert client.post("/send-email/sync", json={}).status_code == 200


@pytest.fixture(scope="module")
def live(fuzz_app: Flask) -> Iterator[AppServer]:
    with AppServer(fuzz_app, "127.0.0.1", 0, "threaded") as server:
        yield server


@settings(max_examples=60, deadline=None)
@given(
    raw=st.binary(max_size=2000)
    | st.builds(
        lambda line, junk: line + junk,
        st.sampled_from(
            [
                b"GET / HTTP/1.1\r\n",
                b"POST /send-email/sync HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
                b"\x16\x03\x01",
                b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
            ]
        ),
        st.binary(max_size=200),
    )
)
def test_raw_bytes_do_not_break_the_http_server(live: AppServer, raw: bytes) -> None:
    host, port = live.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert call(f"{live.url}api/ping", timeout=5).status == 200


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=300).map(lambda b: b.replace(b"\n", b""))
        | st.sampled_from(
            [
                b"EHLO x",
                b"MAIL FROM:<a@example.com>",
                b"RCPT TO:<b@example.com>",
                b"DATA",
                b"RSET",
                b"NOOP",
                b"QUIT",
                b"AUTH PLAIN",
                b"STARTTLS",
                b"VRFY root",
                b".",
            ]
        ),
        max_size=12,
    )
)
def test_random_smtp_sessions_do_not_break_the_sink(sink: Sink, lines: list[bytes]) -> None:
    with socket.create_connection((sink.host, sink.port), timeout=5) as sock:
        sock.recv(1024)
        sock.sendall(b"".join(line + b"\r\n" for line in lines))
    before = len(sink.mailbox.messages())
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: still here\r\n\r\nok\r\n")
    assert len(sink.mailbox.messages()) >= before + 1
