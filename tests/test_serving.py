"""'The app is blocked' is true only for a server that handles one request at a time."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from flask import Flask, request

from sandbox.client import Reply, call
from sandbox.requests_log import ServedRequest
from sandbox.serving import ARRIVED_NS, REQUEST_ID, AppServer
from sandbox.sink import Sink

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


@pytest.mark.parametrize("server_mode", ["threaded", "single"])
def test_the_app_gets_the_arrival_stamp_and_log_id(
    app: Flask, live_server: Callable[[str], AppServer], server_mode: str
) -> None:
    app.add_url_rule("/test/stamp", "stamp", lambda: {key: request.environ[key] for key in (REQUEST_ID, ARRIVED_NS)})
    server = live_server(server_mode)
    reply = call(f"{server.url}test/stamp")
    (entry,) = finished_log(server, 1)
    assert reply.body == {REQUEST_ID: entry.id, ARRIVED_NS: entry.arrived_ns}
    assert reply.started_ns < entry.arrived_ns <= (entry.started_ns or 0) <= (entry.finished_ns or 0)


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
