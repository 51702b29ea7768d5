"""'The app is blocked' is true only for a server that handles one request at a time."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from flask import Flask, request

from sandbox.client import Reply, call
from sandbox.smtp.sink import Sink
from sandbox.web.pooled_server import POOLED_THREADS
from sandbox.web.requests_log import ServedRequest
from sandbox.web.serving import PLACE_KEPT_S, AppServer
from sandbox.web.stamps import ARRIVED_NS, POOL_THREADS, REQUEST_ID

DELAY_S = 1.0


def ping_during_blocking_send(server: AppServer) -> float:
    """Start a blocking send, ping once it is under way, and return how long the ping took (ms)."""
    sender = threading.Thread(target=call, args=(f"{server.url}send-email/sync", "POST", {}))
    sender.start()
    time.sleep(0.2)
    ping = call(f"{server.url}api/ping")
    sender.join()
    assert ping.status == 200
    return ping.elapsed_ms


def test_single_server_makes_a_ping_wait_for_the_blocking_send(
    sink: Sink, live_server: Callable[[str], AppServer]
) -> None:
    sink.handler.delay_s = DELAY_S
    waited_ms = ping_during_blocking_send(live_server("single"))
    assert waited_ms >= (DELAY_S - 0.2) * 1000 * 0.9


def test_threaded_server_answers_a_ping_during_the_blocking_send(
    sink: Sink, live_server: Callable[[str], AppServer]
) -> None:
    sink.handler.delay_s = DELAY_S
    waited_ms = ping_during_blocking_send(live_server("threaded"))
    assert waited_ms < DELAY_S * 1000 / 2


def test_server_url_and_real_round_trip(sink: Sink, live_server: Callable[[str], AppServer]) -> None:
    server = live_server("threaded")
    assert server.url.startswith("http://127.0.0.1:")
    reply = call(f"{server.url}send-email/thread", "POST", {"to": "ada@example.com"})
    assert reply.status == 202 and reply.body["status"] == "queued"
    assert sink.mailbox.wait_for_count(1, 5)


def finished_log(server: AppServer, count: int) -> list[ServedRequest]:
    """The whole log once ``count`` requests are in it and finished: the server notes a request's end just after
    its last write, so a client can have its answer a moment before the log has the end."""
    deadline = time.monotonic() + 5
    while True:
        entries = server.requests.between(0, time.perf_counter_ns())
        if len(entries) >= count and all(entry.finished_ns is not None for entry in entries):
            return entries
        assert time.monotonic() < deadline, f"the log did not settle: {entries}"
        time.sleep(0.01)


def entry_of(reply: Reply, entries: list[ServedRequest]) -> ServedRequest:
    """The log entry of ``reply``: the one that finished closest to when its client had the answer."""
    answered_ns = reply.started_ns + reply.elapsed_ms * 1e6
    return min(entries, key=lambda entry: abs(entry.finished_ns - answered_ns))


def ms(start_ns: int | None, end_ns: int | None) -> float:
    assert start_ns is not None and end_ns is not None
    return (end_ns - start_ns) / 1e6


def test_single_server_log_shows_the_time_a_request_queued(sink: Sink, live_server: Callable[[str], AppServer]) -> None:
    sink.handler.delay_s = 0.3
    server = live_server("single")
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: call(f"{server.url}send-email/sync", "POST", {}), range(3)))
    entries = finished_log(server, 3)
    assert [(entry.method, entry.path, entry.status) for entry in entries] == [("POST", "/send-email/sync", 200)] * 3
    for reply in replies:
        assert reply.status == 200
        entry = entry_of(reply, entries)
        assert abs(reply.elapsed_ms - ms(entry.arrived_ns, entry.finished_ns)) < 50
    assert ms(entries[2].arrived_ns, entries[2].started_ns) >= 500  # behind two sends of at least 0.3 s each
    assert sorted(entries, key=lambda entry: entry.started_ns or 0) == entries  # handled in the order they arrived


def test_threaded_server_log_shows_the_ping_answered_during_the_send(
    sink: Sink, live_server: Callable[[str], AppServer]
) -> None:
    sink.handler.delay_s = DELAY_S
    server = live_server("threaded")
    ping_during_blocking_send(server)
    send, ping = finished_log(server, 2)
    assert (send.path, ping.path) == ("/send-email/sync", "/api/ping")
    assert send.finished_ns is not None and ping.finished_ns is not None
    assert send.arrived_ns < ping.arrived_ns and ping.finished_ns < send.finished_ns
    assert server.requests.between(send.arrived_ns, send.finished_ns, exclude=send.id) == [ping]


@pytest.mark.parametrize("server_mode", ["threaded", "single", "pooled"])
def test_the_app_gets_the_arrival_stamp_and_log_id(
    app: Flask, live_server: Callable[[str], AppServer], server_mode: str
) -> None:
    keys = (REQUEST_ID, ARRIVED_NS, POOL_THREADS)
    app.add_url_rule("/test/stamp", "stamp", lambda: {key: request.environ.get(key) for key in keys})
    server = live_server(server_mode)
    reply = call(f"{server.url}test/stamp")
    (entry,) = finished_log(server, 1)
    threads = POOLED_THREADS if server_mode == "pooled" else None
    assert reply.body == {REQUEST_ID: entry.id, ARRIVED_NS: entry.arrived_ns, POOL_THREADS: threads}
    assert reply.started_ns < entry.arrived_ns <= (entry.started_ns or 0) <= (entry.finished_ns or 0)
    assert entry.server == server_mode


def test_two_requests_over_one_connection_are_two_entries_one_after_the_other(
    live_server: Callable[[str], AppServer],
) -> None:
    """Werkzeug 3.1 answers ``Connection: close`` even to HTTP/1.1, so the client opens a second connection for the
    second request; kept alive or not, the second request arrives only after the first has finished."""
    server = live_server("threaded")
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", "/api/ping")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
    finally:
        connection.close()
    first, second = finished_log(server, 2)
    assert first.finished_ns is not None and second.arrived_ns > first.finished_ns


def send_unless_closed(url: str) -> None:
    """POST to ``url``, a client of a server that may stop and close its connection unanswered."""
    try:
        call(url, "POST", {})
    except OSError:
        pass


def test_stopping_the_single_server_closes_the_connections_still_queued(app: Flask, sink: Sink) -> None:
    sink.handler.delay_s = DELAY_S
    server = AppServer(app, "127.0.0.1", 0, "single").start()
    clients = [threading.Thread(target=send_unless_closed, args=(f"{server.url}send-email/sync",)) for _ in range(3)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 5
    while len(server.requests.between(0, time.perf_counter_ns())) < 3:
        assert time.monotonic() < deadline, "the three clients did not all arrive"
        time.sleep(0.01)
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 2
    for client in clients:
        client.join(10)
    running, *queued = finished_log(server, 3)
    assert running.status == 200
    assert [(entry.started_ns, entry.status) for entry in queued] == [(None, None)] * 2


# A short read timeout, so that a test sees a slow or silent client cut off in half a second.
SHORT_TIMEOUT_S = 0.5
JSON_HEAD = b"POST /send-email/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
FORM_HEAD = b"POST /send-email/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"


@pytest.fixture
def strict_server(app: Flask) -> Iterator[Callable[[str], AppServer]]:
    """``live_server`` with ``SHORT_TIMEOUT_S`` as the read timeout."""
    started: list[AppServer] = []

    def start(server_mode: str) -> AppServer:
        server = AppServer(app, "127.0.0.1", 0, server_mode, read_timeout_s=SHORT_TIMEOUT_S).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def connect(server: AppServer) -> socket.socket:
    url = urlsplit(server.url)
    return socket.create_connection((url.hostname, url.port), timeout=5)


def exchange(server: AppServer, data: bytes, *, hang_up: bool = True) -> bytes:
    """Send ``data`` raw, then close our side unless told not to, and return all the server answered."""
    with connect(server) as connection:
        connection.sendall(data)
        if hang_up:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def seconds_until_closed(connection: socket.socket, trickle: bytes = b"") -> float:
    """Send ``trickle`` one byte every 50 ms until the server closes the connection (unanswered); how long it took."""
    began = time.monotonic()
    remaining = iter(trickle)
    while time.monotonic() - began < 5:
        if select.select([connection], [], [], 0.05)[0]:
            assert connection.recv(65536) == b"", "the server answered a request it never had whole"
            return time.monotonic() - began
        byte = next(remaining, None)
        if byte is not None:
            connection.send(bytes([byte]))
    raise AssertionError("the server kept the connection open")


def assert_nothing_sent(server: AppServer, sink: Sink) -> None:
    assert call(f"{server.url}api/stats").body["sent"] == 0
    assert sink.mailbox.messages() == []


def test_a_silent_connection_does_not_hold_up_the_single_server(
    strict_server: Callable[[str], AppServer],
) -> None:
    server = strict_server("single")
    with connect(server) as silent:
        ping = call(f"{server.url}api/ping")
        silent.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open, and still unanswered
            silent.recv(1)
        silent.setblocking(True)
        assert ping.status == 200 and ping.elapsed_ms < SHORT_TIMEOUT_S * 1000 / 2
        assert seconds_until_closed(silent) < SHORT_TIMEOUT_S + 1
    silent_entry, ping_entry = finished_log(server, 2)
    assert (silent_entry.started_ns, silent_entry.status) == (None, None)  # closed without a request, entry ended
    assert (ping_entry.path, ping_entry.status) == ("/api/ping", 200)


def test_a_client_that_speaks_late_loses_its_place_but_is_served(
    strict_server: Callable[[str], AppServer],
) -> None:
    server = strict_server("single")
    with connect(server) as late:
        time.sleep(PLACE_KEPT_S * 2)
        assert call(f"{server.url}api/ping").status == 200
        late.sendall(b"GET /api/ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        assert late.recv(65536).startswith(b"HTTP/1.0 200")
    late_entry, ping_entry = finished_log(server, 2)
    assert late_entry.arrived_ns < ping_entry.arrived_ns and ping_entry.finished_ns < (late_entry.started_ns or 0)


@pytest.mark.parametrize("server_mode", ["threaded", "single"])
@pytest.mark.parametrize(
    "trickle", [b"", b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n"], ids=["idle", "slow-headers"]
)
def test_a_client_too_slow_to_send_its_head_is_cut_at_the_read_timeout(
    strict_server: Callable[[str], AppServer], server_mode: str, trickle: bytes
) -> None:
    """The timeout is a deadline for the whole head: a byte every 50 ms does not keep the connection alive."""
    server = strict_server(server_mode)
    with connect(server) as connection:
        waited = seconds_until_closed(connection, trickle)
    assert SHORT_TIMEOUT_S * 0.8 <= waited < SHORT_TIMEOUT_S + 1
    assert call(f"{server.url}api/ping").status == 200


@pytest.mark.parametrize("server_mode", ["threaded", "single", "pooled"])
def test_a_request_cut_off_before_its_blank_line_sends_nothing(
    sink: Sink, strict_server: Callable[[str], AppServer], server_mode: str
) -> None:
    server = strict_server(server_mode)
    cut_heads = [
        b"POST /send-email/sync HTTP/1.1",
        b"POST /send-email/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        JSON_HEAD + b"Content-Length: 2",
        JSON_HEAD + b"Content-Length: 2\r\n",
    ]
    for head in cut_heads * 3:
        answer = exchange(server, head)
        assert answer == b"" or status_of(answer) == 400, answer
    assert_nothing_sent(server, sink)
    assert status_of(exchange(server, JSON_HEAD + b"Content-Length: 2\r\n\r\n{}")) == 200  # whole, it sends
    finished_log(server, len(cut_heads) * 3)  # every cut-off request's entry ended


@pytest.mark.parametrize(
    ("request_bytes", "hang_up"),
    [
        (JSON_HEAD + b'Content-Length: 30\r\n\r\n{"to": "ada@example.com"', True),
        (JSON_HEAD + b'Content-Length: 30\r\n\r\n{"to": "ada@example.com"', False),  # then silence: the timeout
        (FORM_HEAD + b"Content-Length: 30\r\n\r\nto=ada%40example.com", True),
        (JSON_HEAD + b'Transfer-Encoding: chunked\r\n\r\n1e\r\n{"to": "ada@example.com"', True),
    ],
    ids=["json-eof", "json-timeout", "form-eof", "chunked-eof"],
)
def test_a_body_shorter_than_announced_sends_nothing(
    sink: Sink, strict_server: Callable[[str], AppServer], request_bytes: bytes, hang_up: bool
) -> None:
    server = strict_server("threaded")
    answer = exchange(server, request_bytes, hang_up=hang_up)
    assert status_of(answer) == 400
    assert_nothing_sent(server, sink)


BAD_LENGTHS = [
    b"Content-Length: abc",
    b"Content-Length: -1",
    b"Content-Length: 1, 2",
    b"Content-Length: 2\r\nContent-Length: 3",
]
BOTH_FRAMINGS = b"Content-Length: 2\r\nTransfer-Encoding: chunked"


@pytest.mark.parametrize(
    ("server_mode", "framing"),
    [
        *[("threaded", framing) for framing in [*BAD_LENGTHS, BOTH_FRAMINGS]],
        *[("pooled", framing) for framing in BAD_LENGTHS],
    ],
)
def test_a_bad_content_length_is_refused_before_the_route(
    sink: Sink, strict_server: Callable[[str], AppServer], framing: bytes, server_mode: str
) -> None:
    server = strict_server(server_mode)
    answer = exchange(server, JSON_HEAD + framing + b"\r\n\r\n{}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 400 and b"application/json" in head and b"nosniff" in head
    assert "Content-Length" in json.loads(body)["error"]
    assert finished_log(server, 1)[-1].status == 400
    assert_nothing_sent(server, sink)


def test_the_pooled_server_reads_a_body_sent_both_ways_as_chunked(
    sink: Sink, strict_server: Callable[[str], AppServer]
) -> None:
    """waitress follows Transfer-Encoding over Content-Length (RFC 9112); "{}" is no chunk, so nothing is sent."""
    server = strict_server("pooled")
    assert exchange(server, JSON_HEAD + BOTH_FRAMINGS + b"\r\n\r\n{}") == b""
    assert_nothing_sent(server, sink)
    chunked = JSON_HEAD + BOTH_FRAMINGS + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    assert status_of(exchange(server, chunked)) == 200
