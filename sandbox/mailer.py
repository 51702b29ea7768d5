"""Build the welcome email from templates and send it by one of the strategies the sandbox compares.

``sync`` calls ``mail.send()`` inside the request, so the response waits for the whole SMTP conversation.
``thread`` is the classic pattern: the request hands the real app object and the message to a new thread, which
pushes an application context (Flask-Mail reads its settings through ``current_app``) and sends from there.
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.charset import QP, Charset
from email.mime.text import MIMEText
from typing import Any

from flask import Flask, current_app, render_template
from flask_mail import Message, email_dispatched

from sandbox.delivery import FAILED, UNKNOWN, DeliveryLog
from sandbox.sink import TRACE_HEADER
from sandbox.smtp_client import Conversation, mail, watched_conversation
from sandbox.tracer import Tracer, relay


class SendError(Exception):
    """An SMTP send that did not end in a 250: failed for sure, or with an unknown fate.

    ``code`` is the server's reply code when it answered with one. ``unknown`` means the whole message went out and
    then the connection died or timed out before any answer: the server may have stored it. A 4xx answer, a timeout
    or a broken connection before the data is worth another try; a 5xx answer is final, and an unknown fate is not
    retried (a retry could deliver the email twice). ``answered`` marks the rare unknown fate whose last conversation
    did get an answer: a refusal after an earlier try that may have delivered the email.
    """

    def __init__(
        self, message: str, *, timed_out: bool, code: int | None = None, unknown: bool = False, answered: bool = False
    ) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.code = code
        self.unknown = unknown
        self.answered = answered

    @property
    def outcome(self) -> str:
        """``unknown`` (it may have arrived) or ``failed`` (it did not)."""
        return UNKNOWN if self.unknown else FAILED

    @property
    def http_status(self) -> int:
        """How a blocking route answers this failure: 504 for a server too slow to answer, 502 otherwise."""
        return 504 if self.timed_out else 502

    @property
    def retryable(self) -> bool:
        return not self.unknown and (self.code is None or 400 <= self.code < 500)


def _quoted_printable_utf8() -> Charset:
    charset = Charset("utf-8")
    charset.body_encoding = QP
    return charset


class FoldedMessage(Message):
    """Flask-Mail's message with quoted-printable bodies, so no line on the wire is longer than 76 characters.

    Flask-Mail sends an ASCII body as it is, so a name of 992 letters (or of 200 ``&``, 1,000 characters once
    HTML-escaped) would make a line SMTP servers refuse (the limit is 998). Quoted-printable folds long lines with
    soft breaks that every mail client joins again: whatever a student types can be delivered.
    """

    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        return MIMEText(text or "", _subtype=subtype, _charset=_quoted_printable_utf8())


def init_app(app: Flask) -> None:
    """Flask-Mail for this app, and its ``email_dispatched`` signal fed to the tracer."""
    mail.init_app(app)
    email_dispatched.connect(_record_dispatched, app)


@relay
def _record_dispatched(app: Flask, message: Message) -> None:
    """Flask-Mail reports a message handed over: the server answered 250 to its data."""
    trace_id = (message.extra_headers or {}).get(TRACE_HEADER)
    app.extensions["sandbox.tracer"].record(trace_id, "smtp.accepted", recipients=list(message.recipients))


def build_message(template: str, to: str, subject: str, trace_id: str, **context: Any) -> Message:
    """The email as Flask-Mail will send it: both bodies rendered from ``templates/email/<template>.*``."""
    app = current_app._get_current_object()
    msg = FoldedMessage(
        subject=app.config["SANDBOX_SUBJECT_PREFIX"] + subject,
        recipients=[to],
        sender=app.config["MAIL_DEFAULT_SENDER"],
        extra_headers={TRACE_HEADER: trace_id},
    )
    msg.body = render_template(f"email/{template}.txt", **context)
    msg.html = render_template(f"email/{template}.html", **context)
    tracer().record(trace_id, "message.built", templates=[f"email/{template}.txt", f"email/{template}.html"])
    return msg


def send_sync(msg: Message, trace_id: str) -> None:
    """Send inside the request: returns only once the server has answered (or raises SendError)."""
    with blocking_outcome(trace_id, "sync"):
        traced_send(msg, trace_id, tracer())


@contextmanager
def blocking_outcome(trace_id: str, mode: str) -> Iterator[None]:
    """Register a send the route waits for, and settle it before the answer leaves: delivered when the block
    returns, failed (or unknown) when it raises. Nothing is left pending behind an answer, whatever was raised."""
    log = delivery_log()
    log.accepted(trace_id, mode)
    try:
        yield
    except SendError as err:
        log.failed(trace_id, mode, str(err), err.outcome)
        raise
    except Exception as err:  # not an SMTP failure (no app context, no asgiref...): still not delivered
        log.failed(trace_id, mode, describe_error(err))
        raise
    log.delivered(trace_id)


def send_in_thread(msg: Message, trace_id: str) -> threading.Thread:
    """Hand the send to a new thread and return at once: the classic pattern, with the real app object."""
    app = current_app._get_current_object()
    return start_worker(send_async_email, (app, msg, trace_id), trace_id, "thread")


def send_async_email(app: Flask, msg: Message, trace_id: str) -> None:
    """The worker: push a fresh application context (Flask-Mail needs one), then send."""
    trace = app.extensions["sandbox.tracer"]
    with worker_outcome(trace, app.extensions["sandbox.delivery"], trace_id, "thread"):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            traced_send(msg, trace_id, trace)


def start_worker(target: Callable[..., None], args: tuple[Any, ...], trace_id: str, mode: str) -> threading.Thread:
    """Register the send as pending, then start its worker thread (named after the trace, so traces read clearly)."""
    log = delivery_log()
    log.accepted(trace_id, mode)
    thread = threading.Thread(target=target, args=args, name=f"mail-{trace_id[:8]}", daemon=True)
    log.worker_started(trace_id, thread)
    tracer().record(trace_id, "worker.spawned", worker=thread.name, target=target.__name__)
    thread.start()
    return thread


@contextmanager
@relay
def worker_outcome(trace: Tracer, log: DeliveryLog, trace_id: str, mode: str) -> Iterator[None]:
    """Record how a worker's send ended; unlike the textbook version, no failure is lost in stderr."""
    trace.record(trace_id, "worker.started", worker=threading.current_thread().name)
    try:
        yield
    except Exception as err:  # noqa: BLE001 - any failure must be recorded, not printed and forgotten
        error = str(err) if isinstance(err, SendError) else describe_error(err)
        outcome = err.outcome if isinstance(err, SendError) else FAILED
        answered = {"answered": True} if isinstance(err, SendError) and err.unknown and err.answered else {}
        trace.record(trace_id, "worker.failed", error=error, outcome=outcome, **answered)
        log.failed(trace_id, mode, error, outcome)
    else:
        # The trace is complete before the send counts as settled, so whoever waits for it reads the whole story.
        trace.record(trace_id, "worker.finished")
        log.delivered(trace_id)


