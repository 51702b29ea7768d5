"""A local SMTP server that is slow on purpose, and the mailbox where it keeps what it accepted.

Real mail servers make clients wait (greeting pauses, tarpits against spam), which is why a send inside a request
blocks. The student's handler (``sandbox/app/mail_server.py``) reproduces that wait with ``await asyncio.sleep`` in
``handle_DATA``: the sleep suspends only the one SMTP session, so many sessions overlap on aiosmtpd's event loop, as
they would on a real server. :class:`SlowHandler` wraps it with the faults, from outside.

The sink can also play a dead server: ``update_settings({"listening": False})`` closes its listening socket, so every
new connection is refused by the operating system (``ConnectionRefusedError``), while sessions already open finish;
``{"listening": True}`` listens again on the same port.

Two more settings teach at-least-once delivery: ``lose_reply_probability`` makes the sink store an email and then
hang up without its 250 (the sender cannot tell that it arrived, so a retry delivers it again), and
``dedupe_message_id`` makes it an idempotent receiver, which answers 250 to a Message-ID it already holds and stores
nothing new. Their events: ``sink.reply_lost`` (``message_id``, ``stored``, and ``duplicate_of`` for a copy it
recognised), and ``sink.accepted`` with ``stored`` and, for a recognised copy, ``duplicate_of``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import EmailPolicy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from sandbox.app.mail_server import MailboxHandler
from sandbox.errors import ConfigError
from sandbox.smtp.faults import Faults, Receiving, changed_settings, describe_sink_settings, reject_reply
from sandbox.trace.clock import utc_timestamp
from sandbox.trace.tracer import DEFAULT_DESK, SINK_THREAD_NAME, TRACE_HEADER, TRACE_ID, Location, line_of

MAILBOX_SIZE = 500  # the default desk's mailbox
DESK_MAILBOX_SIZE = 100  # each visitor's desk
DATA_SIZE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class StoredMessage:
    """One email the sink accepted (answered 250 to)."""

    id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    received_at: str
    size: int
    raw: bytes = field(repr=False)
    trace_id: str | None
    accepted_ns: int = field(repr=False)
    message_id_header: str = field(default="", repr=False)  # its Message-ID, as an idempotent receiver reads it

    def summary(self) -> dict[str, Any]:
        """The JSON view listed by ``GET /api/messages``."""
        return {
            "id": self.id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": self.subject,
            "received_at": self.received_at,
            "size": self.size,
            "trace_id": self.trace_id,
        }

    def source(self) -> str:
        """The whole message as the sink received it (headers, MIME boundaries, encoded parts), readable as text."""
        return _readable(self.raw.decode("utf-8", "surrogateescape"))

    def parts(self) -> dict[str, Any]:
        """Headers, the text part and the HTML part, as the mailbox view shows them.

        Total: the sink accepts whatever a client sends, so a malformed header or body shows lossily (its raw text,
        replacement characters) instead of failing the page that displays it.
        """
        email = message_from_bytes(self.raw, policy=_LENIENT)
        return {
            **self.summary(),
            "headers": [[_readable(name), _readable(str(value))] for name, value in email.items()],
            "text": _body_text(email, "plain"),
            "html": _body_text(email, "html"),
        }


def _readable(text: str) -> str:
    """``text`` with undecoded bytes read as UTF-8 or replaced: the parsers keep 8-bit bytes as lone surrogates,
    which no page or JSON reply could encode."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (a decoder produced it)
        data = text.encode("utf-8", "replace")
    return data.decode("utf-8", "replace")


