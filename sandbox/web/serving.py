"""Run the app in a real server on threads of its own, so timings are what a browser would see.

Three kinds: Werkzeug's threaded server, a one-request-at-a-time server built on Werkzeug, and the pooled server
(waitress, in :mod:`sandbox.pooled_server`). Each stamps every request with the moment the server had it and its
id in the app's requests log (see :mod:`sandbox.stamps`): a trace's own clock starts only when Flask gets the
request, after any time the request spent waiting for the server.

Werkzeug's two do not wait on a client for long: a request's head, and then its body, must each arrive within
``READ_TIMEOUT_S`` (a deadline, so a client trickling one byte at a time is cut as surely as a silent one), and a
request whose head was cut off before its blank line never reaches the app.
"""

from __future__ import annotations

import io
import itertools
import queue
import selectors
import socket
import threading
import time
from http import HTTPStatus
from typing import Any, BinaryIO

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from sandbox.web.pooled_server import POOLED_THREADS, PooledServer
from sandbox.web.requests_log import RequestsLog
from sandbox.web.stamps import ACCEPTOR, ARRIVED_NS, READ_TIMEOUT_S, REQUEST_ID, SERVER_KIND, STOP_POLL_S, Arrival

WILDCARD_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}
PLACE_KEPT_S = 0.1  # how long the single server keeps a silent connection's place in line


class _RequestReader(io.RawIOBase):
    """The handler's socket reader, with one ``deadline`` for each part of a request: a plain socket timeout starts
    again at every byte, so a client trickling bytes would never meet it. Past the deadline, only what has already
    arrived can still be read.

    ``at_eof`` notes that the client closed its side: the head is read line by line, so meeting the end while
    reading it means the head stopped before its blank line.
    """

    def __init__(self, connection: socket.socket, timeout_s: float) -> None:
        super().__init__()
        self._connection = connection
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.at_eof = False

    def restart(self) -> None:
        """Give the next part of the request (a head, a body) its own ``timeout_s``."""
        self.deadline = time.monotonic() + self.timeout_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._connection.settimeout(max(self.deadline - time.monotonic(), 0.0))
        try:
            count = self._connection.recv_into(buffer)
        except BlockingIOError as err:  # past the deadline, and nothing more had arrived
            raise TimeoutError(f"the request did not arrive within {self.timeout_s:g} s") from err
        finally:
            self._connection.settimeout(self.timeout_s)  # writes too, so a client that never reads is let go
        self.at_eof = self.at_eof or count == 0
        return count