def delivery_log() -> DeliveryLog:
    return current_app.extensions["sandbox.delivery"]


def tracer() -> Tracer:
    return current_app.extensions["sandbox.tracer"]


def traced_send(msg: Message, trace_id: str, trace: Tracer, via: str | None = None) -> None:
    """``mail.send(msg)`` with its SMTP traffic recorded in the trace and its failure turned into SendError.

    The trace is bound to the calling thread (see :meth:`Tracer.bound`), so this must run, whole, on the thread that
    sends; ``via`` names what put it there when that is not plain code (``asyncio.to_thread``).
    """
    trace.record(trace_id, "send.started", **({"via": via} if via else {}))
    try:
        with trace.bound(trace_id), watched_conversation() as conversation:
            mail.send(msg)
    except (smtplib.SMTPException, OSError) as err:
        failure = send_error(err, conversation, current_app.config["SANDBOX_SMTP_TIMEOUT"])
        trace.record(trace_id, "smtp.failed", error=str(failure), code=failure.code, outcome=failure.outcome)
        raise failure from err


def send_error(err: BaseException, conversation: Conversation, timeout_s: float) -> SendError:
    """What a failed conversation means for the email: failed for sure, or unknown once all its data went out."""
    code = reply_code(err)
    timed_out = _timed_out(err)
    if conversation.data_sent and code is None:
        if timed_out:
            lost = f"the whole message was sent, but the server did not answer within {timeout_s:g} s"
        else:
            lost = f"the whole message was sent, then the connection was lost before any answer ({describe_error(err)})"
        return SendError(f"{lost}: the sender cannot tell whether it arrived", timed_out=timed_out, unknown=True)
    if timed_out:
        return SendError(f"the SMTP server did not answer within {timeout_s:g} s", timed_out=True)
    return SendError(describe_error(err), timed_out=False, code=code)


def _timed_out(err: BaseException) -> bool:
    # smtplib reports a reply that never came as SMTPServerDisconnected raised while handling the TimeoutError.
    return isinstance(err, TimeoutError) or isinstance(err.__context__, TimeoutError)


def reply_code(err: BaseException) -> int | None:
    """The SMTP reply code behind a failure, if the server gave one."""
    if isinstance(err, smtplib.SMTPRecipientsRefused) and err.recipients:
        return next(iter(err.recipients.values()))[0]
    if isinstance(err, smtplib.SMTPResponseException):
        return err.smtp_code
    return None


def describe_error(err: BaseException) -> str:
    """A one-line account of a failed send that a student can act on."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(err.recipients.values()))
        return f"the SMTP server rejected the recipient: {code} {_text(text)}"
    if isinstance(err, smtplib.SMTPResponseException):
        return f"the SMTP server rejected the message: {err.smtp_code} {_text(err.smtp_error)}"
    if isinstance(err, ConnectionRefusedError):
        return "the SMTP server refused the connection (is it running?)"
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return f"the SMTP server hung up: {err}"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first_line}"


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
