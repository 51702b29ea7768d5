"""The SMTP client side: Flask-Mail with a timeout on every connection, and smtplib reporting to the tracer.

Flask-Mail 0.10 opens ``smtplib.SMTP(host, port)`` with no timeout, so a silent server would hang a send forever;
here each connection gets ``SANDBOX_SMTP_TIMEOUT`` without touching the process-wide socket default. The same
connection's smtplib client tells the trace bound to the sending thread what it says to the server.
"""

from __future__ import annotations

import functools
import smtplib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_mail import Connection, Mail

from sandbox.tracer import current_binding, relay


@dataclass
class Conversation:
    """How far one send got. Once the whole message has gone out, a lost connection leaves its fate unknown: the
    server may have stored it and answered 250 just as the client gave up."""

    data_sent: bool = False
    accepted: bool = False


_conversation: ContextVar[Conversation | None] = ContextVar("sandbox_smtp_conversation", default=None)


@contextmanager
def watched_conversation() -> Iterator[Conversation]:
    """Note, for the sends made inside the block on this thread, whether the data went out and was accepted."""
    conversation = Conversation()
    token = _conversation.set(conversation)
    try:
        yield conversation
    finally:
        _conversation.reset(token)


SMTP_VERBS = {b"mail": "MAIL FROM", b"rcpt": "RCPT TO", b"data": "DATA", b"quit": "QUIT", b"rset": "RSET"}


class TracedSMTPMixin:
    """smtplib's client, reporting its conversation to the trace bound to the sending thread (if any).

    A subclass rather than ``sys.addaudithook``: an audit hook is process-wide and permanent, and would slow every
    audited operation (``sys._getframe`` and frame attribute reads among them) for the life of the process.
    """

    @relay
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._trace = current_binding()
        self._server = ""
        super().__init__(*args, **kwargs)

    @relay
    def _record(self, kind: str, **details: Any) -> None:
        if self._trace is not None:
            tracer, trace_id = self._trace
            tracer.record(trace_id, kind, **details)

    @relay
    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        self._server = f"{host}:{port}"
        self._record("smtp.connecting", server=self._server)
        return super().connect(host, port, source_address)

    @relay
    def send(self, s: str | bytes) -> None:
        data = s if isinstance(s, bytes) else s.encode("ascii", "replace")
        verb = data[:4].lower()
        if data.endswith(b"\r\n.\r\n"):
            self._record("smtp.data_sent", size=len(data))
            if (conversation := _conversation.get()) is not None:
                conversation.data_sent = True
        elif verb in (b"ehlo", b"helo"):
            self._record("smtp.connected", server=self._server)
        elif verb in SMTP_VERBS:
            self._record("smtp.command", command=SMTP_VERBS[verb])
        super().send(s)

    @relay
    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        reply = super().data(msg)
        if reply[0] == 250 and (conversation := _conversation.get()) is not None:
            conversation.accepted = True
        return reply


class TracedSMTP(TracedSMTPMixin, smtplib.SMTP):
    pass


class TracedSMTPSSL(TracedSMTPMixin, smtplib.SMTP_SSL):
    pass


class TimeoutConnection(Connection):
    """Flask-Mail's connection with a per-socket timeout, so a slow or silent server cannot hang a send forever.

    Flask-Mail 0.10 opens ``smtplib.SMTP(host, port)`` with no timeout; the global socket default would change
    every socket in the process, so the timeout is given to this connection alone.
    """

    def __init__(self, mail: Any, timeout: float) -> None:
        super().__init__(mail)
        self.timeout = timeout

    def configure_host(self) -> smtplib.SMTP:
        smtp_class = TracedSMTPSSL if self.mail.use_ssl else TracedSMTP
        host = smtp_class(self.mail.server, self.mail.port, local_hostname=local_hostname(), timeout=self.timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        if self.host is None:
            return
        if exc_type is None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                # The message was accepted already: a server that hangs up on QUIT changes nothing about that.
                self.host.close()
        else:
            # After a timeout or a broken conversation, QUIT could wait another full timeout: just hang up.
            self.host.close()


@functools.cache
def local_hostname() -> str:
    """The name smtplib greets the server with; looked up once, as ``socket.getfqdn()`` may wait on DNS."""
    return socket.getfqdn()


class TimeoutMail(Mail):
    """Flask-Mail's ``Mail`` whose connections honour ``SANDBOX_SMTP_TIMEOUT``."""

    def connect(self) -> TimeoutConnection:
        app = current_app._get_current_object()
        return TimeoutConnection(app.extensions["mail"], float(app.config["SANDBOX_SMTP_TIMEOUT"]))


mail = TimeoutMail()