class _WriteClock:
    """The handler's socket writer, noting when a write last returned: the moment a response had been written."""

    def __init__(self, writer: BinaryIO) -> None:
        self._writer = writer
        self.last_write_ns: int | None = None

    def write(self, data: bytes) -> int:
        written = self._writer.write(data)
        self.last_write_ns = time.perf_counter_ns()
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class StampedRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, logging each request's arrival, start and end and stamping its environ.

    HTTP/1.0, so every request is a connection of its own; the threaded server uses HTTP/1.1 (see below).
    """

    server: _StampedServer
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout_s
        super().setup()
        self.rfile.close()  # the socket closes only once every file made from it is closed
        self._reader = _RequestReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _WriteClock(self.wfile)

    def handle_one_request(self) -> None:
        # The first request of a connection arrived at accept(); a later one arrives in parse_request().
        self._arrival = self.server.claim_arrival(self.connection)
        self._status: int | None = None
        status = None
        self._reader.restart()  # for the head: also how long a kept-alive connection may sit idle
        try:
            super().handle_one_request()
            status = self._status
        finally:
            if self._arrival is not None:
                finished_ns = self.wfile.last_write_ns if status is not None else None
                self.server.requests.finished(self._arrival[0], status, finished_ns)

    def parse_request(self) -> bool:
        if self._arrival is None:  # a later request on a kept-alive connection: its request line was just read
            arrived_ns = time.perf_counter_ns()
            self._arrival = (self.server.requests.arrived(arrived_ns, self.server.kind), arrived_ns)
        if not super().parse_request():
            return False
        if self._reader.at_eof:  # http.server would pass on the headers read so far, as if they were all
            self.send_error(
                HTTPStatus.BAD_REQUEST,
                "Request cut off",
                "The connection closed before the blank line that ends the headers, so nothing was done",
            )
            return False
        self._reader.restart()  # for the body
        return True

    def make_environ(self) -> dict[str, Any]:
        """Werkzeug calls this just before it calls the app: the moment the request starts."""
        environ = super().make_environ()
        assert self._arrival is not None
        request_id, arrived_ns = self._arrival
        environ[REQUEST_ID], environ[ARRIVED_NS] = request_id, arrived_ns
        environ[SERVER_KIND], environ[ACCEPTOR] = self.server.kind, self.server.acceptor
        lengths = self.headers.get_all("Content-Length", [])
        if len(lengths) > 1:  # Werkzeug keeps the last; joined, the app sees the conflict and refuses the request
            environ["CONTENT_LENGTH"] = ", ".join(lengths)
        path = environ["PATH_INFO"].encode("latin-1").decode(errors="replace")
        self.server.requests.started(request_id, self.command, path)
        return environ

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = int(code)  # send_error passes an HTTPStatus
        super().send_response(code, message)

    def connection_dropped(self, error: BaseException, environ: dict[str, Any] | None = None) -> None:
        self._status = None  # the client left before it had the whole answer
        super().connection_dropped(error, environ)


class KeepAliveRequestHandler(StampedRequestHandler):
    """HTTP/1.1, as Werkzeug gives its threaded server (chunked responses; Werkzeug 3.1 still closes each one)."""

    protocol_version = "HTTP/1.1"


class _StampedServer(BaseWSGIServer):
    """Stamps each connection as ``accept()`` returns, for its handler to claim for its first request."""

    handler_class: type[StampedRequestHandler] = StampedRequestHandler
    kind = "single"

    def __init__(
        self, host: str, port: int, app: Flask, requests: RequestsLog, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self.requests = requests
        self.read_timeout_s = read_timeout_s
        self.acceptor = ("", 0)
        self._arrivals: dict[socket.socket, Arrival] = {}
        super().__init__(host, port, app, handler=self.handler_class)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        arrived_ns = time.perf_counter_ns()
        self.acceptor = (threading.current_thread().name, threading.get_native_id())
        self._arrivals[connection] = (self.requests.arrived(arrived_ns, self.kind), arrived_ns)
        return connection, address

    def claim_arrival(self, connection: socket.socket) -> Arrival | None:
        """The accept stamp of ``connection`` the first time it is asked for, then None."""
        return self._arrivals.pop(connection, None)

    def shutdown_request(self, request: socket.socket) -> None:
        """Close a connection, ending its log entry if no handler ever read a request from it."""
        unclaimed = self.claim_arrival(request)
        if unclaimed is not None:
            self.requests.finished(unclaimed[0], None)
        super().shutdown_request(request)


class NamedThreadsWSGIServer(_StampedServer, ThreadedWSGIServer):
    """Werkzeug's threaded server, naming each request's thread ``request-N`` so traces read clearly."""

    handler_class = KeepAliveRequestHandler
    kind = "threaded"
    _numbers = itertools.count(1)

    def process_request_thread(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        threading.current_thread().name = f"request-{next(self._numbers)}"
        super().process_request_thread(request, client_address)


class QueuedWSGIServer(_StampedServer):
    """One request at a time, in arrival order, with the queue in plain sight.

    ``serve_forever`` only accepts (stamping each connection at once) and queues; ``work_forever``, on another
    thread, handles the queued connections one by one. Without the acceptor, waiting connections would sit in the
    kernel's backlog, where no clock sees them.

    A connection joins the queue once it has sent something: one that connects and says nothing would otherwise
    hold up every client behind it. It keeps its place in line for ``PLACE_KEPT_S``, so clients a moment apart are
    still served in the order they connected; silent for the read timeout, it is closed unhandled (its log entry
    ends there).
    """

    def __init__(
        self, host: str, port: int, app: Flask, requests: RequestsLog, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue()
        # Accepted and not yet queued, in the order accepted: client address and when accept() returned. Those that
        # have spoken are no longer watched by the selector. Only the acceptor thread touches these while it serves.
        self._waiting: dict[socket.socket, tuple[Any, float]] = {}
        self._spoke: set[socket.socket] = set()
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        super().__init__(host, port, app, requests, read_timeout_s)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and queue until ``shutdown()``, which waits at most about ``poll_interval``."""
        self._selector.register(self, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                ready = {key.fileobj for key, _ in self._selector.select(self._wait_s(poll_interval))}
                if self in ready:
                    self._handle_request_noblock()  # accept(), then process_request()
                self._queue_or_close(ready)
        finally:
            self._selector.unregister(self)
            for connection in list(self._waiting):
                self._leave(connection)
                self.shutdown_request(connection)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has closed the connections not yet queued."""
        self._stopping.set()
        self._stopped.wait()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Watch a just-accepted connection until it speaks: ``serve_forever`` then queues it."""
        self._waiting[request] = (client_address, time.monotonic())
        self._selector.register(request, selectors.EVENT_READ)

    def _queue_or_close(self, ready: set[Any]) -> None:
        """Queue, in the order accepted, the connections that spoke, unless one before them is still keeping its
        place; close those silent for the read timeout."""
        for connection in ready & self._waiting.keys():
            self._selector.unregister(connection)
            self._spoke.add(connection)
        now = time.monotonic()
        in_line = True  # no connection accepted earlier is still keeping its place
        for connection, (client_address, accepted_at) in list(self._waiting.items()):
            if connection in self._spoke:
                if in_line:
                    self._leave(connection)
                    self._queue.put((connection, client_address))
            elif now - accepted_at >= self.read_timeout_s:
                self._leave(connection)
                self.shutdown_request(connection)
            elif now - accepted_at < PLACE_KEPT_S:
                in_line = False

    def _leave(self, connection: socket.socket) -> None:
        del self._waiting[connection]
        if connection in self._spoke:
            self._spoke.remove(connection)
        else:
            self._selector.unregister(connection)

    def _wait_s(self, poll_interval: float) -> float:
        """How long to wait for the next event: a silent connection losing its place or timing out, at most the
        interval."""
        now = time.monotonic()
        due = [poll_interval]
        for connection, (_, accepted_at) in self._waiting.items():
            if connection not in self._spoke:
                place_lost_at = accepted_at + PLACE_KEPT_S
                due.append((place_lost_at if place_lost_at > now else accepted_at + self.read_timeout_s) - now)
        return max(0.0, min(due))

    def work_forever(self) -> None:
        """Handle queued connections, oldest first, until ``server_close()`` queues the stop marker."""
        while (item := self._queue.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        """Also close the connections still queued, and let the worker stop after its current request."""
        super().server_close()
        self._selector.close()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        self._queue.put(None)


class _WerkzeugServer:
    """Werkzeug's threaded server, or the queued single one, on threads of their own."""

    def __init__(
        self, app: Flask, host: str, port: int, requests: RequestsLog, server_mode: str, read_timeout_s: float
    ) -> None:
        if server_mode == "threaded":
            self._server: _StampedServer = NamedThreadsWSGIServer(host, port, app, requests, read_timeout_s)
            accepting = "http-server"
            self._threads = []
        else:
            server = QueuedWSGIServer(host, port, app, requests, read_timeout_s)
            self._server = server
            accepting = "http-acceptor"
            self._threads = [threading.Thread(target=server.work_forever, name="http-server", daemon=True)]
        accept = threading.Thread(target=self._server.serve_forever, args=(STOP_POLL_S,), name=accepting, daemon=True)
        self._threads.insert(0, accept)  # stop() joins the accepting thread

    @property
    def server_address(self) -> tuple[str, int]:
        return self._server.server_address[:2]  # type: ignore[return-value]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, drain_s: float) -> None:
        """Requests already running finish on their own threads, each writing its own answer: no need to wait."""
        self._server.shutdown()
        self._server.server_close()
        self._threads[0].join()


class AppServer:
    """``threaded``: Werkzeug's threaded server, a thread per request (Flask's default).
    ``single``: one request at a time, so a request that blocks holds up every other client.
    ``pooled``: waitress, a production server, with a pool of ``threads`` threads (see :mod:`sandbox.pooled_server`).

    Every request the server handles goes into the app's requests log, ``self.requests``. ``read_timeout_s`` is how
    long a request's head, then its body, may take to arrive (tests make it short); the pooled server, which reads
    requests without tying up a thread, closes a connection silent that long.
    """

    def __init__(
        self,
        app: Flask,
        host: str = "127.0.0.1",
        port: int = 0,
        server_mode: str = "threaded",
        read_timeout_s: float = READ_TIMEOUT_S,
        threads: int = POOLED_THREADS,
    ) -> None:
        self.server_mode = server_mode
        self.requests: RequestsLog = app.extensions.setdefault("sandbox.requests", RequestsLog())
        self._server: PooledServer | _WerkzeugServer
        if server_mode == "pooled":
            self._server = PooledServer(app, host, port, self.requests, threads, read_timeout_s)
        else:
            self._server = _WerkzeugServer(app, host, port, self.requests, server_mode, read_timeout_s)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where this machine reaches the server: through loopback when it listens on every address, since 0.0.0.0
        is no name the sandbox answers to."""
        host, port = self._server.server_address
        host = WILDCARD_LOOPBACK.get(host, host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def start(self) -> AppServer:
        self._server.start()
        return self

    def stop(self, drain_s: float = READ_TIMEOUT_S) -> None:
        """Stop accepting requests and close connections still queued. Requests already running finish: on
        Werkzeug's servers on their own; the pooled server waits for them, at most ``drain_s``, since its loop
        writes their answers."""
        self._server.stop(drain_s)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
