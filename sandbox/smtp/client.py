"""The SMTP client side: the ``Mail`` and ``Message`` the student's code uses, watched from outside.

They are Flask-Mail's, with three changes a student never sees in their own file. Flask-Mail 0.10 opens
``smtplib.SMTP(host, port)`` with no timeout, so a silent server would hang a send forever; here each connection
gets ``SANDBOX_SMTP_TIMEOUT`` without touching the process-wide socket default. Bodies are quoted-printable, so no
line on the wire is too long. And ``mail.send(msg)`` reports to the trace the code runs for (its :class:`Binding`):
the send, each attempt of a retrying worker, what smtplib says to the server, and a failure as a
:class:`SendError` that says whether the email surely did not arrive or may have.
"""

from __future__ import annotations

import dataclasses
import functools
import smtplib
import socket
import sys
from email.charset import QP, Charset
from email.mime.text import MIMEText
from typing import Any

import flask_mail
from flask import current_app

from sandbox.smtp.failures import (
    SendError,
    current_conversation,
    error_and_outcome,
    maybe_delivered,
    send_error,
    watched_conversation,
)
from sandbox.strategies.delivery import FAILED
from sandbox.trace.gates import AFTER_250, BEFORE_SEND
from sandbox.trace.tracer import (
    DEFAULT_DESK,
    TRACE_HEADER,
    Binding,
    bound,
    current_binding,
    source_location,
    suspended_at,
)

TO_THREAD = "asyncio.to_thread"  # how an async view's send reaches a thread with no line of the student's


SMTP_VERBS = {b"mail": "MAIL FROM", b"rcpt": "RCPT TO", b"data": "DATA", b"quit": "QUIT", b"rset": "RSET"}


