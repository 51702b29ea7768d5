"""Property-based abuse: random requests at every route, random bytes at the HTTP server and at the SMTP sink.

Whatever arrives, the answer is never a 500, nothing hangs, and the servers keep serving afterwards.
"""

from __future__ import annotations

import itertools
import json
import re
import smtplib
import socket
import unicodedata
from collections.abc import Iterator
from email import policy
from email.parser import BytesHeaderParser
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import create_app
from sandbox.client import call
from sandbox.smtp.sink import Sink
from sandbox.trace.tracer import TRACE_ID
from sandbox.web.serving import AppServer
from tests.web.test_input import LINE_BREAKS

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
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])


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


# Field text mixing ordinary characters with every line break str.splitlines() knows, control characters and lone
# surrogates: the characters that could fold into a header break, or cannot be encoded at all.
UNSAFE = st.sampled_from([*LINE_BREAKS, "\x00", "\x1b", "\x7f", "\ud800", "\udfff"])
FIELD_TEXT = st.lists(UNSAFE | st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map("".join)


@FAST
@given(
    mode=st.sampled_from(["sync", "thread", "pool"]),
    fields=st.dictionaries(st.sampled_from(["to", "subject", "name"]), FIELD_TEXT, max_size=3),
)
def test_no_field_injects_a_header(fuzz_app: Flask, sink: Sink, mode: str, fields: dict[str, str]) -> None:
    body = json.dumps(fields)  # ASCII with \u escapes: lone surrogates travel as a browser would send them
    response = fuzz_app.test_client().post(f"/send-email/{mode}", data=body, content_type="application/json")
    assert response.status_code < 500, response.get_json()
    unsafe = any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") and c != "\t" for c in "".join(fields.values()))
    if unsafe:
        assert response.status_code == 400, (fields, response.get_json())
    if mode == "sync" and response.status_code == 200:
        stored = sink.mailbox.by_trace(response.get_json()["trace_id"])
        assert stored is not None, "a 200 means the sink has it, under its own trace id"
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(stored.raw)
        for name in ("From", "To", "Subject", "Date", "X-Sandbox-Trace"):
            assert len(headers.get_all(name, [])) == 1, (name, stored.raw[:600])
        assert not headers.get_all("Bcc") and not headers.get_all("Cc")


@FAST
@given(opener=st.sampled_from(["[", '{"a":', '{"to":[']), depth=st.integers(1, 6000))
def test_nested_json_of_any_depth_is_never_a_500(fuzz_app: Flask, opener: str, depth: int) -> None:
    client = fuzz_app.test_client()
    for path, method in (("/send-email/sync", client.post), ("/api/sink", client.put)):
        response = method(path, data=opener * depth, content_type="application/json")
        assert response.status_code in (400, 413), (path, depth, response.get_data()[:200])


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


SENDERS = itertools.count(1)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"<",
            b"garbage",
            b"Mon, 1 Jan 2020 25:00:00 +0000",
            b"=?x-nope?q?hi?=",
            b"=?utf-8?b?!!!?=",
            b"=?utf-7?q?+2AA-?=",
            b"=?idna?q?=FF?=",
            b"caf\xc3\xa9",
            b"\xff\xfe",
            b"text/plain; charset=x-nope",
            b"text/html; charset=idna",
            b"multipart/alternative",
            b"multipart/mixed; boundary=b",
            b"base64",
            b"quoted-printable",
            b"attachment; filename*=x-nope''%ff",
        ]
    ),
    st.uuids().map(lambda u: u.hex.encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
HEADER_LINES = st.builds(
    lambda name, value: name + b": " + value,
    st.sampled_from(
        [
            b"Subject",
            b"To",
            b"From",
            b"Cc",
            b"Date",
            b"Message-ID",
            b"Content-Type",
            b"Content-Transfer-Encoding",
            b"Content-Disposition",
            b"X-Sandbox-Trace",
        ]
    ),
    HEADER_VALUES,
) | st.sampled_from([b"No-Value:", b"no colon at all", b" folded continuation", b"X-Long: " + b"x" * 1500])
BODY_LINES = st.binary(max_size=60) | st.sampled_from(
    [b"", b".", b"--b", b"--b--", b"Content-Type: text/plain; charset=x-nope", b"!!!not base64", b"=ZZ=", b"\xff\xc3"]
)
EMAILS = st.builds(
    lambda headers, body: b"\r\n".join(headers) + b"\r\n\r\n" + b"\r\n".join(body),
    st.lists(HEADER_LINES, max_size=8),
    st.lists(BODY_LINES, max_size=8),
)
# aiosmtpd reads DATA in lines ending CRLF, of at most 1001 bytes with the CRLF; smtplib sends bytes as they are,
# with dots doubled at the start of lines and a CRLF added at the end if missing.
SMTP_LINE_LIMIT = 1001


def has_too_long_line(payload: bytes) -> bool:
    """Whether aiosmtpd must answer "500 Line too long" (RFC 5321 4.5.3.1.6) to ``payload`` sent by smtplib."""
    sent = re.sub(rb"(?m)^\.", b"..", payload)
    return any(len(line) + 2 > SMTP_LINE_LIMIT for line in sent.split(b"\r\n"))


@settings(max_examples=60, deadline=None)
@given(payload=EMAILS)
def test_malformed_emails_are_accepted_and_display(sink: Sink, fuzz_app: Flask, payload: bytes) -> None:
    """The sink answers 250 to any email and stores it, and the mailbox shows it; the only refusal allowed is the
    protocol's own for a line over the limit (sizes stay far below DATA_SIZE_LIMIT, so 552 is never right)."""
    sender = f"fuzz{next(SENDERS)}@example.com"
    try:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.sendmail(sender, ["b@example.com"], payload)
    except smtplib.SMTPDataError as err:
        assert (err.smtp_code, has_too_long_line(payload)) == (500, True), err
        assert all(m.mail_from != sender for m in sink.mailbox.messages())
        return
    assert not has_too_long_line(payload)
    [stored] = [m for m in sink.mailbox.messages() if m.mail_from == sender]
    assert stored.trace_id is None or (TRACE_ID.fullmatch(stored.trace_id) and stored.trace_id.encode() in payload)
    json.dumps(stored.summary())
    json.dumps(stored.parts(), ensure_ascii=False).encode("utf-8")
    client = fuzz_app.test_client()
    for url in (f"/api/messages/{stored.id}", f"/mailbox/{stored.id}", f"/mailbox/{stored.id}/html", "/mailbox"):
        assert client.get(url).status_code == 200, url