class _LenientPolicy(EmailPolicy):
    """``policy.default``, except that a header its parsers cannot take comes back as its raw text instead of
    raising, so parsing a message, walking its parts and listing its headers never fail on what a client sent."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        try:
            return super().header_fetch_parse(name, value)
        except Exception:  # the structured parsers fail in many ways (IndexError on "To: <", surrogates from utf-7)
            return _readable("".join(value.splitlines()))


_LENIENT = _LenientPolicy()


def _header_text(name: str, raw: str) -> str:
    """A header value as a person reads it (encoded words decoded), or its raw text where it cannot be parsed."""
    return _readable(str(_LENIENT.header_fetch_parse(name, raw)))


def _body_text(email: EmailMessage, subtype: str) -> str:
    """The ``text/<subtype>`` body as a str ("" if there is none), decoded lossily if its charset or encoding is bad."""
    try:
        part = email.get_body((subtype,))
    except Exception:  # a structure get_body cannot walk: no part to show
        return ""
    if part is None:
        return ""
    try:
        return _readable(part.get_content())
    except Exception:  # a charset Python has no codec for, most often
        payload = part.get_payload(decode=True) or b""
        try:
            return _readable(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        except (LookupError, ValueError):  # no such codec, or one that cannot replace (idna), or a NUL in the name
            return payload.decode("utf-8", "replace")


class Mailbox:
    """The newest messages the sink accepted, safe to read from any thread while the sink writes."""

    def __init__(self, capacity: int = MAILBOX_SIZE) -> None:
        self.capacity = capacity
        self._messages: deque[StoredMessage] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    def add(self, **fields: Any) -> StoredMessage:
        with self._changed:
            message = StoredMessage(id=next(self._ids), **fields)
            self._messages.append(message)
            self._changed.notify_all()
        return message

    def messages(self) -> list[StoredMessage]:
        """Oldest first."""
        with self._changed:
            return list(self._messages)

    def get(self, message_id: int) -> StoredMessage | None:
        with self._changed:
            return next((m for m in self._messages if m.id == message_id), None)

    def by_trace(self, trace_id: str) -> StoredMessage | None:
        with self._changed:
            return next((m for m in self._messages if m.trace_id == trace_id), None)

    def by_message_id(self, message_id_header: str) -> StoredMessage | None:
        """The oldest stored message with this Message-ID (None for an empty one: nothing to recognise it by)."""
        if not message_id_header:
            return None
        with self._changed:
            return next((m for m in self._messages if m.message_id_header == message_id_header), None)

    def copies(self, trace_id: str) -> int:
        """How many stored messages carry this trace id (two: the same email delivered twice)."""
        with self._changed:
            return sum(m.trace_id == trace_id for m in self._messages)

    def wait_for_count(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` messages are stored; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._messages) >= count, timeout)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()


@dataclass(eq=False)
class SinkDesk:
    """One desk's side of the sink: its settings, its own random choices, its mailbox and the port it listens on.

    Every desk gets a listening socket of its own on the sink's one event loop, so the sink knows whose a
    connection is from its first byte: the greeting delay, a rejection at MAIL or RCPT and a dead server
    (its socket closed: connections refused by the operating system) all follow that desk's settings alone.
    """

    name: str
    mailbox: Mailbox
    faults: Faults = field(default_factory=Faults)
    receiving: Receiving = field(default_factory=Receiving)
    random: random.Random = field(init=False, repr=False)  # seeded from ``faults.seed``
    listening: bool = False
    port: int = 0
    server: asyncio.AbstractServer | None = field(default=None, repr=False)
    sessions: int = 0  # SMTP connections open on its port now

    def __post_init__(self) -> None:
        self.random = random.Random(self.faults.seed)

    def change(self, faults: Faults, receiving: Receiving) -> None:
        """Swap in new settings whole; a new seed restarts the random choices so a run can be repeated."""
        if faults.seed != self.faults.seed:
            self.random = random.Random(faults.seed)
        self.faults = faults
        self.receiving = receiving


EventSink = Callable[..., None]
log = logging.getLogger(__name__)
# compat32 keeps headers as plain strings: four times cheaper than policy.default, which matters per message.
_HEADERS = BytesHeaderParser(policy=policy.compat32)
MAX_RECIPIENTS = 100
MAX_SESSIONS = 1000
DESK_SESSIONS = 16


def _first_header(headers: Message, name: str) -> str:
    """The first ``name`` header as it came, or "": compat32's ``get`` makes one with 8-bit bytes a Header object,
    which is neither a str nor hashable."""
    name = name.lower()
    return next((value for key, value in headers.raw_items() if key.lower() == name), "")


def _trace_id(headers: Message) -> str | None:
    """The app's trace id from TRACE_HEADER; None for mail the app did not send, or an id mangled on the way."""
    value = _first_header(headers, TRACE_HEADER).strip()
    return value if TRACE_ID.fullmatch(value) else None


@dataclass
class _Arrival:
    """One message in ``handle_DATA``: what the fault wrapper read before the student's handler runs, and what the
    store made of it. Kept in a context variable: aiosmtpd runs each session as its own task."""

    server: SMTP
    desk: SinkDesk
    trace_id: str | None
    subject: str
    message_id_header: str
    received_at: str
    stored: dict[str, Any] = field(default_factory=dict)
    message: StoredMessage | None = None


_arrival: ContextVar[_Arrival | None] = ContextVar("sandbox_sink_arrival", default=None)


