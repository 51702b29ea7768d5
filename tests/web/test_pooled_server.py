"""The pooled server (waitress): a request waits only while every thread of the pool is busy, and the requests log
shows it, so the traces can say so."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

from sandbox.client import call
from sandbox.smtp.sink import Sink
from sandbox.web.serving import AppServer
from tests.web.test_serving import (
    DELAY_S,
    connect,
    finished_log,
    ms,
    ping_during_blocking_send,
    seconds_until_closed,
)

SHORT_TIMEOUT_S = 0.5


@pytest.fixture
def pool(app: Flask) -> Iterator[Callable[[int], AppServer]]:
    """``pool(n)``: the app on a pooled server of ``n`` threads, with a short read timeout."""
    started: list[AppServer] = []

    def start(threads: int) -> AppServer:
        server = AppServer(app, "127.0.0.1", 0, "pooled", SHORT_TIMEOUT_S, threads=threads).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_a_free_thread_answers_a_ping_during_a_blocking_send(sink: Sink, pool: Callable[[int], AppServer]) -> None:
    sink.handler.delay_s = DELAY_S
    assert ping_during_blocking_send(pool(2)) < DELAY_S * 1000 / 2


def test_with_every_thread_busy_the_ping_waits_for_the_send(sink: Sink, pool: Callable[[int], AppServer]) -> None:
    sink.handler.delay_s = DELAY_S
    assert ping_during_blocking_send(pool(1)) >= (DELAY_S - 0.2) * 1000 * 0.9


def test_the_log_shows_the_request_that_waited_for_a_thread(sink: Sink, pool: Callable[[int], AppServer]) -> None:
    sink.handler.delay_s = 0.3
    server = pool(2)
    with ThreadPoolExecutor(3) as clients:
        replies = list(clients.map(lambda _: call(f"{server.url}send-email/sync", "POST", {}), range(3)))
    assert [reply.status for reply in replies] == [200] * 3
    entries = finished_log(server, 3)
    assert {(e.method, e.path, e.status, e.server) for e in entries} == {("POST", "/send-email/sync", 200, "pooled")}
    first_end = min(entry.finished_ns or 0 for entry in entries)
    waited = [entry for entry in entries if (entry.started_ns or 0) >= first_end]
    assert len(waited) == 1  # two threads: the third request started only once a thread came free
    assert ms(waited[0].arrived_ns, waited[0].started_ns) >= 300 * 0.8
    trace = call(f"{server.url}api/traces/{replies[0].body['trace_id']}").body
    threads = {step["thread"] for step in trace["steps"] if step["action"].startswith("Flask")}
    assert threads and all(name.startswith("waitress-") for name in threads), threads


def test_a_trickling_client_holds_no_thread(pool: Callable[[int], AppServer]) -> None:
    """waitress reads a request whole before a thread takes it: one thread, and still the ping goes through."""
    server = pool(1)
    with connect(server) as slow:
        slow.sendall(b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        ping = call(f"{server.url}api/ping")
        assert ping.status == 200 and ping.elapsed_ms < SHORT_TIMEOUT_S * 1000
        assert seconds_until_closed(slow) < 3  # silent for a second (waitress's unit), it is let go
    cut, answered = finished_log(server, 2)
    assert (cut.started_ns, cut.status) == (None, None)
    assert (answered.path, answered.status) == ("/api/ping", 200)


def test_stopping_lets_the_running_send_answer_and_ends_the_requests_in_line(
    sink: Sink, pool: Callable[[int], AppServer]
) -> None:
    sink.handler.delay_s = DELAY_S
    server = pool(1)
    replies: list[object] = []

    def send() -> None:
        try:
            replies.append(call(f"{server.url}send-email/sync", "POST", {}).status)
        except OSError as err:
            replies.append(type(err).__name__)

    clients = [threading.Thread(target=send) for _ in range(2)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 5
    while not any(entry.started_ns for entry in server.requests.between(0, time.perf_counter_ns())):
        assert time.monotonic() < deadline, "the first send did not start"
        time.sleep(0.01)
    time.sleep(0.1)
    began = time.monotonic()
    server.stop(drain_s=10)
    assert time.monotonic() - began < DELAY_S + 2
    for client in clients:
        client.join(10)
    running, in_line = sorted(finished_log(server, 2), key=lambda entry: entry.started_ns or float("inf"))
    assert running.status == 200 and 200 in replies  # the send under way was answered
    assert (in_line.started_ns, in_line.status) == (None, None)  # the one in line ended unserved
    assert len(sink.mailbox.messages()) == 1
