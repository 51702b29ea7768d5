"""Start the sink and the app's servers together and stop them in the order that loses no email.

The app runs in two or three servers at once, each on its own port: the one the settings name, where visitors go, and
beside it each kind the lessons compare (threaded and single) that it is not, so a lesson can show both without a
restart (its page sends to the other server's port; see :mod:`sandbox.security` for why the browser allows it).

Stopping order matters: first stop taking requests, then give workers still talking to the sink up to one SMTP
timeout to finish, then report every send that did not deliver, and only then stop the sink.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from flask import Flask

from sandbox import create_app
from sandbox.config import LESSON_SERVERS, Settings
from sandbox.smtp.sink import Sink
from sandbox.strategies.delivery import DeliveryLog, Duplicate, Failure, StopReport
from sandbox.strategies.modes import DURABLE_MODES
from sandbox.strategies.queue import STORE_ERRORS
from sandbox.trace.tracer import Tracer
from sandbox.web.requests_log import RequestsLog
from sandbox.web.security import SERVER_PORTS_KEY, warn_if_exposed
from sandbox.web.serving import AppServer

SHUTDOWN_REASON = "the sandbox stopped while this email was still being sent: the app cannot tell whether it arrived"


class Sandbox:
    """The embedded sink (unless ``mail_server`` is set) and the app in a real server on loopback ports."""

    def __init__(self, settings: Settings, *, log_requests: bool = False) -> None:
        self.settings = settings
        self.sink = None if settings.mail_server else Sink("127.0.0.1", settings.smtp_port, settings.faults())
        if self.sink is not None:
            self.sink.handler.desk_sessions = settings.desk_connections
        self.app: Flask | None = None
        self.server: AppServer | None = None
        self.other_servers: list[AppServer] = []  # the lessons' kinds of server the visitors' one is not
        self.undelivered: list[Failure] = []
        self.duplicates: list[Duplicate] = []
        self.requeued: list[str] = []
        self.still_queued: int | None = 0  # None: the queue's store could not be reached to count them
        self.queue_problem: str | None = None
        # With an embedded sink: copies of each reported email in its mailbox, settling what the app cannot know.
        self.in_mailbox: dict[str, int] | None = None
        quiet = logging.INFO if log_requests else logging.WARNING
        logging.getLogger("werkzeug").setLevel(quiet)
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        # Huey's own log: its retries are in the traces already, and a store out of reach is reported by the
        # sandbox (a warning at start, 503 answers, /api/failures), not by a traceback every time a worker polls.
        logging.getLogger("huey").setLevel(logging.CRITICAL)

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
                self._start_queue()
            else:
                self._follow_external_consumer()
            kind, host, threads = self.settings.server_kind, self.settings.host, self.settings.http_threads
            self.server = AppServer(self.app, host, self.settings.port, kind, threads=threads).start()
            for other in LESSON_SERVERS:
                if other != kind:
                    self.other_servers.append(AppServer(self.app, host, 0, other).start())
            self.app.config[SERVER_PORTS_KEY] = {s.server_mode: s.port for s in (self.server, *self.other_servers)}
        except BaseException:
            self._stop_servers()
            if self.sink is not None:
                self.sink.stop()
            raise
        return self

    def _start_queue(self) -> None:
        """Take back what a killed run left in the queue's outbox, then start the consumer. A store that cannot be
        reached (Redis down) does not stop the sandbox: the other modes work, and queue sends answer 503."""
        assert self.app is not None
        mail_queue = self.app.extensions["sandbox.queue"]
        try:
            self.requeued = mail_queue.recover(self.delivery)
        except STORE_ERRORS as err:
            self.queue_problem = (
                f"the queue's store could not be reached ({err}): queue sends answer 503 until it can be, and any "
                "email already in it waits there"
            )
            warn(self.queue_problem)
        mail_queue.start_consumer(self.settings.queue_workers)

    def _follow_external_consumer(self) -> None:
        """An external consumer reports each email's fate in the trace store: settle them here as they come."""
        assert self.app is not None
        store = self.tracer.store
        if store is not None:
            self.tracer.shared = True  # its workers' events reach this process's traces through the store
            self.app.extensions["sandbox.queue"].follow_outcomes(store, self.delivery)

    def stop(self) -> list[Failure]:
        """Stop cleanly; returns the sends that did not certainly deliver (also kept in ``undelivered``).

        The pool's backlog and the workers get one SMTP timeout to finish; then the backlog no worker took is
        cancelled (failed: never sent) and the sends under way get one more timeout to end on their own (each
        socket operation has that timeout). Only what is still under way after that is reported as unknown.
        """
        self._stop_servers()
        if self.app is not None:
            log = self.delivery
            timeout = self.settings.smtp_timeout_s
            settled = log.wait_settled(timeout, ignore=DURABLE_MODES)
            requests = self.requests_log
            if requests is not None:
                # A blocking send settles just before its route answers: let that answer be written before exiting.
                requests.wait_answered(timeout)
            self.app.extensions["sandbox.pool"].stop(log)  # the backlog no worker took: never sent
            if not settled:
                log.wait_settled(timeout, ignore=DURABLE_MODES)
            log.abandon_pending(SHUTDOWN_REASON, keep=DURABLE_MODES)
            mail_queue = self.app.extensions["sandbox.queue"]
            mail_queue.stop_consumer(timeout)
            mail_queue.stop_following()
            try:
                self.still_queued = mail_queue.unsettled() if mail_queue.opened else 0
            except STORE_ERRORS as err:
                self.still_queued = None
                self.queue_problem = f"the queue's store could not be reached ({err}) to count the emails it holds"
            self.undelivered = log.failures()
            self.duplicates = log.duplicates()
        if self.app is not None:
            self.tracer.flush()  # the last events, before the process may exit
        if self.sink is not None:
            mailbox = self.sink.mailbox
            reported = {f.trace_id for f in self.undelivered} | {d.trace_id for d in self.duplicates}
            self.in_mailbox = {trace_id: mailbox.copies(trace_id) for trace_id in reported}
            self.sink.stop()
            self.sink = None
        return self.undelivered

    def _stop_servers(self) -> None:
        for server in (self.server, *self.other_servers):
            if server is not None:
                server.stop(self.settings.smtp_timeout_s)
        self.server, self.other_servers = None, []

    @property
    def report(self) -> StopReport:
        """What the stopped run says about its emails, for the terminal."""
        return StopReport(self.undelivered, self.duplicates, self.still_queued, self.queue_problem, self.in_mailbox)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    """Make SIGTERM end the program like Ctrl-C, so the same clean shutdown runs for both."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
