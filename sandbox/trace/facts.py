"""The facts of one trace, derived from its events alone: orders, fates, who ran the send, measured gaps, the server.

Every sentence a student reads is chosen from these facts (never from the mode's name or the settings), and each
fact knows how to name its events in a claim (``response.sent``, ``attempt.failed#2``, ``@7``), so the sentence
can say what it claims. See :mod:`sandbox.claims`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from sandbox.trace.claims import claim
from sandbox.trace.clock import shown_gap, shown_ms
from sandbox.trace.tracer import HANDOFF_KINDS, Event, Trace

# Events too fine-grained for the table (they stay in the JSON and the Perfetto timeline).
HIDDEN_KINDS = frozenset({"smtp.connecting", "smtp.command"})
SEND_ENDS = ("smtp.accepted", "smtp.failed")  # how a mail.send() ends on the thread that called it
SINK_ENDS = ("sink.accepted", "sink.reply_lost", "sink.rejected", "sink.disconnected", "sink.client_left")
# The sink's ends that leave the email in its mailbox: stored now, or recognised as a copy stored before.
IN_MAILBOX_ENDS = ("sink.accepted", "sink.reply_lost")
NOT_WORKER_KINDS = frozenset({"request.arrived", "sink.data_received", "sink.delay_started", *SINK_ENDS})


# How a sink's hold ended, as the end of a sentence ("1.00 s pass before it answers"): present, past. A lost reply
# that stored nothing new (a copy the sink recognised) ends as DUPLICATE_LOST_ENDING says instead.
HOLD_ENDINGS = {
    "sink.accepted": ("before it answers", "before it answered"),
    "sink.rejected": ("before it answers", "before it answered"),
    "sink.reply_lost": (
        "before it stores the email and hangs up without answering",
        "before it stored the email and hung up without answering",
    ),
    "sink.disconnected": ("before it hangs up without answering", "before it hung up without answering"),
    "sink.client_left": (
        "before it finds the client gone; it never answers",
        "before it found the client gone; it never answered",
    ),
}


DUPLICATE_LOST_ENDING = (
    "before it recognises a copy it already holds and hangs up without answering",
    "before it recognised a copy it already held and hung up without answering",
)


NOT_ACCEPTED = {
    "unknown": "not confirmed: the app cannot tell whether it arrived",
    "refused": "never sent",
    "pending": "not accepted yet",
}


def gap_phrase(facts: Facts, earlier: Event, later: Event) -> tuple[str, str]:
    """The time between two events, precise enough to tell them apart, and its claim."""
    value = facts.gap_ms(earlier, later)
    text, tol = shown_gap(value)
    return text, claim("gap_ms", facts.ref(earlier), facts.ref(later), round(value, 3), tol)


def slowest_wait_ms(requests: Sequence[ServedRequest]) -> float:
    """The longest any of ``requests`` waited for its answer (0 for none), as claims give it."""
    return round(max((r.wait_ms() or 0.0 for r in requests), default=0.0), 3)


def wait_tol(requests: Sequence[ServedRequest]) -> float:
    """The rounding of that longest wait as it is shown (0 for none)."""
    return shown_ms(slowest_wait_ms(requests))[1] if requests else 0.0


def unanswered(event: Event) -> bool:
    """A failure recorded after the whole message went out and no answer came: the sender cannot know the fate."""
    return fate_unknown(event) and not event.details.get("answered")


def fate_unknown(event: Event) -> bool:
    """A failure after which the sender cannot know whether the email arrived: its last conversation got no answer,
    or (``answered``) it was refused after an earlier attempt that may have delivered it."""
    return event.details.get("outcome") == "unknown"


def stores_copy(event: Event) -> bool:
    """A sink end that put a new copy into the mailbox (an event from before ``stored`` was recorded did)."""
    return event.kind in IN_MAILBOX_ENDS and event.details.get("stored", True) is not False


@dataclass(frozen=True)
class Conversation:
    """One SMTP conversation of the send whose whole message went out: the client's side and, with an embedded
    sink, the sink's. Attempts follow one another, so the n-th message sent is the n-th the sink received."""

    data: Event | None  # smtp.data_sent
    client_end: Event | None  # smtp.accepted or smtp.failed after it
    received: Event | None  # sink.data_received
    sink_end: Event | None  # one of SINK_ENDS


