"""Start the sink and the app server together and stop them in the order that loses no email.

Stopping order matters: first stop taking requests, then give workers still talking to the sink up to one SMTP
timeout to finish, then report every send that did not deliver, and only then stop the sink.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from flask import Flask

from sandbox import create_app
from sandbox.config import Settings
from sandbox.delivery import DeliveryLog, Failure
from sandbox.requests_log import RequestsLog
from sandbox.security import warn_if_exposed
from sandbox.serving import AppServer
from sandbox.sink import Sink
from sandbox.strategies import DURABLE_MODES
from sandbox.tracer import Tracer

SHUTDOWN_REASON = "not delivered: the sandbox stopped while this email was still being sent"


class Sandbox:
    """The embedded sink (unless ``mail_server`` is set) and the app in a real server on loopback ports."""

    def __init__(self, settings: Settings, *, log_requests: bool = False) -> None:
        self.settings = settings
        self.sink = None if settings.mail_server else Sink("127.0.0.1", settings.smtp_port, settings.faults())
        self.app: Flask | None = None
        self.server: AppServer | None = None
        self.undelivered: list[Failure] = []
        self.still_queued = 0
        quiet = logging.INFO if log_requests else logging.WARNING
        logging.getLogger("werkzeug").setLevel(quiet)
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("huey").setLevel(logging.ERROR)  # its retries are in the traces already

    @property
    def url(self) -> str:
        assert self.server is not None, "start the sandbox first"
        return self.server.url

    @property
    def delivery(self) -> DeliveryLog:
        assert self.app is not None, "start the sandbox first"
        return self.app.extensions["sandbox.delivery"]

    @property
    def requests_log(self) -> RequestsLog | None:
        """The web server's log of every request it had (kept after the server stopped)."""
        return self.app.extensions.get("sandbox.requests") if self.app is not None else None

    @property
    def tracer(self) -> Tracer:
        assert self.app is not None, "start the sandbox first"
        return self.app.extensions["sandbox.tracer"]

    def start(self) -> Sandbox:
        warn_if_exposed(self.settings.host, "web sandbox")
        if self.sink is not None:
            self.sink.start()
        try:
            self.app = create_app(self.settings.flask_config(), sink=self.sink)
            if self.settings.queue_consumer == "embedded":
                self.app.extensions["sandbox.queue"].start_consumer(self.settings.queue_workers)
            self.server = AppServer(self.app, self.settings.host, self.settings.port, self.settings.server).start()
        except BaseException:
            if self.sink is not None:
                self.sink.stop()
            raise
        return self

    def stop(self) -> list[Failure]:
        """Stop cleanly; returns the sends that had not delivered by the end (also kept in ``undelivered``)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.app is not None:
            log = self.delivery
            timeout = self.settings.smtp_timeout_s
            log.wait_settled(timeout, ignore=DURABLE_MODES)
            log.abandon_pending(SHUTDOWN_REASON, keep=DURABLE_MODES)
            self.app.extensions["sandbox.pool"].shutdown()
            mail_queue = self.app.extensions["sandbox.queue"]
            mail_queue.stop_consumer(timeout)
            self.still_queued = mail_queue.pending() if mail_queue.opened else 0
            self.undelivered = log.failures()
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        return self.undelivered

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_on_sigterm() -> None:
    """Make SIGTERM end the program like Ctrl-C, so the same clean shutdown runs for both."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
