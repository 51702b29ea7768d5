"""The pooled server: waitress, a production WSGI server, running the app on a fixed pool of threads.

One thread (``http-server``) runs waitress's event loop: it accepts connections, reads each request whole and puts
it in line; the pool's threads (``waitress-0``, ``waitress-1``...) take the requests in line one at a time and run
the app. A request waits only while every thread of the pool is busy: between the other two kinds, a thread for
each request and one request at a time.

It logs as the other kinds do, so the requests log shows the pool's occupancy: a request *arrives* with its first
bytes, *starts* when a pool thread takes it up and *finishes* when that thread is done with it (its answer is then
in the loop's hands to write). Reading a request costs no pool thread, so a client that trickles its bytes holds
only its connection; a connection silent for the read timeout (in whole seconds, at least one) is closed.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

from sandbox.web.requests_log import RequestsLog
from sandbox.web.security import CONTENT_SECURITY_POLICY
from sandbox.web.stamps import (
    ACCEPTOR,
    ARRIVED_NS,
    POOL_THREADS,
    READ_TIMEOUT_S,
    REQUEST_ID,
    SERVER_KIND,
    STOP_POLL_S,
    Arrival,
)

KIND = "pooled"
POOLED_THREADS = 32  # the pool's size unless the settings say otherwise (see BENCHMARKS.md for why)
CONNECTION_LIMIT = 1000  # open connections; a class of browsers keeps several each
FLUSH_WAIT_S = 1.0  # at stop, how long the loop may take to write the answers the pool has finished
# waitress warns on every request that finds the pool busy; the requests log and the traces say it instead.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class _StampedParser(HTTPRequestParser):
    """waitress's request parser, logging the request's arrival with its first bytes.

    ``taken`` is decided under the channel's lock: a pool thread took the request up, or it was dropped unserved.
    """

    arrival: Arrival | None = None
    taken = False

    def __init__(self, adj: Adjustments, channel: _StampedChannel) -> None:
        super().__init__(adj)
        self._channel = channel

    def received(self, data: bytes) -> int:
        # After a request waitress refused, the connection only closes: the bytes that follow are not a request.
        refused = any(request.error for request in self._channel.requests)
        if self.arrival is None and data and not refused:
            arrived_ns = time.perf_counter_ns()
            self.arrival = (self._channel.server.requests.arrived(arrived_ns, KIND), arrived_ns)
        consumed = super().received(data)
        if self.completed and self.empty and self.arrival is not None:  # blank lines only: nothing to serve
            self.taken = True
            self._channel.server.requests.finished(self.arrival[0], None)
        return consumed


class _NotesStatus:
    """A task that tells its channel the status it answered with, once its answer is complete."""

    channel: _StampedChannel
    status: str

    def finish(self) -> None:
        super().finish()  # type: ignore[misc]
        self.channel.answered = int(self.status.split(" ", 1)[0])


class _StampedTask(_NotesStatus, WSGITask):
    def get_environment(self) -> dict[str, Any]:
        if self.environ is not None:
            return self.environ
        environ = super().get_environment()
        server: _PooledWSGIServer = self.channel.server
        request_id, arrived_ns = self.request.arrival
        environ[REQUEST_ID], environ[ARRIVED_NS] = request_id, arrived_ns
        environ[SERVER_KIND], environ[ACCEPTOR] = KIND, server.acceptor
        environ[POOL_THREADS] = server.adj.threads
        return environ


class _StampedErrorTask(_NotesStatus, ErrorTask):
    """waitress's answer to a request it could not read (a bad Content-Length, a head too large), in JSON like
    every other refusal of the sandbox."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason}: {error.body}"}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers += [
            ("Content-Type", "application/json"),
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),  # as the app's own answers carry
            ("X-Content-Type-Options", "nosniff"),
        ]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _StampedChannel(HTTPChannel):
    """A connection: logs when a pool thread takes each request up and lets it go, and ends the log entry of any
    request it drops unserved when it closes."""

    server: _PooledWSGIServer
    task_class = _StampedTask
    error_task_class = _StampedErrorTask

    def __init__(self, server: _PooledWSGIServer, sock: Any, addr: Any, adj: Adjustments, map: Any = None) -> None:
        self.parser_class = functools.partial(_StampedParser, channel=self)  # type: ignore[assignment]
        self._taking = threading.Lock()
        self.answered: int | None = None
        super().__init__(server, sock, addr, adj, map)

    def service(self) -> None:
        """On a pool thread: serve the first request in line."""
        request: _StampedParser = self.requests[0]
        with self._taking:
            logged = request.arrival if not request.taken else None
            request.taken = True
        if self.server.stopping:  # in line when the server began to stop: it goes unserved, like the rest of the line
            if logged is not None:
                self.server.requests.finished(logged[0], None)
            with self.requests_lock:
                self.requests = []
                self.will_close = True
            self.server.pull_trigger()
            return
        if logged is None or not self.connected:
            super().service()
            if logged is not None:
                self.server.requests.finished(logged[0], None)
            return
        path = (request.path or "").encode("latin-1").decode(errors="replace")
        self.server.requests.started(logged[0], request.command or "", path)
        self.answered = None
        try:
            super().service()
        finally:
            self.server.requests.finished(logged[0], self.answered)  # None unless the task wrote its whole answer

    def del_channel(self, map: Any = None) -> None:
        """Closing: requests read but never taken up end here, without an answer."""
        with self._taking:
            for request in (*self.requests, self.request):
                if isinstance(request, _StampedParser) and request.arrival is not None and not request.taken:
                    request.taken = True
                    self.server.requests.finished(request.arrival[0], None)
        super().del_channel(map)