@dataclass(frozen=True)
class ServedRequest:
    """Another request the web server had during the send, its times in ms from this trace's start."""

    id: int
    method: str
    path: str
    arrived_ms: float
    started_ms: float | None
    finished_ms: float | None
    status: int | None

    def wait_ms(self) -> float | None:
        """From arrival to answer: what that client waited."""
        return None if self.finished_ms is None else self.finished_ms - self.arrived_ms


@dataclass(frozen=True)
class ServerView:
    """What the web server did for other clients while this send was going on."""

    kind: str | None
    observed: bool
    requests: tuple[ServedRequest, ...] = ()

    def answered(self, after_ms: float, until_ms: float) -> list[ServedRequest]:
        return [r for r in self.requests if r.finished_ms is not None and after_ms < r.finished_ms <= until_ms]

    def waiting(self, at_ms: float) -> list[ServedRequest]:
        return [r for r in self.requests if r.arrived_ms <= at_ms and (r.started_ms is None or r.started_ms > at_ms)]

    def busy(self, at_ms: float) -> list[ServedRequest]:
        return [
            r
            for r in self.requests
            if r.started_ms is not None and r.started_ms <= at_ms and (r.finished_ms is None or r.finished_ms > at_ms)
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "observed": self.observed,
            "requests": [
                {
                    "id": r.id,
                    "method": r.method,
                    "path": r.path,
                    "arrived_ms": _round(r.arrived_ms),
                    "started_ms": _round(r.started_ms),
                    "finished_ms": _round(r.finished_ms),
                    "status": r.status,
                }
                for r in self.requests
            ],
        }


NOT_OBSERVED = ServerView(None, False)


