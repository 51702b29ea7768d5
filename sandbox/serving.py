"""Run the app in a real Werkzeug server on its own thread, so timings are what a browser would see."""

from __future__ import annotations

import itertools
import socket
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer


class NamedThreadsWSGIServer(ThreadedWSGIServer):
    """Werkzeug's threaded server, naming each request's thread ``request-N`` so traces read clearly."""

    _numbers = itertools.count(1)

    def process_request_thread(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        threading.current_thread().name = f"request-{next(self._numbers)}"
        super().process_request_thread(request, client_address)


class AppServer:
    """``threaded``: Werkzeug's threaded server, a thread per request (Flask's default).
    ``single``: one request at a time, so a request that blocks holds up every other client.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, server_mode: str = "threaded") -> None:
        self.server_mode = server_mode
        server_class = NamedThreadsWSGIServer if server_mode == "threaded" else BaseWSGIServer
        self._server: BaseWSGIServer = server_class(host, port, app)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def start(self) -> AppServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests; requests already running on their own threads finish on their own."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
