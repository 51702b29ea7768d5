"""Run the app in a real Werkzeug server on its own thread, so timings are what a browser would see.

Both server kinds stamp each request with the moment the server had it (``environ["sandbox.arrived_ns"]``, from
``time.perf_counter_ns()``) and its id in the app's requests log (``environ["sandbox.request_id"]``): a trace's own
clock starts only when Flask gets the request, after any time the request spent waiting for the server.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
import time
from typing import Any, BinaryIO

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from sandbox.requests_log import RequestsLog

ARRIVED_NS = "sandbox.arrived_ns"
REQUEST_ID = "sandbox.request_id"
SERVER_KIND = "sandbox.server"  # "threaded" or "single": which server really had the request
ACCEPTOR = "sandbox.arrived_thread"  # (name, native id) of the thread that accepted it

Arrival = tuple[int, int]  # (request id in the log, arrived_ns)


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
        super().setup()
        self.wfile = _WriteClock(self.wfile)

    def handle_one_request(self) -> None:
        # The first request of a connection arrived at accept(); a later one arrives in parse_request().
        self._arrival = self.server.claim_arrival(self.connection)
        self._status: int | None = None
        status = None
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
            self._arrival = (self.server.requests.arrived(arrived_ns), arrived_ns)
        return super().parse_request()

    def make_environ(self) -> dict[str, Any]:
        """Werkzeug calls this just before it calls the app: the moment the request starts."""
        environ = super().make_environ()
        assert self._arrival is not None
        request_id, arrived_ns = self._arrival
        environ[REQUEST_ID], environ[ARRIVED_NS] = request_id, arrived_ns
        environ[SERVER_KIND], environ[ACCEPTOR] = self.server.kind, self.server.acceptor
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

    def __init__(self, host: str, port: int, app: Flask, requests: RequestsLog) -> None:
        self.requests = requests
        self.acceptor = ("", 0)
        self._arrivals: dict[socket.socket, Arrival] = {}
        super().__init__(host, port, app, handler=self.handler_class)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        arrived_ns = time.perf_counter_ns()
        self.acceptor = (threading.current_thread().name, threading.get_native_id())
        self._arrivals[connection] = (self.requests.arrived(arrived_ns), arrived_ns)
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
    """

    def __init__(self, host: str, port: int, app: Flask, requests: RequestsLog) -> None:
        self._queue: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue()
        super().__init__(host, port, app, requests)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        self._queue.put((request, client_address))

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
        """Also close the connections still waiting, and let the worker stop after its current request."""
        super().server_close()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        self._queue.put(None)


class AppServer:
    """``threaded``: Werkzeug's threaded server, a thread per request (Flask's default).
    ``single``: one request at a time, so a request that blocks holds up every other client.

    Every request the server handles goes into the app's requests log, ``self.requests``.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, server_mode: str = "threaded") -> None:
        self.server_mode = server_mode
        self.requests: RequestsLog = app.extensions.setdefault("sandbox.requests", RequestsLog())
        if server_mode == "threaded":
            self._server: _StampedServer = NamedThreadsWSGIServer(host, port, app, self.requests)
            self._threads = [threading.Thread(target=self._server.serve_forever, name="http-server", daemon=True)]
        else:
            server = QueuedWSGIServer(host, port, app, self.requests)
            self._server = server
            self._threads = [
                threading.Thread(target=server.serve_forever, name="http-acceptor", daemon=True),
                threading.Thread(target=server.work_forever, name="http-server", daemon=True),
            ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def start(self) -> AppServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests and close connections still queued; requests already running finish on their
        own (on the single server, its worker thread then ends)."""
        self._server.shutdown()
        self._server.server_close()
        self._threads[0].join()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