class Refused(Exception):
    """A fault fired after the wait: the message is not stored, and the client hears ``reply``."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class _Intake:
    """The mailbox as the student's handler sees it: ``store`` applies the faults due after the wait, then keeps
    the message (once, when the receiver recognises copies by their Message-ID)."""

    def __init__(self, handler: SlowHandler) -> None:
        self._handler = handler

    def store(self, envelope: Envelope) -> None:
        self._handler.store(envelope)


# The student's lines the wrapper's own events point at: the handler is called, its wait, its answer.
CALLED_AT = line_of(MailboxHandler.handle_DATA)
WAIT_AT = line_of(MailboxHandler.handle_DATA, "asyncio.sleep")
ANSWER_AT = line_of(MailboxHandler.handle_DATA, "return")


class SlowHandler(MailboxHandler):
    """The student's :class:`MailboxHandler` with the sandbox's :class:`Faults` (delay jitter, rejections, dropped
    connections) and :class:`Receiving` (lost answers, recognised copies) wrapped around it.

    ``on_event(trace_id, kind, **details)``, when set, hears what the sink does, so a tracer can join the sink's
    side to the request that sent the email (the trace id comes from the message's ``X-Sandbox-Trace`` header).
    The sink never relays: an accepted message goes into the mailbox and nowhere else.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        faults: Faults | None = None,
        on_message: Callable[[StoredMessage], None] | None = None,
        receiving: Receiving | None = None,
    ) -> None:
        self.default = SinkDesk(DEFAULT_DESK, mailbox, faults or Faults(), receiving or Receiving())
        self.on_message = on_message
        self.on_event: EventSink | None = None
        # before_answer(trace_id, line): something to await before the 250, or None (sandbox.gates).
        self.before_answer: Callable[[str, Location], Awaitable[None] | None] | None = None
        self.sessions = 0
        self.max_sessions = MAX_SESSIONS
        self.desk_sessions = DESK_SESSIONS  # per visitor's desk (the default desk has only the overall cap)
        super().__init__(_Intake(self), self.default.faults.delay_s)

    @property
    def faults(self) -> Faults:
        """The default desk's faults."""
        return self.default.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.default.change(faults, self.default.receiving)

    @property
    def receiving(self) -> Receiving:
        return self.default.receiving

    @receiving.setter
    def receiving(self, receiving: Receiving) -> None:
        self.default.change(self.default.faults, receiving)

    @property
    def delay_s(self) -> float:
        """The default desk's configured wait (without jitter)."""
        return self.default.faults.delay_s

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        self.faults = dataclasses.replace(self.default.faults, delay_s=seconds)

    @property
    def delay(self) -> float:
        """This message's wait, as the student's handler reads it: its desk's delay plus this time's jitter."""
        arrival = _arrival.get()
        desk = arrival.desk if arrival is not None else self.default
        faults = desk.faults
        delay_s = faults.delay_s + (desk.random.uniform(0, faults.jitter_s) if faults.jitter_s else 0.0)
        if arrival is not None:
            self._emit(arrival.trace_id, "sink.delay_started", delay_s=round(delay_s, 3))
        return delay_s

    @delay.setter
    def delay(self, seconds: float) -> None:
        self.delay_s = seconds

    def desk_of(self, server: SMTP) -> SinkDesk:
        """The desk whose port this session came in on."""
        return getattr(server, "desk", None) or self.default

    def _emit(self, trace_id: str | None, kind: str, at: Location | None = None, **details: Any) -> None:
        """Tell ``on_event``; a failing listener is logged, and changes nothing the client hears."""
        if self.on_event is not None and trace_id is not None:
            try:
                self.on_event(trace_id, kind, at=at, **details)
            except Exception:
                log.exception("the sink's event listener failed on %s", kind)

    def _announce(self, message: StoredMessage) -> None:
        """Tell ``on_message``; a failure is only logged: the message is in the mailbox, so the client must hear 250."""
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:
                log.exception("the sink's on_message callback failed on message #%d", message.id)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception in any handler: our bug is a temporary failure the client may retry, not
        aiosmtpd's default ``500 Error: (TypeError) ...``, which blames the client and echoes what it sent."""
        log.error("the sink failed while handling an SMTP command", exc_info=error)
        return "451 4.3.0 Local error in processing, try again later"

    def _rejects(self, stage: str, desk: SinkDesk) -> str | None:
        """The rejection reply if the desk's faults reject at ``stage`` this time (one random draw per message)."""
        faults = desk.faults
        if faults.reject_probability <= 0 or faults.reject_stage != stage:
            return None
        return reject_reply(faults.reject_code) if desk.random.random() < faults.reject_probability else None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejection = self._rejects("MAIL", self.desk_of(server))
        if rejection:
            return rejection
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS})"
        rejection = self._rejects("RCPT", self.desk_of(server))
        if rejection:
            return rejection
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Read the headers, run the student's handler, then answer as the faults say (or lose the answer)."""
        raw = envelope.original_content or b""
        headers = _HEADERS.parsebytes(raw)  # the headers only: the body is never needed here
        arrival = _Arrival(
            server=server,
            desk=self.desk_of(server),
            trace_id=_trace_id(headers),
            subject=_header_text("Subject", _first_header(headers, "Subject")),
            message_id_header=_readable(_first_header(headers, "Message-ID").strip()),
            received_at=utc_timestamp(),
        )
        _arrival.set(arrival)
        self._emit(
            arrival.trace_id,
            "sink.data_received",
            at=CALLED_AT,
            size=len(raw),
            peer=f"{session.peer[0]}:{session.peer[1]}",
            message_id_header=arrival.message_id_header,
        )
        gate = self.before_answer(arrival.trace_id, CALLED_AT) if self.before_answer and arrival.trace_id else None
        try:
            if gate is not None:  # a send scheduled by hand: the sink waits to be released before it handles it
                await gate
            reply = await super().handle_DATA(server, session, envelope)
        except asyncio.CancelledError:
            # aiosmtpd cancels the session when the client hangs up: the wait ends here, nothing is stored.
            self._emit(arrival.trace_id, "sink.client_left", at=WAIT_AT)
            raise
        except Refused as refused:
            return refused.reply
        desk = arrival.desk
        receiving = desk.receiving
        lost = receiving.lose_reply_probability and desk.random.random() < receiving.lose_reply_probability
        if lost:
            # The email is in the mailbox (or was already); the client, who sent all of it, hears nothing.
            self._emit(arrival.trace_id, "sink.reply_lost", at=ANSWER_AT, **arrival.stored)
        else:
            self._emit(arrival.trace_id, "sink.accepted", at=ANSWER_AT, **arrival.stored, reply=reply)
        if arrival.message is not None:
            self._announce(arrival.message)
        if lost:
            server.transport.close()
            return "421 4.4.2 Reply lost by the sandbox's fault settings"
        return reply

    def store(self, envelope: Envelope) -> None:
        """The student's ``self.mailbox.store(envelope)``: first the faults due after the wait (the client left, a
        dropped connection, a rejection), each answering with :class:`Refused`; then the message is kept."""
        arrival = _arrival.get()
        assert arrival is not None, "store runs inside handle_DATA"
        server, trace_id, desk = arrival.server, arrival.trace_id, arrival.desk
        if server.transport is None or server.transport.is_closing():
            # The client gave up (its timeout) while we waited: it was never told 250, so nothing was accepted.
            self._emit(trace_id, "sink.client_left")
            raise Refused("451 Client left before the message was accepted")
        if desk.faults.disconnect_probability and desk.random.random() < desk.faults.disconnect_probability:
            self._emit(trace_id, "sink.disconnected")
            server.transport.close()
            raise Refused("421 4.4.2 Connection dropped by the sandbox's fault settings")
        rejection = self._rejects("DATA", desk)
        if rejection:
            self._emit(trace_id, "sink.rejected", reply=rejection, stage="DATA")
            raise Refused(rejection)
        # No await from the lookup to the store: this loop runs one session at a time here, so two copies arriving
        # together cannot both be taken for the first.
        mailbox = desk.mailbox
        original = mailbox.by_message_id(arrival.message_id_header) if desk.receiving.dedupe_message_id else None
        if original is not None:
            arrival.stored = {"message_id": original.id, "stored": False, "duplicate_of": original.id}
            return
        raw = envelope.original_content or b""
        arrival.message = mailbox.add(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=arrival.subject,
            received_at=arrival.received_at,
            size=len(raw),
            raw=raw,
            trace_id=trace_id,
            accepted_ns=time.perf_counter_ns(),
            message_id_header=arrival.message_id_header,
        )
        arrival.stored = {"message_id": arrival.message.id, "stored": True}


