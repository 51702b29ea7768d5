"""'The app is blocked' is true only for a server that handles one request at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sandbox.client import call
from sandbox.serving import AppServer
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