class Facts:
    """One trace read once: events by kind, the request's thread, the worker, the outcome, references for claims."""

    def __init__(self, trace: Trace, server: ServerView = NOT_OBSERVED, prefix: str = "") -> None:
        self.trace = trace
        self.server = server
        self.prefix = prefix  # "other:" for the trace a comparison question is about
        self.events = trace.events
        self.start_ns = trace.started_ns
        self.visible = [e for e in self.events if e.kind not in HIDDEN_KINDS]
        self._ordinal: dict[int, int] = {}
        counts: dict[str, int] = {}
        self._by_kind: dict[str, list[Event]] = {}
        for event in self.events:
            counts[event.kind] = counts.get(event.kind, 0) + 1
            self._ordinal[id(event)] = counts[event.kind]
            self._by_kind.setdefault(event.kind, []).append(event)
        self._step = {id(e): n for n, e in enumerate(self.visible, start=1)}
        self._index = {id(e): i for i, e in enumerate(self.events)}

    # Reading events -------------------------------------------------------------------------------------------
    def first(self, *kinds: str) -> Event | None:
        """The earliest event of any of ``kinds``."""
        found = [self._by_kind[k][0] for k in kinds if k in self._by_kind]
        return min(found, key=self.position) if found else None

    def last(self, kind: str) -> Event | None:
        events = self._by_kind.get(kind)
        return events[-1] if events else None

    def all(self, kind: str) -> list[Event]:
        return list(self._by_kind.get(kind, ()))

    def position(self, event: Event) -> int:
        return self._index[id(event)]

    def ms(self, event: Event) -> float:
        return (event.t_ns - self.start_ns) / 1e6

    def gap_ms(self, earlier: Event, later: Event) -> float:
        return max(0.0, (later.t_ns - earlier.t_ns) / 1e6)

    def step(self, event: Event) -> int | None:
        return self._step.get(id(event))

    def ref(self, event: Event) -> str:
        """How a claim names this event: its kind if it is the first of its kind, else ``kind#n``."""
        n = self._ordinal[id(event)]
        return self.prefix + (event.kind if n == 1 else f"{event.kind}#{n}")

    def shown_at(self, event: Event) -> str:
        """The claim that ``event`` is the one the table shows at its step: ``step(n, kind)`` when it is the first
        of its kind, else that step n's event happened."""
        n = self.step(event)
        return claim("step", n, event.kind) if self.first(event.kind) is event else claim("happened", f"@{n}")

    def in_order(self, *events: Event) -> bool:
        """The events happened one after another, in the order given."""
        positions = [self.position(e) for e in events]
        return all(a < b for a, b in zip(positions, positions[1:], strict=False))

    def after(self, event: Event, kinds: Iterable[str], thread_id: int | None = None) -> Event | None:
        """The first event of ``kinds`` after ``event`` (on ``thread_id`` if given)."""
        kinds = set(kinds)
        start = self.position(event)
        for other in self.events[start + 1 :]:
            if other.kind in kinds and (thread_id is None or other.thread_id == thread_id):
                return other
        return None

    def before(self, event: Event, kinds: Iterable[str], thread_id: int | None = None) -> Event | None:
        """The last event of ``kinds`` before ``event`` (on ``thread_id`` if given)."""
        kinds = set(kinds)
        for other in reversed(self.events[: self.position(event)]):
            if other.kind in kinds and (thread_id is None or other.thread_id == thread_id):
                return other
        return None

    # The request and its answer -------------------------------------------------------------------------------
    @cached_property
    def received(self) -> Event | None:
        return self.first("request.received")

    @cached_property
    def arrived(self) -> Event | None:
        return self.first("request.arrived")

    @cached_property
    def request_thread_id(self) -> int | None:
        return self.received.thread_id if self.received else None

    def on_request(self, event: Event) -> bool:
        return event.thread_id == self.request_thread_id

    @cached_property
    def response(self) -> Event | None:
        return self.first("response.sent")

    @cached_property
    def status(self) -> int | None:
        return int(self.response.details.get("status", 0)) if self.response else None

    @cached_property
    def server_kind(self) -> str | None:
        return self.arrived.details.get("server") if self.arrived else None

    @cached_property
    def pool_threads(self) -> int | None:
        """The pooled server's number of threads, as the request's arrival recorded it."""
        threads = self.arrived.details.get("threads") if self.arrived else None
        return int(threads) if isinstance(threads, int) else None

    @cached_property
    def queue_wait_ms(self) -> float | None:
        """How long the request waited in the server before a handler took it up."""
        if self.arrived is None or self.received is None:
            return None
        return self.gap_ms(self.arrived, self.received)

    # A send scheduled by hand ----------------------------------------------------------------------------------
    @cached_property
    def holds(self) -> list[tuple[Event, Event | None]]:
        """Each stop of a thread at a gate, with the event that let it go on (None: it had not yet)."""
        return [(e, self.after(e, ("gate.released",), e.thread_id)) for e in self.all("gate.parked")]

    # The worker -----------------------------------------------------------------------------------------------
    @cached_property
    def handoff(self) -> Event | None:
        """How the route handed the send on: it started a thread, queued it for a pool, or stored a task."""
        return self.first(*HANDOFF_KINDS)

    @cached_property
    def worker(self) -> Event | None:
        return self.first("worker.started")

    @cached_property
    def worker_origin(self) -> str | None:
        """``route`` (a thread this route started), ``pool`` (a pool thread), ``consumer`` (a queue consumer)."""
        if self.handoff is None:
            return None
        if self.handoff.kind == "worker.spawned":
            return "route"
        return "pool" if self.handoff.kind == "pool.queued" else "consumer"

    @cached_property
    def spawned_worker_name(self) -> str | None:
        return (
            str(self.handoff.details.get("worker")) if self.handoff and self.handoff.kind == "worker.spawned" else None
        )

    def on_worker(self, event: Event) -> bool:
        """On a thread that ran the send for the route: not the request's, the sink's or the server's acceptor.
        (A queued task may be retried by another consumer thread than the first.)"""
        return self.handoff is not None and not self.on_request(event) and event.kind not in NOT_WORKER_KINDS

    @cached_property
    def worker_context(self) -> Event | None:
        """The worker's own ``app.app_context()`` push, if it made one."""
        return next((e for e in self.all("context.pushed") if self.on_worker(e)), None)

    @cached_property
    def worker_end(self) -> Event | None:
        return self.first("worker.finished", "worker.failed")

    # An async def view ---------------------------------------------------------------------------------------
    @cached_property
    def awaited_call(self) -> Event | None:
        """The route's call of a coroutine through ``app.ensure_sync``, after which the request's thread waits for
        the coroutine to end (an ``async def`` view, as Flask runs one)."""
        return self.first("coroutine.called")

    @cached_property
    def coroutine(self) -> Event | None:
        """The coroutine's start, on the thread of the event loop that ran it."""
        return self.first("coroutine.started")

    @cached_property
    def coroutine_end(self) -> Event | None:
        return self.first("coroutine.finished", "coroutine.failed")

    @cached_property
    def _coroutine_threads(self) -> frozenset[int]:
        if self.awaited_call is None:
            return frozenset()
        loop = {self.coroutine.thread_id} if self.coroutine is not None else set()
        sends = {e.thread_id for e in self.all("send.started") if not self.on_request(e) and self._by_view(e)}
        return frozenset(loop | sends)

    def _by_view(self, event: Event) -> bool:
        """Up to the view's coroutine's end: what came later on its loop belongs to a task it left behind."""
        end = self.coroutine_end
        return end is None or self.position(event) <= self.position(end)

    @cached_property
    def loop_sent(self) -> bool:
        """An async view whose coroutine called mail.send() itself, on the event loop's own thread (no await)."""
        send, loop = self.send, self.coroutine
        return loop is not None and send is not None and self.in_coroutine(send) and send.thread_id == loop.thread_id

    def in_coroutine(self, event: Event) -> bool:
        """On the coroutine's side of an async view: the event loop's thread, or the thread it awaited the send on."""
        return (
            event.thread_id in self._coroutine_threads
            and not self.on_request(event)
            and event.kind not in NOT_WORKER_KINDS
            and self._by_view(event)
        )

    # A task the async view created and did not await ------------------------------------------------------------
    @cached_property
    def task_created(self) -> Event | None:
        return self.first("task.created")

    @cached_property
    def task_started(self) -> Event | None:
        return self.first("task.started")

    @cached_property
    def task_end(self) -> Event | None:
        """How the task ended: ``task.finished``, ``task.failed`` or ``task.cancelled``."""
        return self.first("task.finished", "task.failed", "task.cancelled")

    @cached_property
    def task_send(self) -> Event | None:
        """The task's own ``mail.send()``: the first one after the task started."""
        started = self.task_started
        return None if started is None else self.after(started, ("send.started",))

    @cached_property
    def task_send_end(self) -> Event | None:
        """How the task's own ``mail.send()`` ended on the thread it ran on."""
        return self.end_of(self.task_send)

    @cached_property
    def unsent(self) -> Event | None:
        """The sandbox's verdict, once the loop had closed, that no ``mail.send()`` ever began for the view's task:
        the email never left."""
        return self.first("task.unsent")

    @cached_property
    def loop_closed(self) -> Event | None:
        """``asyncio.run()`` returned on the request's thread: the view's event loop has closed."""
        return self.first("loop.closed")

    # The email ------------------------------------------------------------------------------------------------
    @cached_property
    def send(self) -> Event | None:
        return self.first("send.started")

    @cached_property
    def send_end(self) -> Event | None:
        """How the first ``mail.send()`` ended on the thread that called it: returned (``smtp.accepted``) or raised
        (``smtp.failed``); None while it runs, or when it never reached either."""
        return self.end_of(self.send)

    def end_of(self, send: Event | None) -> Event | None:
        """How the ``mail.send()`` begun at ``send`` ended on its thread (``smtp.accepted`` or ``smtp.failed``)."""
        return None if send is None else self.after(send, SEND_ENDS, send.thread_id)

    @cached_property
    def accepted(self) -> Event | None:
        """The sink's 250; without a sink lane, the client's view of it."""
        return self.first("sink.accepted") or self.first("smtp.accepted")

    @cached_property
    def first_failure(self) -> Event | None:
        return self.first("smtp.failed", "worker.failed")

    @cached_property
    def final_failure(self) -> Event | None:
        """The failure that decided the email's fate."""
        if self.unsent is not None:
            return self.unsent
        if self.worker_end is not None:
            return self.worker_end if self.worker_end.kind == "worker.failed" else None
        return self.last("smtp.failed") if self.accepted is None else None

    @cached_property
    def outcome(self) -> str:
        """``delivered``, ``failed``, ``unknown``, ``refused`` (the route answered 4xx before any send) or ``pending``.

        The sink's lane, when the trace has one, settles what the client could not know: a 250 the client never
        heard (it gave up first), or an email the sink stored before it hung up without its 250 (a lost reply), is
        still a delivery, and a client that lost the connection after its data, where the sink stored nothing, is a
        failure. Without that lane, such a send is ``unknown``, as the app reports it (see ``sender_outcome``).
        How many copies arrived is ``stored_copies``.
        """
        if self.in_mailbox is not None or (self.accepted is not None and self.final_failure is None):
            return "delivered"
        if self.final_failure is not None:
            return "unknown" if fate_unknown(self.final_failure) and not self.sink_lane_ended else "failed"
        if self.status is not None and self.status >= 400 and self.send is None:
            return "refused"
        return "pending"

    @cached_property
    def sender_outcome(self) -> str:
        """What the app itself knew and recorded (what ``/api/failures`` lists), without the sink's lane:
        ``delivered`` (a 250 reached it), ``failed``, ``unknown`` (it cannot tell), ``refused`` or ``pending``."""
        end = self.worker_end or self.unsent
        if end is None:
            heard = [e for e in self.events if e.kind in SEND_ENDS]
            end = heard[-1] if heard else None
        if end is None:
            return "refused" if self.status is not None and self.status >= 400 and self.send is None else "pending"
        if end.kind in ("worker.finished", "smtp.accepted"):
            return "delivered"
        return "unknown" if fate_unknown(end) else "failed"

    @property
    def not_accepted(self) -> str:
        """What the summary says instead of "accepted after ..." when no 250 was seen."""
        if self.outcome == "delivered":  # in the mailbox, but no 250 reached the sender
            copies = len(self.stored_copies)
            return f"in the mailbox{f' ({copies} copies)' if copies > 1 else ''}, though no 250 reached the app"
        return NOT_ACCEPTED.get(self.outcome, "not accepted")

    @cached_property
    def conversations(self) -> list[Conversation]:
        """Every conversation whose message went out or reached the sink, in order (one per attempt that got so far)."""
        sent, received = self.all("smtp.data_sent"), self.all("sink.data_received")
        found = []
        for n in range(max(len(sent), len(received))):
            data = sent[n] if n < len(sent) else None
            arrived = received[n] if n < len(received) else None
            client_end = self.after(data, SEND_ENDS, data.thread_id) if data else None
            sink_end = self.after(arrived, SINK_ENDS, arrived.thread_id) if arrived else None
            found.append(Conversation(data, client_end, arrived, sink_end))
        return found

    def conversation_of(self, event: Event) -> Conversation | None:
        """The conversation ``event`` belongs to: its data, the client's end, the sink's arrival or end."""
        return next(
            (c for c in self.conversations if any(e is event for e in (c.data, c.client_end, c.received, c.sink_end))),
            None,
        )

    def last_conversation_before(self, event: Event) -> Conversation | None:
        """The last conversation whose message went out before ``event`` (a worker's or a route's failure)."""
        before = [c for c in self.conversations if c.data is not None and self.position(c.data) < self.position(event)]
        return before[-1] if before else None

    @cached_property
    def in_mailbox(self) -> Event | None:
        """The first sink event that shows the email in the mailbox: a 250, or a reply lost after storing it."""
        return self.first(*IN_MAILBOX_ENDS)

    @cached_property
    def stored_copies(self) -> list[Event]:
        """The sink events that each stored a new copy of this email: more than one is a duplicate delivery."""
        return [e for e in self.events if stores_copy(e)]

    @cached_property
    def recognised_copies(self) -> list[Event]:
        """The sink events that answered a copy it already held (by Message-ID) and stored nothing new."""
        return [e for e in self.events if e.kind in IN_MAILBOX_ENDS and not stores_copy(e)]

    @cached_property
    def attempts(self) -> list[Event]:
        """The worker's ``attempt.started`` events: one per try of a retrying strategy (none for a single try)."""
        return self.all("attempt.started")

    @cached_property
    def held_s(self) -> float | None:
        """How long the sink planned to hold this email (its delay plus any jitter drawn), if the trace shows it."""
        started = self.first("sink.delay_started")
        return float(started.details["delay_s"]) if started is not None and "delay_s" in started.details else None

    @cached_property
    def sink_lane_ended(self) -> bool:
        """Whether the sink's own events (an embedded sink) say how its side of every conversation ended, so its view
        of the email is known: stored, rejected, dropped, or left behind by a client that hung up."""
        lanes = [c for c in self.conversations if c.data is not None or c.received is not None]
        return bool(lanes) and all(c.sink_end is not None for c in lanes)

    def failure_error(self) -> str:
        event = self.final_failure or self.first_failure
        return str(event.details.get("error", "")) if event else ""

    def sink_hold_end(self, started: Event) -> Event | None:
        """Where the sink's wait that began at ``started`` ended: its 250, a rejection, a drop, or a vanished client."""
        return self.after(started, SINK_ENDS, started.thread_id)