class SlowSMTP(SMTP):
    """aiosmtpd's SMTP session with a greeting delay and a cap on simultaneous sessions; ``desk`` is the desk whose
    port it came in on (None: the sink's main port, the default desk)."""

    _greeted = False
    desk: SinkDesk | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.event_handler.sessions += 1
        if self.desk is not None:
            self.desk.sessions += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.sessions -= 1
        if self.desk is not None:
            self.desk.sessions -= 1
        super().connection_lost(error)

    async def push(self, status: str | bytes) -> None:
        if not self._greeted:
            self._greeted = True
            handler = self.event_handler
            crowded = self.desk is not None and self.desk.sessions > handler.desk_sessions
            if handler.sessions > handler.max_sessions or crowded:
                whose = "from this desk (the limit keeps the sink fair for a class)" if crowded else ""
                await super().push(f"421 4.7.0 Too many connections {whose}, try again later".replace("  ", " "))
                self.transport.close()
                return
            await asyncio.sleep(self.event_handler.desk_of(self).faults.greet_delay_s)
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, ending the transaction even when the handler raised, as RFC 5321 4.1.1.4 says DATA does:
        a client that sends MAIL after our 451 starts afresh instead of hearing "503 nested MAIL command"."""
        try:
            await super().smtp_DATA(arg)
        except Exception:
            self._set_post_data_state()
            raise


class _LoopbackController(Controller):
    """aiosmtpd's Controller, able to start on port 0 (it reads the port the OS picked before its self-test),
    with its event-loop thread named, so traces and profilers show where the sink's work happens."""

    def factory(self) -> SMTP:
        return SlowSMTP(self.handler, **self.SMTP_kwargs)

    def session_for(self, desk: SinkDesk) -> SMTP:
        """A session that came in on ``desk``'s own port."""
        session = SlowSMTP(self.handler, **self.SMTP_kwargs)
        session.desk = desk
        return session

    def _run(self, ready_event: threading.Event) -> None:
        threading.current_thread().name = SINK_THREAD_NAME
        super()._run(ready_event)

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Sink:
    """The slow SMTP sink on its own thread and event loop; start it, send to ``host:port``, read ``mailbox``.

    ``host:port`` is the default desk's address. A visitor's desk gets a port of its own (:meth:`port_for`), its own
    settings and its own mailbox, all served by the same loop: one sink for a whole class.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        on_message: Callable[[StoredMessage], None] | None = None,
        receiving: Receiving | None = None,
    ) -> None:
        self.mailbox = Mailbox()
        self.handler = SlowHandler(self.mailbox, faults, on_message, receiving)
        self._controller = _LoopbackController(self.handler, hostname=host, port=port, data_size_limit=DATA_SIZE_LIMIT)
        # What a new desk starts with: the settings the sink was started with (the instructor's --delay and faults).
        self._initial = (self.handler.faults, self.handler.receiving)
        self._desks: dict[str, SinkDesk] = {DEFAULT_DESK: self.handler.default}
        # One change of listening state or of the desks at a time: two PUTs racing must not both bind or both close.
        self._switch = threading.Lock()

    @property
    def host(self) -> str:
        return self._controller.hostname

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        """False while the default desk plays a dead server: connections are refused, open sessions carry on."""
        return self.handler.default.listening

    def start(self) -> Sink:
        self._controller.start()
        self.handler.default.listening = True
        self.handler.default.port = self.port
        return self

    def stop(self) -> None:
        with self._switch:
            for name, desk in list(self._desks.items()):
                if name != DEFAULT_DESK and desk.listening:
                    self._close(desk)
            self._controller.stop()
            self.handler.default.listening = False

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def desk(self, name: str = DEFAULT_DESK) -> SinkDesk:
        """The sink's side of desk ``name``, opened (listening on a port of its own) the first time it is asked for,
        with the settings the sink started with."""
        desk = self._desks.get(name)
        if desk is not None:
            return desk
        with self._switch:
            desk = self._desks.get(name)
            if desk is None:
                desk = SinkDesk(name, Mailbox(DESK_MAILBOX_SIZE), *self._initial)
                self._open(desk)
                self._desks[name] = desk
            return desk

    def port_for(self, name: str) -> int:
        """The port where the app sends desk ``name``'s mail (a dead server's port still refuses connections)."""
        return self.desk(name).port

    def mailbox_of(self, name: str) -> Mailbox:
        return self.desk(name).mailbox

    def desk_names(self) -> list[str]:
        """The desks the sink serves now, the default one first."""
        return list(self._desks)

    def close_desk(self, name: str) -> None:
        """Stop listening for desk ``name`` and forget its settings and mailbox; sessions already open finish. The
        default desk cannot be closed: it is reset instead."""
        if name == DEFAULT_DESK:
            self.reset_desk(name)
            return
        with self._switch:
            desk = self._desks.pop(name, None)
            if desk is not None and desk.listening:
                self._close(desk)

    def reset_desk(self, name: str) -> dict[str, Any]:
        """Desk ``name`` back to the settings the sink started with, listening, its mailbox emptied."""
        desk = self.desk(name)
        self.set_listening(True, name)
        desk.change(*self._initial)
        desk.mailbox.clear()
        return self.settings(name)

    def set_listening(self, listening: bool, name: str = DEFAULT_DESK) -> None:
        """Close desk ``name``'s listening socket (``False``) or open it again on the same port (``True``).

        Only the listening socket changes: the event loop keeps running, so sessions already open finish their
        conversation (and their delay) normally. The socket is closed and reopened on the sink's own loop, the one
        thread that owns it. Reopening fails with ConfigError if another program took the port meanwhile.
        """
        desk = self.desk(name)
        with self._switch:
            if listening == desk.listening:
                return
            controller = self._controller
            if controller.loop is None or not controller.loop.is_running():
                raise ConfigError("the sink is not running: start it before switching its listening socket")
            if listening:
                self._open(desk)
            else:
                self._close(desk)

    def _open(self, desk: SinkDesk) -> None:
        """Listen for ``desk`` on its port (a new one the first time); the default desk on the sink's own port."""
        controller = self._controller
        if desk is self.handler.default:
            create = controller._create_server()
        else:
            create = controller.loop.create_server(lambda: controller.session_for(desk), host=self.host, port=desk.port)
        try:
            server = asyncio.run_coroutine_threadsafe(create, controller.loop).result(SWITCH_TIMEOUT_S)
        except OSError as err:
            raise ConfigError(f"cannot listen again on {self.host}:{desk.port}: {err}") from err
        if desk is self.handler.default:
            controller.server = server
        desk.server = server
        desk.port = server.sockets[0].getsockname()[1]
        desk.listening = True

    def _close(self, desk: SinkDesk) -> None:
        server = self._controller.server if desk is self.handler.default else desk.server
        # Server.close() stops accepting at once and leaves open connections alone; wait_closed() is not
        # awaited because (from Python 3.12) it waits for every open session to end.
        asyncio.run_coroutine_threadsafe(_close_listener(server), self._controller.loop).result(SWITCH_TIMEOUT_S)
        desk.listening = False

    def settings(self, name: str = DEFAULT_DESK) -> dict[str, Any]:
        """What ``GET /api/sink`` shows for desk ``name``; ``PUT /api/sink`` takes the same object back unchanged."""
        desk = self.desk(name)
        settings = {
            **desk.faults.to_dict(),
            **desk.receiving.to_dict(),
            "listening": desk.listening,
            "host": self.host,
            "port": self.port_for(name),
        }
        return {**settings, "description": describe_sink_settings(settings)}

    def update_settings(self, changes: Mapping[str, Any], name: str = DEFAULT_DESK) -> dict[str, Any]:
        """Apply ``PUT /api/sink`` changes to desk ``name`` while the sink runs; a bad value raises ConfigError and
        changes nothing.

        ``description`` (derived from the rest) is ignored; ``host`` and ``port`` are accepted only with their current
        values. So a client can save the settings it read and put them back whole. ``listening`` switches the
        dead-server mode.
        """
        desk = self.desk(name)
        changes = dict(changes)
        changes.pop("description", None)  # derived from the others: a client putting back what it read sends it too
        address = {"host": self.host, "port": self.port_for(name)}
        for key, current in address.items():
            if key in changes and changes.pop(key) != current:
                raise ConfigError(f"{key} cannot change while the sink runs (it is {current!r})")
        listening = changes.pop("listening", desk.listening)
        if not isinstance(listening, bool):
            raise ConfigError("listening must be true (accept connections) or false (refuse them, a dead server)")
        faults, receiving = changed_settings(desk.faults, desk.receiving, changes)  # checked first
        self.set_listening(listening, name)
        desk.change(faults, receiving)
        return self.settings(name)


SWITCH_TIMEOUT_S = 5.0


async def _close_listener(server: asyncio.AbstractServer | None) -> None:
    """Stop accepting connections; runs on the sink's loop, which owns the socket."""
    if server is not None:
        server.close()