class _PooledWSGIServer(TcpWSGIServer):
    channel_class = _StampedChannel

    def __init__(self, app: Flask, requests: RequestsLog, adj: Adjustments, socket_map: dict[int, Any]) -> None:
        self.requests = requests
        self.acceptor = ("", 0)
        self.stopping = False  # set once, by PooledServer.stop(): accept no more, serve no more from the line
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        try:
            super().__init__(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
        except BaseException:
            dispatcher.shutdown(timeout=1)
            raise


class PooledServer:
    """waitress on ``host:port`` with ``threads`` pool threads, run by ``start()`` on a thread of its own."""

    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        requests: RequestsLog,
        threads: int,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        silent_s = max(1, math.ceil(read_timeout_s))  # waitress counts whole seconds
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            channel_timeout=silent_s,
            cleanup_interval=1,  # how often it looks for silent connections
            connection_limit=CONNECTION_LIMIT,
            ident="sandbox",
        )
        self._map: dict[int, Any] = {}
        self._server = _PooledWSGIServer(app, requests, adj, self._map)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http-server", daemon=True)

    @property
    def server_address(self) -> tuple[str, int]:
        return self._server.effective_host, int(self._server.effective_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_s: float) -> None:
        """Stop accepting at once; let the requests the pool is running finish (at most ``drain_s``) and their
        answers be written; then close every connection (a request still in line ends there, unanswered)."""
        self._server.stopping = True
        self._server.requests.wait_answered(drain_s, server=KIND)
        deadline = time.monotonic() + FLUSH_WAIT_S
        while time.monotonic() < deadline and any(
            channel.total_outbufs_len for channel in list(self._server.active_channels.values())
        ):
            time.sleep(0.01)
        self._closing.set()
        self._thread.join()

    def _serve(self) -> None:
        self._server.acceptor = (threading.current_thread().name, threading.get_native_id())
        try:
            while not self._closing.is_set():
                if self._server.stopping and self._server.accepting:
                    self._server.accepting = False
                    wasyncore.dispatcher.close(self._server)  # the listening socket only: the loop still writes
                # poll(), not select(), which stops at file descriptor 1024; one round, then look at the flags again.
                wasyncore.loop(timeout=STOP_POLL_S, use_poll=True, map=self._map, count=1)
        finally:
            wasyncore.close_all(self._map)  # the connections, then the pool (a request in line is cancelled)
            self._server.task_dispatcher.shutdown(timeout=FLUSH_WAIT_S)