def observed_server(trace: Trace, log: object | None, as_of_ns: int | None = None) -> ServerView:
    """What the web server that had this request did for everyone else from its arrival to the trace's last event,
    read from the requests log (:mod:`sandbox.requests_log`), which a sandbox's two servers share; not observed
    without a log or an arrival stamp. ``as_of_ns``: as the log stood then (a page built at that moment)."""
    arrived = next((e for e in trace.events if e.kind == "request.arrived"), None)
    if log is None or arrived is None or not log.holds(arrived.details.get("request_id"), arrived.t_ns):  # type: ignore[attr-defined]
        return NOT_OBSERVED  # no log, or not this request's: read back after a restart, nothing is known of the rest
    kind = arrived.details.get("server")
    others = log.between(  # type: ignore[attr-defined]
        trace.started_ns,
        trace.events[-1].t_ns,
        exclude=arrived.details.get("request_id"),
        server=kind,
        as_of_ns=as_of_ns,
    )
    return server_view(trace, others, kind)


def server_view(trace: Trace, requests: Iterable[object], kind: str | None) -> ServerView:
    """The server's log of other requests, as times from this trace's start (``requests`` are ServedRequest-like
    records with ``*_ns`` fields from :mod:`sandbox.requests_log`)."""
    start = trace.started_ns

    def ms(ns: int | None) -> float | None:
        return None if ns is None else (ns - start) / 1e6

    return ServerView(
        kind,
        True,
        tuple(
            ServedRequest(
                r.id,
                r.method,
                r.path,
                ms(r.arrived_ns),
                ms(r.started_ns),
                ms(r.finished_ns),
                r.status,  # type: ignore[attr-defined]
            )
            for r in requests
        ),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# The shared count of sent emails, across several sends -------------------------------------------------------------
def count_writes(runs: Sequence[Facts]) -> list[tuple[int, Facts, Event]]:
    """Every write of the shared count in ``runs``, in the order they happened: (the send's number, counting from
    1, its facts, the write)."""
    writes = [(n, facts, e) for n, facts in enumerate(runs, 1) for e in facts.all("count.written")]
    return sorted(writes, key=lambda write: write[2].t_ns)


def lost_update(write: Event) -> bool:
    """The write replaced a value other than the one its thread had read: what was written in between is lost."""
    return write.details.get("found") != write.details.get("read")