class TracedSMTPMixin:
    """smtplib's client, reporting its conversation to the trace bound to the sending thread (if any).

    A subclass rather than ``sys.addaudithook``: an audit hook is process-wide and permanent, and would slow every
    audited operation (``sys._getframe`` and frame attribute reads among them) for the life of the process.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._trace = current_binding()
        self._server = ""
        super().__init__(*args, **kwargs)

    def _record(self, kind: str, **details: Any) -> None:
        if self._trace is not None:
            self._trace.record(kind, **details)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        self._server = f"{host}:{port}"
        self._record("smtp.connecting", server=self._server)
        return super().connect(host, port, source_address)

    def send(self, s: str | bytes) -> None:
        data = s if isinstance(s, bytes) else s.encode("ascii", "replace")
        verb = data[:4].lower()
        if data.endswith(b"\r\n.\r\n"):
            self._record("smtp.data_sent", size=len(data))
            if (conversation := current_conversation()) is not None:
                conversation.data_sent = True
        elif verb in (b"ehlo", b"helo"):
            self._record("smtp.connected", server=self._server)
        elif verb in SMTP_VERBS:
            self._record("smtp.command", command=SMTP_VERBS[verb])
        super().send(s)

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        reply = super().data(msg)
        if reply[0] == 250 and (conversation := current_conversation()) is not None:
            conversation.accepted = True
        return reply


class TracedSMTP(TracedSMTPMixin, smtplib.SMTP):
    pass


class TracedSMTPSSL(TracedSMTPMixin, smtplib.SMTP_SSL):
    pass


class TimeoutConnection(flask_mail.Connection):
    """Flask-Mail's connection with a per-socket timeout, so a slow or silent server cannot hang a send forever.

    Flask-Mail 0.10 opens ``smtplib.SMTP(host, port)`` with no timeout; the global socket default would change
    every socket in the process, so the timeout is given to this connection alone.
    """

    def __init__(self, mail: Any, timeout: float, port: int | None = None) -> None:
        super().__init__(mail)
        self.timeout = timeout
        self.port = mail.port if port is None else port

    def configure_host(self) -> smtplib.SMTP:
        smtp_class = TracedSMTPSSL if self.mail.use_ssl else TracedSMTP
        host = smtp_class(self.mail.server, self.port, local_hostname=local_hostname(), timeout=self.timeout)
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


def desk_port(app: Any, state: Any) -> int | None:
    """The embedded sink's port for the desk the code running here sends for; None (the configured port) for the
    default desk, or when mail goes to another server."""
    binding = current_binding()
    if binding is not None and binding.port is not None:
        return binding.port
    sink = app.extensions.get("sandbox.sink")
    if binding is None or binding.desk == DEFAULT_DESK or sink is None:
        return None
    if (state.server, state.port) != (sink.host, sink.port):
        return None
    return sink.port_for(binding.desk)


@functools.cache
def local_hostname() -> str:
    """The name smtplib greets the server with; looked up once, as ``socket.getfqdn()`` may wait on DNS."""
    return socket.getfqdn()


class Mail(flask_mail.Mail):
    """Flask-Mail's ``Mail``: connections honour ``SANDBOX_SMTP_TIMEOUT``, a send made for a trace is traced, and a
    desk's send goes to that desk's port of the embedded sink."""

    def connect(self) -> TimeoutConnection:
        app = current_app._get_current_object()
        state = app.extensions["mail"]
        return TimeoutConnection(state, timeout_s(app, current_binding()), desk_port(app, state))

    def send(self, message: flask_mail.Message) -> None:
        binding = current_binding()
        if binding is None:
            super().send(message)
            return
        here = source_location()
        if not here[0] and binding.coroutine is not None:
            # ``asyncio.to_thread(mail.send, msg)``: this executor thread runs no line of the student's; the line
            # is the coroutine's ``await``, where the view waits for this send.
            binding = dataclasses.replace(binding, here=suspended_at(binding.coroutine), via=TO_THREAD)
        watching = sys.getprofile()  # the request's Thread.start hook (sandbox.strategies.watch), if any
        sys.setprofile(None)  # a send starts no thread of the student's: nothing in it needs the hook's cost
        try:
            with bound(binding):
                traced_send(super().send, message, binding)
        finally:
            sys.setprofile(watching)


def timeout_s(app: Any, binding: Binding | None) -> float:
    """Each socket operation's timeout: ``SANDBOX_SMTP_TIMEOUT``, plus the gates' bound for a send scheduled by hand
    (the sink may hold its answer at a gate that long)."""
    timeout = float(app.config["SANDBOX_SMTP_TIMEOUT"])
    return timeout + binding.schedule.bound_s if binding is not None and binding.schedule is not None else timeout


def traced_send(send: Any, message: flask_mail.Message, binding: Binding) -> None:
    """``send(message)`` recorded in ``binding``'s trace: the trace id in a header (so the sink's events join), an
    attempt of a retrying worker, the SMTP traffic, and a failure turned into SendError. A send the answer waits
    for is registered with the delivery log and settled before the answer leaves."""
    message.extra_headers = {**(message.extra_headers or {}), TRACE_HEADER: binding.trace_id}
    attempt = binding.next_attempt()
    if attempt:
        binding.record("attempt.started", attempt=attempt, attempts=binding.attempts)
    binding.park(BEFORE_SEND)
    binding.record("send.started", **({"via": binding.via} if binding.via else {}))
    binding.sends_begun.append(binding.trace_id)
    if binding.blocking:
        binding.log.accepted(binding.trace_id, binding.mode, desk=binding.desk)
    try:
        with watched_conversation() as conversation:
            send(message)
    except Exception as err:
        failure = err
        if isinstance(err, (smtplib.SMTPException, OSError)):
            failure = send_error(err, conversation, timeout_s(current_app, binding))
            binding.record("smtp.failed", error=str(failure), code=failure.code, outcome=failure.outcome)
        if attempt:
            failure = _attempt_failed(binding, attempt, failure)
        if binding.blocking:
            binding.log.failed(binding.trace_id, binding.mode, *error_and_outcome(failure))
        if failure is err:
            raise
        raise failure from err
    if binding.unanswered is not None:
        # The 250 came, but an earlier copy may have arrived too: the log lists it as possibly twice.
        binding.log.may_have_arrived(binding.trace_id, f"{binding.mode}: {maybe_delivered(binding.unanswered)}")
    if binding.blocking:
        binding.log.delivered(binding.trace_id)
    binding.park(AFTER_250)


def _attempt_failed(binding: Binding, attempt: int, err: BaseException) -> BaseException:
    """Record how an attempt ended and whether another follows; the error the worker's code will see."""
    error, outcome = error_and_outcome(err)
    retry_in_s = binding.retry_in(attempt, err) if binding.retry_in is not None else None
    details: dict[str, Any] = {"attempt": attempt, "error": error, "final": retry_in_s is None, "outcome": outcome}
    if binding.policy:
        details["policy"] = binding.policy
    if retry_in_s is not None:
        binding.record("attempt.failed", **details, retry_in_s=retry_in_s)
        if outcome != FAILED and binding.unanswered is None:
            binding.unanswered = attempt
        return err
    binding.record("attempt.failed", **details)
    if binding.unanswered is None or outcome != FAILED:
        return err
    # The last attempt was refused, but an earlier one may have delivered the email: its fate is unknown.
    return SendError(
        f"{error}; but {maybe_delivered(binding.unanswered)}: the sender cannot tell whether it arrived",
        timed_out=False,
        code=err.code if isinstance(err, SendError) else None,
        unknown=True,
        answered=True,
    )


def _quoted_printable_utf8() -> Charset:
    charset = Charset("utf-8")
    charset.body_encoding = QP
    return charset


class Message(flask_mail.Message):
    """Flask-Mail's message with quoted-printable bodies, so no line on the wire is longer than 76 characters.

    Flask-Mail sends an ASCII body as it is, so a name of 992 letters (or of 200 ``&``, 1,000 characters once
    HTML-escaped) would make a line SMTP servers refuse (the limit is 998). Quoted-printable folds long lines with
    soft breaks that every mail client joins again: whatever a student types can be delivered.
    """

    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        return MIMEText(text or "", _subtype=subtype, _charset=_quoted_printable_utf8())
