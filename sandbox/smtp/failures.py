"""What a send's ending means: how far its SMTP conversation got, and the account of a failure.

A failed ``mail.send()`` becomes a :class:`SendError` that says whether the email surely did not arrive or may have
(the whole message went out and no answer came), and which HTTP status a blocking route answers with.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sandbox.strategies.delivery import FAILED, UNKNOWN


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


def current_conversation() -> Conversation | None:
    """The conversation the send running here is part of, if one is watched."""
    return _conversation.get()


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


def error_and_outcome(err: BaseException) -> tuple[str, str]:
    """What a failed send says and means: a SendError's own account and outcome, or any other error described
    (then the email surely did not go: nothing reached the server's answer)."""
    if isinstance(err, SendError):
        return str(err), err.outcome
    return describe_error(err), FAILED


def maybe_delivered(attempt: int) -> str:
    """Why an email a retrying worker sent again may be in the mailbox twice."""
    return f"attempt {attempt} had sent the whole message and got no answer, so it may have delivered a copy already"


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
    return f"{type(err).__name__}: {first_line}" if first_line else type(err).__name__


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
