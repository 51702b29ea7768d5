"""From a trace's facts to the rows a student steps through: Step | Action | Thread State | Main App State | Output.

Each cell is a :class:`~sandbox.claims.Sentence` chosen from the facts of this run, with the claims that make it
true. Thread State is the state of the threads that matter (the request's thread and the worker, if the send was
handed on, or the coroutine of an async view, which the request's thread waits for); Main App State is the web
server as a whole: what it was doing for everybody else at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.trace.claims import Literal, Sentence, claim, join, negate, sentence
from sandbox.trace.clock import shown_gap, shown_ms
from sandbox.trace.facts import (
    DUPLICATE_LOST_ENDING,
    HOLD_ENDINGS,
    IN_MAILBOX_ENDS,
    NOT_OBSERVED,
    SINK_ENDS,
    Facts,
    ServerView,
    fate_unknown,
    gap_phrase,
    stores_copy,
    unanswered,
)
from sandbox.trace.gates import BY_YOU, GATE_KINDS
from sandbox.trace.tasks import task_action, task_state
from sandbox.trace.tracer import BLIND, Event, Trace

STATE_FIELDS = ("request", "worker", "server", "email")
# An async def view hands its send to no worker: the thread that matters beside the request's is the coroutine's,
# and the task it created, if it made one.
AWAITED_STATE_FIELDS = ("request", "coroutine", "server", "email")
TASK_STATE_FIELDS = ("request", "coroutine", "task", "server", "email")
TRACKER_NAMES = {
    "request": "Request thread",
    "worker": "Worker",
    "coroutine": "Coroutine",
    "task": "Task",
    "server": "Web server",
    "email": "Email",
}


@dataclass(frozen=True)
class Row:
    step: int
    action: str
    thread_state: str
    main_app_state: str
    output: str
    t_ms: float
    thread: str
    kind: str
    email_state: str
    file: str
    line: int
    function: str
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    states: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "action": self.action,
            "thread_state": self.thread_state,
            "main_app_state": self.main_app_state,
            "output": self.output,
            "t_ms": self.t_ms,
            "thread": self.thread,
            "kind": self.kind,
            "email_state": self.email_state,
            "file": self.file,
            "line": self.line,
            "function": self.function,
        }


def execution_table(trace: Trace, server: ServerView = NOT_OBSERVED) -> list[Row]:
    return rows_from(Facts(trace, server))


def rows_from(facts: Facts) -> list[Row]:
    """One row per visible event, numbered from 1, with the state after it and what an observer would see."""
    rows = []
    fields = STATE_FIELDS
    if facts.awaited_call is not None:
        fields = TASK_STATE_FIELDS if facts.task_created is not None else AWAITED_STATE_FIELDS
    beside = fields[1]  # the worker, or the coroutine of an async view
    for n, event in enumerate(facts.visible, start=1):
        cells = {
            "task": task_state(facts, n),
            "action": describe_action(facts, event, n),
            "request": request_state(facts, n),
            beside: coroutine_state(facts, n) if beside == "coroutine" else worker_state(facts, n),
            "server": server_state(facts, n),
            "email": email_state(facts, n),
            "output": describe_output(facts, event, n),
        }
        thread_state = join([cells["request"], cells[beside], cells["task"]], " · ")
        rows.append(
            Row(
                step=n,
                action=cells["action"].text,
                thread_state=thread_state.text,
                main_app_state=cells["server"].text,
                output=cells["output"].text,
                t_ms=round(facts.ms(event), 3),
                thread=event.thread,
                kind=event.kind,
                email_state=cells["email"].text,
                file=event.file,
                line=event.line,
                function=event.function,
                claims={
                    "action": cells["action"].claims,
                    "thread_state": thread_state.claims,
                    "main_app_state": cells["server"].claims,
                    "output": cells["output"].claims,
                    "email_state": cells["email"].claims,
                },
                states={name: cells[name].text for name in fields},
            )
        )
    return rows


# Claims about a state that started with one event and still holds at step n -------------------------------------
def holds(facts: Facts, since: Event, n: int, ends: tuple[str, ...] = ()) -> list[str]:
    """``since`` happened at or before step n, and no event of ``ends`` came after it and before step n."""
    ref = facts.ref(since)
    claims = [claim("happened", ref), negate(claim("before", f"@{n}", ref))]
    return claims + [claim("none_between", kind, ref, f"@{n}") for kind in ends if facts.first(kind)]


def latest(facts: Facts, n: int, kinds: tuple[str, ...], thread_id: int | None = None) -> Event | None:
    """The last event of ``kinds`` (on ``thread_id`` if given) at or before step n."""
    upto = facts.position(facts.visible[n - 1])
    found = None
    for event in facts.events[: upto + 1]:
        if event.kind in kinds and (thread_id is None or event.thread_id == thread_id):
            found = event
    return found


def quoted(ref: str, details: dict[str, Any] | Any) -> str:
    """The claim behind a sentence that quotes an event's recorded error word for word."""
    return claim("detail", ref, "error", Literal(details.get("error", "")))


# The mailbox: how many copies of this email the sink holds -----------------------------------------------------
def mailbox_at(facts: Facts, n: int | None = None) -> tuple[list[Event], tuple[str, ...]]:
    """The sink events that had stored a copy of this email by step n (by the end without n), and the claims that
    these are exactly the copies: every sink end that leaves the email in the mailbox is counted, placed before or
    after step n, and said to have stored a new copy or recognised one it already held."""
    limit = facts.position(facts.visible[n - 1]) if n is not None else None
    claims = [claim("count", kind, len(facts.all(kind))) for kind in IN_MAILBOX_ENDS]
    copies = []
    for event in facts.events:
        if event.kind not in IN_MAILBOX_ENDS:
            continue
        ref = facts.ref(event)
        if limit is not None and facts.position(event) > limit:
            claims.append(claim("before", f"@{n}", ref))
            continue
        if limit is not None:
            claims.append(negate(claim("before", f"@{n}", ref)))
        if stores_copy(event):
            copies.append(event)
            claims.append(negate(claim("detail", ref, "stored", Literal(False))))
        else:
            claims.append(claim("detail", ref, "stored", Literal(False)))
    return copies, tuple(claims)


def message_numbers(facts: Facts, events: list[Event]) -> Sentence:
    """``message #1`` or ``messages #1, #2 and #3``: the mailbox numbers of these sink events, with their claims."""
    numbers = [f"#{e.details.get('message_id')}" for e in events]
    text = numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"
    claims = [claim("detail", facts.ref(e), "message_id", Literal(e.details.get("message_id"))) for e in events]
    return Sentence(f"{'message' if len(numbers) == 1 else 'messages'} {text}", tuple(claims))


TIMES = {1: "once", 2: "twice"}


def times(number: int) -> str:
    """``once``, ``twice``, ``3 times``."""
    return TIMES.get(number, f"{number} times")


def hold_ending(facts: Facts, end: Event, tense: int) -> Sentence:
    """How the sink's hold ended, as the end of a sentence (tense 0: present, 1: past), true to what it stored."""
    if end.kind == "sink.reply_lost" and not stores_copy(end):
        return sentence(
            DUPLICATE_LOST_ENDING[tense],
            claim("detail", facts.ref(end), "duplicate_of", Literal(end.details.get("duplicate_of"))),
        )
    return Sentence(HOLD_ENDINGS[end.kind][tense])


# Thread State: the request's thread -------------------------------------------------------------------------------
REQUEST_KINDS = (
    "request.received",
    "coroutine.called",
    "send.started",
    "smtp.accepted",
    "smtp.failed",
    "loop.closed",
    "response.sent",
)


AWAITING_STATE = "Request: waiting in app.ensure_sync() for the coroutine to finish"


def held_at_gate(facts: Facts, n: int, on: Callable[[Event], bool], who: str) -> Sentence | None:
    """``who`` (a state's opening words) is held at a gate at step n: the thread's last gate.parked up to step n
    has not yet its gate.released. None when it is not."""
    upto = facts.position(facts.visible[n - 1])
    parked = None
    for event in facts.events[: upto + 1]:
        if event.kind in GATE_KINDS and on(event):
            parked = event if event.kind == "gate.parked" else None
    if parked is None:
        return None
    claims = [claim("happened", facts.ref(parked)), negate(claim("before", f"@{n}", facts.ref(parked)))]
    released = facts.after(parked, ("gate.released",), parked.thread_id)
    if released is not None:
        claims.append(claim("before", f"@{n}", facts.ref(released)))
    gate = parked.details.get("gate")
    return Sentence(
        f"{who}: held at the gate “{gate}” until released",
        (*claims, claim("detail", facts.ref(parked), "gate", Literal(gate))),
    )


def request_state(facts: Facts, n: int) -> Sentence:
    tid = facts.request_thread_id
    held = held_at_gate(facts, n, facts.on_request, "Request") if tid is not None else None
    if held is not None:
        return held
    event = latest(facts, n, REQUEST_KINDS, tid) if tid is not None else None
    if event is None:
        received = facts.received
        if received is None:
            return sentence("Request: not handled", claim("absent", "request.received"))
        before = claim("before", f"@{n}", facts.ref(received))
        if facts.server_kind == "single":
            single = claim("detail", "request.arrived", "server", Literal("single"))
            return sentence("Request: waiting for the server's only thread", before, single)
        if facts.server_kind == "pooled":
            pooled = claim("detail", "request.arrived", "server", Literal("pooled"))
            return sentence("Request: waiting in line for a thread of the server's pool", before, pooled)
        return sentence("Request: waiting for a handler thread", before)
    ends = tuple(k for k in REQUEST_KINDS if all(facts.on_request(e) for e in facts.all(k)))
    claims = holds(facts, event, n, ends)
    match event.kind:
        case "request.received":
            text = "Request: running the route"
        case "coroutine.called" if _loop_closing(facts, n):
            text = "Request: still waiting in app.ensure_sync(), until the event loop has closed"
            claims += [
                claim("same_thread", facts.ref(event), "request.received"),
                negate(claim("before", f"@{n}", facts.ref(facts.coroutine_end))),  # type: ignore[arg-type]
                claim("before", f"@{n}", "loop.closed"),
            ]
        case "coroutine.called":
            text = AWAITING_STATE
            claims.append(claim("same_thread", facts.ref(event), "request.received"))
        case "send.started":
            text = "Request: blocked inside mail.send()"
            claims.append(claim("same_thread", facts.ref(event), "request.received"))
        case "smtp.accepted":
            text = "Request: mail.send() returned; the route carries on"
        case "smtp.failed":
            text = "Request: mail.send() raised; the route turns it into an error"
        case "loop.closed":
            text = "Request: back from app.ensure_sync(), the event loop closed"
        case _:
            text = f"Request: answered HTTP {facts.status}"
            claims.append(claim("detail", "response.sent", "status", Literal(facts.status)))
    return Sentence(text, tuple(claims))


def _loop_closing(facts: Facts, n: int) -> bool:
    """At step n the view's coroutine has returned, but its event loop has not closed yet."""
    end, closed = facts.coroutine_end, facts.loop_closed
    at = facts.position(facts.visible[n - 1])
    return end is not None and closed is not None and facts.position(end) <= at < facts.position(closed)


# Thread State: the worker -----------------------------------------------------------------------------------------
WORKER_KINDS = (
    "worker.spawned",
    "pool.queued",
    "queue.stored",
    "worker.started",
    "context.pushed",
    "cpu.started",
    "cpu.finished",
    "smtp.data_sent",
    "smtp.accepted",
    "smtp.failed",
    "attempt.started",
    "attempt.failed",
    "worker.finished",
    "worker.failed",
    "count.read",
    "count.written",
    "lock.waiting",
    "lock.acquired",
    "lock.released",
    "follow_up.queued",
    "follow_up.waiting",
    "follow_up.timed_out",
)


def worker_state(facts: Facts, n: int) -> Sentence:
    if facts.handoff is None:
        return Sentence("")  # the send, if any, stays on the request's thread: its state says it all
    candidates = [
        e
        for e in facts.events[: facts.position(facts.visible[n - 1]) + 1]
        if e.kind in WORKER_KINDS
        and (e.kind in ("worker.spawned", "pool.queued", "queue.stored") or facts.on_worker(e))
    ]
    if not candidates:
        return sentence("Worker: none yet", claim("before", f"@{n}", facts.ref(facts.handoff)))
    event = candidates[-1]
    name = event.thread if facts.on_worker(event) else facts.spawned_worker_name
    held = held_at_gate(facts, n, lambda e: facts.on_worker(e) and e.thread_id == event.thread_id, f"Worker {name}")
    if held is not None:
        return held
    ends = tuple(k for k in WORKER_KINDS if facts.first(k) and all(facts.on_worker(e) for e in facts.all(k)))
    claims = holds(facts, event, n, ends)
    name = event.thread if facts.on_worker(event) else facts.spawned_worker_name
    origin = facts.worker_origin
    match event.kind:
        case "worker.spawned":
            text = f"Worker {event.details.get('worker')}: started by the route, about to run"
            claims.append(claim("same_thread", facts.ref(event), "request.received"))
        case "pool.queued":
            text = "Send queued for a pool thread"
        case "queue.stored":
            text = "Task stored, waiting for a consumer"
        case "worker.started" | "context.pushed" | "attempt.started" | "cpu.finished":
            text = f"Worker {name}: running"
        case "cpu.started":
            text = f"Worker {name}: computing, holding the GIL between the interpreter's switches"
        case "smtp.data_sent":
            text = f"Worker {name}: waiting for the server's reply"
        case "smtp.accepted":
            text = f"Worker {name}: mail.send() returned"
        case "smtp.failed":
            text = f"Worker {name}: mail.send() raised"
        case "attempt.failed" if not event.details.get("final"):
            attempt = int(event.details.get("attempt", 0))
            claims.append(claim("detail", facts.ref(event), "final", Literal(False)))
            if origin == "consumer":
                text = f"Task stored again for attempt {attempt + 1}; the consumer is free meanwhile"
            else:
                text = f"Worker {name}: sleeping before attempt {attempt + 1}"
        case "attempt.failed":
            text = f"Worker {name}: gave up on this email"
        case "count.read":
            value = event.details.get("value")
            text = f"Worker {name}: has read the count ({value}) and not yet written it back{_holding(facts, event)}"
            claims.append(claim("detail", facts.ref(event), "value", Literal(value)))
        case "lock.waiting":
            holder = event.details.get("holder")
            text = f"Worker {name}: blocked, waiting for {event.details.get('lock')}, which {holder} holds"
            claims.append(claim("detail", facts.ref(event), "holder", Literal(holder)))
        case "lock.acquired":
            text = f"Worker {name}: running, holding {event.details.get('lock')}"
        case "count.written":
            text = f"Worker {name}: running{_holding(facts, event)}"
        case "lock.released" | "follow_up.queued" | "follow_up.timed_out":
            text = f"Worker {name}: running"
        case "follow_up.waiting":
            function = event.details.get("function")
            text = f"Worker {name}: blocked in .result(), waiting for {function}() to run"
            claims.append(claim("detail", facts.ref(event), "function", Literal(function)))
        case "worker.finished" | "worker.failed":
            if event.kind == "worker.finished":
                done = "finished the send"
            elif unanswered(event):
                done = "ended without an answer and recorded it"
            else:
                done = "failed and recorded the error"
            if origin == "route":
                text = f"Worker {name}: {done}; its thread ends"
                claims.append(claim("detail", "worker.spawned", "worker", Literal(name)))
                claims.append(claim("same_thread", "worker.started", facts.ref(event)))
            elif origin == "pool":
                text = f"Pool thread {name}: {done}; it stays in the pool for the next send"
                claims.append(claim("happened", "pool.queued"))
            else:
                text = f"Consumer thread {name}: {done}; it takes the next task"
                claims.append(claim("happened", "queue.stored"))
    return Sentence(text, tuple(claims))


# Thread State: the coroutine of an async view ---------------------------------------------------------------------
COROUTINE_KINDS = (
    "coroutine.called",
    "coroutine.started",
    "send.started",
    "smtp.data_sent",
    "smtp.accepted",
    "smtp.failed",
    "coroutine.finished",
    "coroutine.failed",
)


def coroutine_state(facts: Facts, n: int) -> Sentence:
    """Where the coroutine of an async view is: handed to ``ensure_sync``, running on the event loop's thread, or
    suspended in ``await`` while the send runs on an executor thread; the request's own state is told apart."""
    called = facts.awaited_call
    if called is None:
        return Sentence("")

    def ours(e: Event) -> bool:  # the view's coroutine, up to its end (what its task did is the task's)
        return e is called or facts.in_coroutine(e)

    upto = facts.position(facts.visible[n - 1])
    candidates = [e for e in facts.events[: upto + 1] if e.kind in COROUTINE_KINDS and ours(e)]
    if not candidates:
        return sentence("Coroutine: not called yet", claim("before", f"@{n}", facts.ref(called)))
    event = candidates[-1]
    ends = tuple(k for k in COROUTINE_KINDS if facts.first(k) and all(ours(e) for e in facts.all(k)))
    claims = holds(facts, event, n, ends)
    ref = facts.ref(event)
    loop = facts.coroutine
    where = f"Coroutine on {loop.thread}" if loop is not None else "Coroutine"
    on_loop = False
    if loop is not None and event.kind != "coroutine.called":
        on_loop = event.thread_id == loop.thread_id
        claims.append(claim("same_thread" if on_loop else "other_thread", ref, facts.ref(loop)))
    if event.kind != "coroutine.called":
        claims.append(claim("other_thread", ref, "request.received"))
    match event.kind:
        case "coroutine.called":
            text = "Coroutine: handed to app.ensure_sync(), not started yet"
            claims.append(claim("same_thread", ref, "request.received"))
        case "coroutine.started":
            text = f"{where}: running"
        case "send.started" | "smtp.data_sent" | "smtp.accepted" | "smtp.failed" if on_loop:
            text = {
                "send.started": f"{where}: blocked in mail.send(), on the loop's own thread",
                "smtp.data_sent": f"{where}: blocked in mail.send(), waiting for the server's reply",
                "smtp.accepted": f"{where}: mail.send() returned; the coroutine goes on",
                "smtp.failed": f"{where}: mail.send() raised",
            }[event.kind]
        case "send.started":
            text = f"{where}: awaiting mail.send(), which runs on {event.thread}"
        case "smtp.data_sent":
            text = f"{where}: awaiting; {event.thread} waits for the server's reply"
        case "smtp.accepted":
            text = f"{where}: awaiting; mail.send() returned on {event.thread}"
        case "smtp.failed":
            text = f"{where}: awaiting; mail.send() raised on {event.thread}"
        case "coroutine.finished":
            text = f"{where}: returned"
        case _:
            text = f"{where}: raised"
            failed = facts.first("smtp.failed")
            if failed is not None and facts.position(failed) < facts.position(event):
                text += " the error mail.send() raised"
                claims.append(claim("before", "smtp.failed", ref))
    return Sentence(text, tuple(claims))


# Main App State: the web server as a whole ------------------------------------------------------------------------
def server_state(facts: Facts, n: int) -> Sentence:
    server = facts.server
    if not server.observed:
        return sentence("Not observed (no web server in this run)", negate(claim("server_observed")))
    event = facts.visible[n - 1]
    at = facts.ms(event)
    previous = facts.visible[n - 2] if n > 1 else None
    parts: list[Sentence] = []
    if previous is not None:
        answered = server.answered(facts.ms(previous), at)
        if answered:
            slowest = max(r.wait_ms() or 0.0 for r in answered)
            text, tol = shown_gap(slowest)
            parts.append(
                sentence(
                    f"Answered {counted(len(answered), 'other request')} since step {n - 1} (slowest {text})",
                    claim("server_answered", f"@{n - 1}", f"@{n}", len(answered), round(slowest, 3), tol),
                )
            )
    waiting = server.waiting(at)
    if waiting:
        oldest = max(at - r.arrived_ms for r in waiting)
        text, tol = shown_gap(oldest)
        parts.append(
            sentence(
                f"{counted(len(waiting), 'other request')} waiting for a handler, the oldest for {text}",
                claim("server_waiting", f"@{n}", len(waiting), round(oldest, 3), tol),
            )
        )
    busy = server.busy(at)
    if busy:
        parts.append(
            sentence(f"Handling {counted(len(busy), 'other request')}", claim("server_busy", f"@{n}", len(busy)))
        )
    if not parts:
        none = [claim("server_waiting", f"@{n}", 0, 0, 0), claim("server_busy", f"@{n}", 0)]
        if previous is not None:
            none.append(claim("server_answered", f"@{n - 1}", f"@{n}", 0, 0, 0))
        parts.append(Sentence("No other requests", tuple(none)))
    parts.append(_capacity(facts, event, n))
    return join(parts, "; ")


def _capacity(facts: Facts, event: Event, n: int) -> Sentence:
    """Could the server take a new request at this moment? It follows from its kind and what it was doing."""
    kind = facts.server_kind
    if kind is None:
        return Sentence("")
    kind_claim = claim("detail", "request.arrived", "server", Literal(kind))
    if kind == "threaded":
        return sentence("a new request would get a thread of its own", kind_claim)
    received, response = facts.received, facts.response
    handling = (
        received is not None
        and facts.position(received) <= facts.position(event)
        and (response is None or facts.position(event) < facts.position(response))
    )
    if kind == "pooled":
        return _pool_capacity(facts, event, n, handling, kind_claim)
    if handling:
        claims = [kind_claim, negate(claim("before", f"@{n}", "request.received"))]
        if response is not None:
            claims.append(claim("before", f"@{n}", "response.sent"))
        return Sentence("one request at a time, and it is this one: a new request would wait", tuple(claims))
    return sentence("one request at a time", kind_claim)


def _pool_capacity(facts: Facts, event: Event, n: int, handling: bool, kind_claim: str) -> Sentence:
    """While this request holds one of the pool's threads: would a new request get a free one, or wait in line?
    (The other requests the pool was running are already counted in the same cell. Past its answer, this request's
    thread may linger a moment, so no free count is certain then.)"""
    size = facts.pool_threads
    if size is None:
        return sentence("a pool of threads", kind_claim)
    pool = sentence(
        f"a pool of {counted(size, 'thread')}", kind_claim, claim("detail", "request.arrived", "threads", size)
    )
    if not handling or not facts.server.observed:
        return pool
    busy = len(facts.server.busy(facts.ms(event)))
    claims = [claim("server_busy", f"@{n}", busy), negate(claim("before", f"@{n}", "request.received"))]
    if facts.response is not None:
        claims.append(claim("before", f"@{n}", "response.sent"))
    free = size - 1 - busy
    if free > 0:
        which = "the free one" if free == 1 else f"one of the {free} free"
        return pool + Sentence(f", this request on one: a new request would get {which}", tuple(claims))
    return pool + Sentence(", all busy, this request on one: a new request would wait in line", tuple(claims))


def waiting_claim(ref: str, waiting: list[Any], at_ms: float) -> str:
    """``server_waiting`` at ``ref`` (``at_ms`` on the trace's clock): how many requests waited for a handler, and
    the oldest's wait as it is shown (0 for none)."""
    oldest = round(max((at_ms - r.arrived_ms for r in waiting), default=0.0), 3)
    return claim("server_waiting", ref, len(waiting), oldest, shown_ms(oldest)[1] if waiting else 0)


def counted(number: int, noun: str) -> str:
    """``1 send``, ``3 sends``: a number with its noun."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


# The email ------------------------------------------------------------------------------------------------------
EMAIL_KINDS = (
    "message.built",
    "send.started",
    "attempt.started",
    "smtp.data_sent",
    "sink.data_received",
    "sink.delay_started",
    *SINK_ENDS,
    "smtp.accepted",
    "smtp.failed",
    "worker.failed",
)


def email_state(facts: Facts, n: int) -> Sentence:
    unsent = facts.unsent
    if unsent is not None and facts.position(unsent) <= facts.position(facts.visible[n - 1]):
        return sentence(
            "Never sent: no mail.send() began for its task",
            claim("happened", "task.unsent"),
            negate(claim("before", f"@{n}", "task.unsent")),
            claim("absent", "send.started"),
        )
    event = latest(facts, n, EMAIL_KINDS)
    if event is None:
        built = facts.first("message.built")
        if built is None:
            return sentence("Not written", claim("absent", "message.built"))
        return sentence("Not written yet", claim("before", f"@{n}", "message.built"))
    ends = tuple(k for k in EMAIL_KINDS if k != event.kind)
    state = Sentence("", tuple(holds(facts, event, n, ends)))
    copies, copy_claims = mailbox_at(facts, n)
    held = in_mailbox(facts, copies, copy_claims)
    d = event.details
    ref = facts.ref(event)
    match event.kind:
        case "message.built":
            return state + "Built, not sent yet"
        case "send.started" | "attempt.started" | "smtp.data_sent":
            return state + (held + "; being sent again" if copies else Sentence("Being sent"))
        case "sink.data_received" | "sink.delay_started":
            return state + (
                held + "; another copy at the sink, waiting for its answer"
                if copies
                else Sentence("At the sink, waiting for its answer")
            )
        case "sink.accepted" | "sink.reply_lost" if not stores_copy(event):
            recognised = sentence(
                f"the sink recognised this copy's Message-ID (message #{d.get('duplicate_of')}) and stored nothing new",
                claim("detail", ref, "duplicate_of", Literal(d.get("duplicate_of"))),
            )
            lost = "; it hung up before its 250" if event.kind == "sink.reply_lost" else ""
            head = held + ": " if copies else Sentence("Not stored again: ")
            return state + head + recognised + lost
        case "sink.accepted" | "sink.reply_lost" if len(copies) > 1:
            again = (
                "accepted again"
                if event.kind == "sink.accepted"
                else "stored again, but the sink hung up before its 250"
            )
            return state + held + f": {again}"
        case "sink.accepted":
            return state + sentence(
                f"Accepted by the sink (message #{d.get('message_id')})",
                claim("detail", ref, "message_id", Literal(d.get("message_id"))),
            )
        case "sink.reply_lost":
            return state + sentence(
                f"In the sink's mailbox (message #{d.get('message_id')}), but the sink hung up before its 250",
                claim("detail", ref, "message_id", Literal(d.get("message_id"))),
                negate(claim("detail", ref, "stored", Literal(False))),
            )
        case "sink.rejected" | "sink.disconnected" | "sink.client_left":
            this = {
                "sink.rejected": f"rejected by the sink ({str(d.get('reply', ''))[:3]})",
                "sink.disconnected": "dropped: the sink hung up",
                "sink.client_left": "dropped: the sink found the client gone",
            }[event.kind]
            return state + (held + f"; this copy {this}" if copies else Sentence(this[0].upper() + this[1:]))
        case "smtp.accepted":
            recognised = [e for e in facts.recognised_copies if facts.position(e) < facts.position(event)]
            if copies and (len(copies) > 1 or recognised):
                return state + "Accepted: the sender saw the 250; " + in_mailbox(facts, copies, copy_claims, "in")
            return state + "Accepted: the sender saw the 250"
        case "smtp.failed" | "worker.failed" if fate_unknown(event):
            return state + _unknown_to_sender(facts, event, held, bool(copies))
        case "smtp.failed":
            return state + (held + "; this try failed" if copies else Sentence("Not delivered by this try"))
    return state + (held + ", though the sender's last try failed" if copies else Sentence("Not delivered"))


def in_mailbox(facts: Facts, copies: list[Event], claims: tuple[str, ...], word: str = "In") -> Sentence:
    """``In the mailbox twice (messages #1 and #2)``; only the claims when there is no copy."""
    if not copies:
        return Sentence("", claims)
    return Sentence(f"{word} the mailbox {times(len(copies))} (", claims) + message_numbers(facts, copies) + ")"


def _unknown_to_sender(facts: Facts, event: Event, held: Sentence, in_mailbox: bool) -> Sentence:
    """The email's state when the sender gave up without knowing its fate: the sink's lane may know better.
    ``held`` says which copies the mailbox holds by now (its claims count them, even when there are none)."""
    ref = facts.ref(event)
    if in_mailbox:
        return held + sentence(
            ", though the sender heard no 250 and cannot tell", claim("none_before", "smtp.accepted", ref)
        )
    conversation = (
        facts.conversation_of(event) if event.kind == "smtp.failed" else facts.last_conversation_before(event)
    )
    lane_end = conversation.sink_end if conversation is not None else None
    if (
        lane_end is not None
        and lane_end.kind not in IN_MAILBOX_ENDS
        and facts.position(lane_end) < facts.position(event)
    ):
        return held + sentence(
            "Not delivered (the sink stored nothing); the sender cannot tell", claim("before", facts.ref(lane_end), ref)
        )
    if unanswered(event):
        return sentence(
            "Fate unknown to the sender: sent in full, no answer came",
            claim("detail", ref, "outcome", Literal("unknown")),
        )
    return sentence(
        "Fate unknown to the sender: an earlier attempt may have delivered it",
        claim("detail", ref, "outcome", Literal("unknown")),
        claim("detail", ref, "answered", Literal(True)),
    )


# Action and Output ------------------------------------------------------------------------------------------------
def describe_action(facts: Facts, event: Event, n: int) -> Sentence:
    d = event.details
    here = claim("happened", f"@{n}")
    ref = facts.ref(event)
    match event.kind:
        case "request.arrived":
            how = "its first bytes read" if d.get("server") == "pooled" else "connection accepted"
            return sentence(
                f"The {d.get('server')} web server has the request ({how})",
                here,
                claim("detail", ref, "server", Literal(d.get("server"))),
            )
        case "gate.parked":
            return sentence(
                f"{event.thread} stops at the gate “{d.get('gate')}” and waits to be released (at most "
                f"{d.get('bound_s'):g} s)",
                here,
                claim("detail", ref, "gate", Literal(d.get("gate"))),
                claim("detail", ref, "bound_s", d.get("bound_s")),
            )
        case "gate.released":
            return _gate_released(facts, event, n)
        case "gate.passed":
            why = "the send is only observed" if d.get("observed", True) else "this send holds its threads elsewhere"
            return sentence(
                f"{event.thread} passes the gate “{d.get('gate')}” without stopping ({why})",
                claim("detail", ref, "gate", Literal(d.get("gate"))),
                claim("detail", ref, "observed", Literal(d.get("observed", True))),
            )
        case "request.received":
            text = f"{d.get('method', 'POST')} {d.get('path', '')}: Flask starts handling it"
            wait = facts.queue_wait_ms
            if wait is not None and wait >= 0.5:
                shown, tol = shown_gap(wait)
                return sentence(
                    f"{text}, after it waited {shown} in the server",
                    claim("gap_ms", "request.arrived", ref, round(wait, 3), tol),
                )
            return sentence(text, here)
        case "message.built":
            return sentence("The route builds the Message from welcome.txt and welcome.html", here)
        case "worker.spawned":
            return sentence(
                f"The route starts thread {d.get('worker')} to run {d.get('target', 'the send')}(app, msg)",
                claim("detail", ref, "worker", Literal(d.get("worker"))),
                claim("same_thread", ref, "request.received"),
            )
        case "worker.started":
            return _worker_started(facts, event, n)
        case "context.pushed":
            if facts.on_request(event):
                return sentence("The route's own app context is in use", here)
            return sentence(
                "The worker pushes app.app_context(), so Flask-Mail can reach the app's settings",
                claim("other_thread", ref, "request.received"),
            )
        case "send.started":
            if facts.on_request(event):
                return sentence(
                    "mail.send(msg) is called on the request's own thread",
                    claim("same_thread", ref, "request.received"),
                )
            if facts.in_coroutine(event) and d.get("via"):
                return _awaited_send(facts, event)
            if event is facts.task_send:
                return task_action(facts, event)
            if facts.coroutine is not None and event.thread_id == facts.coroutine.thread_id:
                return sentence(
                    "The coroutine calls mail.send(msg) itself, with no await: the event loop's own thread sends, "
                    "so the loop can run nothing else until it returns",
                    *_on_loop(facts, event),
                )
            return sentence("The worker calls mail.send(msg)", claim("other_thread", ref, "request.received"))
        case "coroutine.called":
            return _coroutine_called(facts, event)
        case (
            "task.created"
            | "task.started"
            | "task.cancelled"
            | "task.failed"
            | "task.finished"
            | "task.unsent"
            | "loop.closed"
        ):
            return task_action(facts, event)
        case "coroutine.started":
            return _coroutine_started(facts, event)
        case "coroutine.finished":
            return _coroutine_finished(facts, event)
        case "coroutine.failed":
            awaited = "awaited call" if facts.send is None or facts.send.details.get("via") else "call of mail.send()"
            return sentence(
                f"The {awaited} raised, so the coroutine raises too, and app.ensure_sync() raises it again on the "
                f"request's thread: {d.get('error', '')}",
                quoted(ref, d),
                *_on_loop(facts, event),
            )
        case "smtp.connected":
            return sentence(f"smtplib connects to {d.get('server', 'the SMTP server')} and greets it (EHLO)", here)
        case "smtp.data_sent":
            return sentence(f"smtplib sends the message ({d.get('size', '?')} bytes) and waits for the reply", here)
        case "sink.data_received":
            return sentence("The sink receives the message", here)
        case "sink.delay_started":
            return _sink_wait(facts, event)
        case "sink.accepted":
            if stores_copy(event):
                stored = sentence(
                    f"The sink stores message #{d.get('message_id')} and answers 250",
                    claim("detail", ref, "message_id", Literal(d.get("message_id"))),
                )
            else:
                stored = _recognised(facts, event, "answers 250 and stores nothing new")
            conversation = facts.conversation_of(event)
            gave_up = conversation.client_end if conversation is not None else None
            if (
                gave_up is not None
                and gave_up.kind == "smtp.failed"
                and unanswered(gave_up)
                and facts.position(gave_up) < facts.position(event)
            ):
                return stored + sentence(
                    f", which no one reads: the sender gave up waiting at step {facts.step(gave_up)}",
                    claim("before", facts.ref(gave_up), ref),
                    claim("detail", facts.ref(gave_up), "outcome", Literal("unknown")),
                )
            return stored
        case "sink.reply_lost":
            if stores_copy(event):
                return sentence(
                    f"The sink stores message #{d.get('message_id')}, then hangs up without answering 250 (a lost "
                    "reply)",
                    claim("detail", ref, "message_id", Literal(d.get("message_id"))),
                    negate(claim("detail", ref, "stored", Literal(False))),
                )
            return _recognised(facts, event, "stores nothing new, and hangs up without answering 250 (a lost reply)")
        case "sink.client_left":
            return sentence("The client left before the sink answered: the sink's wait ends, nothing is stored", here)
        case "sink.rejected":
            return sentence(f"The sink rejects the message: {d.get('reply', '')}", here)
        case "sink.disconnected":
            return sentence("The sink hangs up without answering", here)
        case "smtp.accepted":
            return sentence("mail.send() returns: the server answered 250 (Flask-Mail's email_dispatched)", here)
        case "smtp.failed":
            return sentence(f"mail.send() raises: {d.get('error', '')}", quoted(ref, d))
        case "pool.queued":
            return sentence(
                f"The route queues the send for a pool of {counted(int(d.get('pool_size', 0)), 'thread')} "
                f"({counted(int(d.get('ahead', 0)), 'send')} already waiting or running)",
                claim("detail", ref, "pool_size", Literal(d.get("pool_size"))),
                claim("detail", ref, "ahead", Literal(d.get("ahead", 0))),
            )
        case "cpu.started":
            return sentence(
                f"The worker computes in pure Python for {float(d.get('work_s', 0)):g} s before it sends; CPython "
                f"passes the GIL between threads every {float(d.get('switch_interval_s', 0)) * 1000:g} ms",
                claim("detail", ref, "work_s", Literal(d.get("work_s"))),
                claim("detail", ref, "switch_interval_s", Literal(d.get("switch_interval_s"))),
            )
        case "cpu.finished":
            return sentence(
                f"The computation ends ({d.get('rounds')} rounds of arithmetic); now the send",
                claim("detail", ref, "rounds", Literal(d.get("rounds"))),
            )
        case "pool.full":
            return sentence(
                f"The pool's queue is full ({d.get('backlog')} sends already wait for its {d.get('pool_size')} "
                "threads), so the route refuses the email instead of queueing it",
                claim("detail", ref, "backlog", Literal(d.get("backlog"))),
                claim("detail", ref, "pool_size", Literal(d.get("pool_size"))),
            )
        case "queue.unavailable":
            return sentence(
                f"The queue's store cannot be reached, so nothing is queued: {d.get('error', '')}", quoted(ref, d)
            )
        case "queue.stored":
            return sentence(
                f"The route stores the send as task {str(d.get('task_id', ''))[:8]} ({d.get('backend', 'Huey')})",
                here,
            )
        case "attempt.started":
            return _attempt_started(facts, event, n)
        case "attempt.failed":
            return _attempt_failed(facts, event, n)
        case "worker.finished":
            return sentence("The worker's send is done: it leaves the app context", here)
        case "count.read":
            return sentence(
                f'{event.thread} reads stats["{d.get("key")}"]: {d.get("value")}',
                claim("detail", ref, "value", Literal(d.get("value"))),
            )
        case "count.written":
            return _count_written(facts, event)
        case "lock.waiting":
            return sentence(
                f"{event.thread} asks for {d.get('lock')}, but {d.get('holder')} holds it: {event.thread} waits",
                claim("detail", ref, "holder", Literal(d.get("holder"))),
            )
        case "lock.acquired":
            return _lock_acquired(facts, event, n)
        case "follow_up.queued":
            return _follow_up_queued(facts, event)
        case "follow_up.waiting":
            return _follow_up_waiting(facts, event)
        case "follow_up.timed_out":
            return _follow_up_timed_out(facts, event)
        case "follow_up.started":
            return sentence(f"{d.get('function')}() runs on {event.thread}", here)
        case "follow_up.finished":
            return sentence(f"{d.get('function')}() returns, and its result goes to the task waiting for it", here)
        case "lock.released":
            return sentence(f"{event.thread} releases {d.get('lock')}", here)
        case "worker.failed":
            return sentence(
                f"The worker ends with an error, which the sandbox records: {d.get('error', '')}", quoted(ref, d)
            )
        case "response.sent":
            return sentence(
                f"Flask hands the HTTP {d.get('status')} response to the web server",
                claim("detail", ref, "status", Literal(d.get("status"))),
            )
    return sentence(event.kind, here)


def _on_loop(facts: Facts, event: Event) -> list[str]:
    """Claims that ``event`` ran on the coroutine's event loop thread, which is not the request's."""
    ref = facts.ref(event)
    claims = [claim("other_thread", ref, "request.received")]
    if facts.coroutine is not None:
        claims.append(claim("same_thread", ref, facts.ref(facts.coroutine)))
    return claims


def _coroutine_called(facts: Facts, event: Event) -> Sentence:
    """The route hands its coroutine to ``ensure_sync``; the request's thread waits for it to end."""
    d = event.details
    ref = facts.ref(event)
    text = (
        f"The route calls app.ensure_sync({d.get('function')})(msg): the view's work is a coroutine, so asgiref runs "
        "it to its end on an event loop"
    )
    claims = [
        claim("same_thread", ref, "request.received"),
        claim("detail", ref, "function", Literal(d.get("function"))),
        claim("detail", ref, "via", Literal(d.get("via"))),
    ]
    if facts.coroutine is not None:
        text += " in another thread"
        claims.append(claim("other_thread", facts.ref(facts.coroutine), "request.received"))
    end = facts.coroutine_end
    response = facts.response
    if end is not None and response is not None and facts.position(end) < facts.position(response):
        text += ", and this thread waits for it"
        claims.append(claim("before", facts.ref(end), "response.sent"))
        claims.append(claim("same_thread", "response.sent", "request.received"))
    return Sentence(text, tuple(claims))


def _coroutine_started(facts: Facts, event: Event) -> Sentence:
    d = event.details
    text = f"The coroutine {d.get('function')}() starts on {event.thread}, the event loop's thread"
    claims = [claim("detail", facts.ref(event), "function", Literal(d.get("function"))), *_on_loop(facts, event)]
    send = facts.send
    if send is not None and send.details.get("via") and facts.in_coroutine(send):
        text += f"; it will await the send through {send.details.get('via')} (step {facts.step(send)})"
        claims += [claim("detail", facts.ref(send), "via", Literal(send.details.get("via"))), facts.shown_at(send)]
    return Sentence(text, tuple(claims))


def _awaited_send(facts: Facts, event: Event) -> Sentence:
    """``mail.send()`` on the executor thread the coroutine awaits, so the event loop itself is not blocked."""
    ref = facts.ref(event)
    via = event.details.get("via")
    claims = [claim("other_thread", ref, "request.received"), claim("detail", ref, "via", Literal(via))]
    text = f"mail.send(msg) is called on {event.thread}, an executor thread"
    if facts.coroutine is not None:
        text += f": the coroutine awaits it through {via} instead of blocking its event loop"
        claims.append(claim("other_thread", ref, facts.ref(facts.coroutine)))
    return Sentence(text, tuple(claims))


def _coroutine_finished(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    claims = _on_loop(facts, event)
    end = facts.send_end
    if end is not None and end.kind == "smtp.accepted" and facts.position(end) < facts.position(event):
        awaited = "awaited " if end.thread_id != event.thread_id else ""
        text = f"The {awaited}mail.send() returned at step {facts.step(end)}, so the coroutine carries on and returns"
        claims.append(claim("before", facts.ref(end), ref))
        claims.append(claim("same_thread" if not awaited else "other_thread", facts.ref(end), ref))
    else:
        text = "The coroutine returns"
    closed, response = facts.loop_closed, facts.response
    if closed is not None:
        text += f"; the request's thread still waits, until the event loop has closed (step {facts.step(closed)})"
        claims += [claim("before", ref, "loop.closed"), facts.shown_at(closed)]
    elif response is not None and facts.position(event) < facts.position(response):
        text += "; app.ensure_sync() returns on the request's thread"
        claims.append(claim("before", ref, "response.sent"))
    return Sentence(text, tuple(claims))


def _recognised(facts: Facts, event: Event, then: str) -> Sentence:
    """An idempotent sink's answer to a copy: it knew the Message-ID of a message it already held."""
    original = event.details.get("duplicate_of")
    return sentence(
        f"The sink recognises the Message-ID of message #{original}, {then}",
        claim("detail", facts.ref(event), "duplicate_of", Literal(original)),
        claim("detail", facts.ref(event), "stored", Literal(False)),
    )


def _worker_started(facts: Facts, event: Event, n: int) -> Sentence:
    ref = facts.ref(event)
    handoff = facts.handoff
    if handoff is None:
        return sentence(f"Thread {event.thread} starts the send", claim("happened", ref))
    gap = facts.gap_ms(handoff, event)
    shown, tol = shown_gap(gap)
    timing = claim("gap_ms", facts.ref(handoff), ref, round(gap, 3), tol)
    match facts.worker_origin:
        case "route":
            return sentence(f"Thread {event.thread} begins, {shown} after the route started it", timing)
        case "pool":
            return sentence(f"Pool thread {event.thread} picks the send up, {shown} after it was queued", timing)
    return sentence(f"Consumer thread {event.thread} takes the task, {shown} after it was stored", timing)


def _sink_wait(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    end = facts.sink_hold_end(event)
    if end is None:
        planned = float(event.details.get("delay_s", 0))
        return sentence(
            f"The sink starts a wait of {planned:g} s before it answers",
            claim("detail", ref, "delay_s", Literal(event.details.get("delay_s"))),
        )
    held = facts.gap_ms(event, end)
    shown, tol = shown_gap(held)
    return sentence(
        f"The sink holds the message: {shown} pass ", claim("gap_ms", ref, facts.ref(end), round(held, 3), tol)
    ) + hold_ending(facts, end, 0)


def _attempt_started(facts: Facts, event: Event, n: int) -> Sentence:
    d = event.details
    attempt = int(d.get("attempt", 1))
    text = f"Attempt {attempt} of {d.get('attempts')}"
    claims = [claim("detail", facts.ref(event), "attempt", Literal(attempt))]
    failed = facts.all("attempt.failed")
    if attempt > 1 and len(failed) >= attempt - 1:
        before = failed[attempt - 2]
        gap = facts.gap_ms(before, event)
        shown, tol = shown_gap(gap)
        text += f", {shown} after attempt {attempt - 1} failed"
        claims.append(claim("gap_ms", facts.ref(before), facts.ref(event), round(gap, 3), tol))
    return Sentence(text, tuple(claims))


def _attempt_failed(facts: Facts, event: Event, n: int) -> Sentence:
    d = event.details
    attempt = int(d.get("attempt", 0))
    ref = facts.ref(event)
    if d.get("policy") == BLIND:
        return _blind_attempt_failed(facts, event)
    if d.get("final") and unanswered(event):
        return sentence(
            f"Attempt {attempt} gets no answer and is not tried again (a retry could deliver the email twice): "
            f"{d.get('error', '')}",
            claim("detail", ref, "final", Literal(True)),
            claim("detail", ref, "outcome", Literal("unknown")),
            quoted(ref, d),
        )
    if d.get("final"):
        return sentence(
            f"Attempt {attempt} fails for good: {d.get('error', '')}",
            claim("detail", ref, "final", Literal(True)),
            quoted(ref, d),
        )
    planned = float(d.get("retry_in_s", 0))
    text = f"Attempt {attempt} fails ({d.get('error', '')}); a retry is planned after {planned:g} s"
    claims = [
        claim("detail", ref, "final", Literal(False)),
        claim("detail", ref, "retry_in_s", Literal(d.get("retry_in_s"))),
        quoted(ref, d),
    ]
    return Sentence(text, tuple(claims)) + _next_attempt_came(facts, event, attempt, "it")


def _blind_attempt_failed(facts: Facts, event: Event) -> Sentence:
    """An attempt of a worker that retries after any error: the error does not decide, the count does."""
    d = event.details
    attempt = int(d.get("attempt", 0))
    ref = facts.ref(event)
    claims = [claim("detail", ref, "policy", Literal(BLIND)), quoted(ref, d)]
    no_answer = unanswered(event)
    if no_answer:
        claims.append(claim("detail", ref, "outcome", Literal("unknown")))
    started = next((e for e in facts.attempts if int(e.details.get("attempt", 0)) == attempt), None)
    if d.get("final"):
        claims.append(claim("detail", ref, "final", Literal(True)))
        of = ""
        if started is not None:
            of = f" of {started.details.get('attempts')}"
            claims.append(claim("detail", facts.ref(started), "attempts", Literal(started.details.get("attempts"))))
            claims.append(claim("detail", facts.ref(started), "attempt", Literal(attempt)))
        how = "gets no answer" if no_answer else "fails"
        return Sentence(
            f"Attempt {attempt}{of} {how}, and the worker allows no more: {d.get('error', '')}", tuple(claims)
        )
    planned = float(d.get("retry_in_s", 0))
    claims += [
        claim("detail", ref, "final", Literal(False)),
        claim("detail", ref, "retry_in_s", Literal(d.get("retry_in_s"))),
    ]
    text = (
        f"Attempt {attempt} fails ({d.get('error', '')}); the worker retries after any error, so it sends the same "
        f"message again after {planned:g} s"
    )
    if no_answer:
        text += ", though this one may already have arrived"
    return Sentence(text, tuple(claims)) + _next_attempt_came(facts, event, attempt, f"attempt {attempt + 1}")


def _count_written(facts: Facts, event: Event) -> Sentence:
    """A worker writes the count back: over the value it read, or over another worker's newer one (a lost update)."""
    d, ref = event.details, facts.ref(event)
    key, value, read, found = d.get("key"), d.get("value"), d.get("read"), d.get("found")
    claims = [claim("detail", ref, name, Literal(d.get(name))) for name in ("value", "read", "found")]
    text = f'{event.thread} writes stats["{key}"] = {value}'
    if found == read:
        return Sentence(f"{text}, over the {found} it read", tuple(claims))
    return Sentence(
        f"{text} over {found}, though it read {read}: another worker wrote {found} after that read, and this write "
        "overwrites it, so that update is lost",
        tuple(claims),
    )


def _holding(facts: Facts, event: Event) -> str:
    """ ", holding <lock>" while the event's thread holds a lock it took (its last take not yet released)."""
    held = None
    for e in facts.events[: facts.position(event) + 1]:
        if e.thread_id == event.thread_id and e.kind in ("lock.acquired", "lock.released"):
            held = e.details.get("lock") if e.kind == "lock.acquired" else None
    return f", holding {held}" if held else ""


def _follow_up_queued(facts: Facts, event: Event) -> Sentence:
    """A task of a pool queues another task on the same pool: who is busy at that moment."""
    d, ref = event.details, facts.ref(event)
    size, busy = int(d.get("pool_size", 0)), list(d.get("busy") or [])
    text = f"{event.thread} queues {d.get('function')}() on {d.get('pool')}, a pool of {counted(size, 'thread')}"
    claims = [claim("detail", ref, "pool_size", Literal(size)), claim("detail", ref, "busy", Literal(busy))]
    if len(busy) >= size:
        text += f"; busy now: {', '.join(busy)}, so the task waits in the pool's queue"
    else:
        text += f"; {counted(size - len(busy), 'thread')} free"
    return Sentence(text, tuple(claims))


def _follow_up_waiting(facts: Facts, event: Event) -> Sentence:
    """A task waits for a follow-up's result: whether any thread of the pool could run the follow-up."""
    d, ref = event.details, facts.ref(event)
    function, timeout = d.get("function"), d.get("timeout_s")
    patience = f" (for at most {timeout:g} s)" if timeout is not None else ""
    text = f"{event.thread} waits for the result of {function}(){patience}"
    claims = [claim("detail", ref, "starved", Literal(d.get("starved"))), claim("detail", ref, "timeout_s", timeout)]
    if d.get("starved"):
        text += (
            f", but every thread of {d.get('pool')} is busy, this one included: no thread is left to run {function}()"
        )
    return Sentence(text, tuple(claims))


def _follow_up_timed_out(facts: Facts, event: Event) -> Sentence:
    """A wait for a follow-up's result gives up: ``.result()`` raises TimeoutError."""
    d = event.details
    waited = facts.before(event, ("follow_up.waiting",), event.thread_id)
    claims = [claim("detail", facts.ref(event), "ran", Literal(d.get("ran")))]
    after = ""
    if waited is not None:
        gap, gap_claim = gap_phrase(facts, waited, event)
        after, claims = f"After {gap}, ", [*claims, gap_claim]
    if d.get("ran"):
        ran = f"{d.get('function')}() had finished too late"
    else:
        ran = (
            f"{d.get('function')}() had not run (it stays in the pool's queue, to run once a thread is free, with "
            "no one waiting for it)"
        )
    return Sentence(f"{after}{event.thread} stops waiting: {ran}, so .result() raises TimeoutError", tuple(claims))


def _lock_acquired(facts: Facts, event: Event, n: int) -> Sentence:
    """A worker takes the lock: at once, or after waiting for its holder to let it go."""
    lock = event.details.get("lock")
    waited = facts.before(event, ("lock.waiting",), event.thread_id)
    if waited is None or event.details.get("waited_ms") == 0:
        return sentence(f"{event.thread} takes {lock}, which was free", claim("happened", f"@{n}"))
    gap, gap_claim = gap_phrase(facts, waited, event)
    holder = waited.details.get("holder")
    return sentence(
        f"{lock} is free again: {event.thread} takes it, after waiting {gap} while {holder} held it",
        gap_claim,
        claim("detail", facts.ref(waited), "holder", Literal(holder)),
    )


def _gate_released(facts: Facts, event: Event, n: int) -> Sentence:
    """Who let a thread go on from its gate, and after how long."""
    ref, gate = facts.ref(event), event.details.get("gate")
    claims = [claim("happened", f"@{n}"), claim("detail", ref, "gate", Literal(gate))]
    by = event.details.get("by")
    claims.append(claim("detail", ref, "by", Literal(by)))
    parked = facts.before(event, ("gate.parked",), event.thread_id)
    if parked is None:
        return Sentence(f"{event.thread} goes on from the gate “{gate}”", tuple(claims))
    waited, waited_claim = gap_phrase(facts, parked, event)
    claims.append(waited_claim)
    if by == BY_YOU:
        return Sentence(f"You release {event.thread} from the gate “{gate}” after {waited}: it goes on", tuple(claims))
    claims.append(claim("detail", facts.ref(parked), "bound_s", parked.details.get("bound_s")))
    return Sentence(
        f"No one released {event.thread} within {parked.details.get('bound_s'):g} s, so the gate “{gate}” lets it go "
        f"by itself after {waited}",
        tuple(claims),
    )


def _next_attempt_came(facts: Facts, failed: Event, attempt: int, named: str) -> Sentence:
    """ "; <named> came <gap> later", when the trace has the attempt after ``attempt`` (empty otherwise)."""
    following = next((e for e in facts.attempts if int(e.details.get("attempt", 0)) == attempt + 1), None)
    if following is None:
        return Sentence("", ())
    gap = facts.gap_ms(failed, following)
    shown, tol = shown_gap(gap)
    return Sentence(
        f"; {named} came {shown} later", (claim("gap_ms", facts.ref(failed), facts.ref(following), round(gap, 3), tol),)
    )


def describe_output(facts: Facts, event: Event, n: int) -> Sentence:
    """What someone watching the client, the mailbox, /api/failures or the shared count would see change; empty
    when nothing."""
    d = event.details
    ref = facts.ref(event)
    match event.kind:
        case "count.written":
            return sentence(
                f'stats["{d.get("key")}"] is now {d.get("value")}',
                claim("detail", ref, "value", Literal(d.get("value"))),
            )
        case "response.sent":
            return sentence(
                f"HTTP {d.get('status')} goes back to the client",
                claim("detail", ref, "status", Literal(d.get("status"))),
            )
        case "sink.accepted" if not stores_copy(event):
            return sentence(
                f"250, and nothing new in the mailbox: it already holds message #{d.get('duplicate_of')}",
                claim("detail", ref, "duplicate_of", Literal(d.get("duplicate_of"))),
            )
        case "sink.accepted":
            copies, copy_claims = mailbox_at(facts, n)
            if len(copies) > 1:
                return Sentence(f"250: the mailbox now holds this email {times(len(copies))} (", copy_claims) + (
                    message_numbers(facts, copies) + ")"
                )
            return sentence("250: the email is in the sink's mailbox", claim("happened", ref))
        case "sink.reply_lost":
            copies, copy_claims = mailbox_at(facts, n)
            if not copies:
                return sentence("The connection drops with no 250", claim("happened", ref))
            return Sentence(
                f"No 250; the connection drops. The mailbox holds this email {times(len(copies))} (", copy_claims
            ) + (message_numbers(facts, copies) + ")")
        case "worker.failed":
            if fate_unknown(event):
                return sentence(
                    "/api/failures lists it with outcome unknown",
                    claim("detail", ref, "outcome", Literal("unknown")),
                )
            return sentence("/api/failures lists the error", claim("happened", ref))
        case "sink.rejected":
            code = str(d.get("reply", ""))[:3]
            return sentence(f"The sink answers {code}", claim("happened", ref))
        case "sink.disconnected":
            return sentence("The connection drops", claim("happened", ref))
        case "coroutine.failed" if facts.response is not None and facts.position(event) < facts.position(
            facts.response
        ):
            return sentence(
                f"The route will answer HTTP {facts.status}",
                claim("before", ref, "response.sent"),
                claim("detail", "response.sent", "status", Literal(facts.status)),
            )
        case "smtp.failed" if facts.on_request(event) and facts.response is not None:
            return sentence(
                f"The route will answer HTTP {facts.status}",
                claim("before", ref, "response.sent"),
                claim("detail", "response.sent", "status", Literal(facts.status)),
            )
    return Sentence("")


# The state tracker ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tracker:
    """Each variable's value at the start, after every step that changed something, and at the end."""

    columns: list[str]
    steps: list[int | None]
    variables: dict[str, list[str]]


def state_tracker(rows: list[Row]) -> Tracker:
    columns: list[str] = []
    steps: list[int | None] = []
    fields = list(rows[0].states) if rows and rows[0].states else list(STATE_FIELDS)
    values: dict[str, list[str]] = {TRACKER_NAMES[name]: [] for name in fields}
    previous: dict[str, str] | None = None
    for row in rows:
        if row.states != previous:
            columns.append(f"After step {row.step}")
            steps.append(row.step)
            for name in fields:
                values[TRACKER_NAMES[name]].append(row.states.get(name, "") or "-")
        previous = row.states
    if rows and steps[-1] != rows[-1].step:
        columns.append(f"Final (step {rows[-1].step})")
        steps.append(rows[-1].step)
        for name in fields:
            values[TRACKER_NAMES[name]].append(rows[-1].states.get(name, "") or "-")
    return Tracker(columns, steps, values)


def step_of(rows: list[Row], kind: str) -> Row | None:
    """The first row produced by an event of ``kind``."""
    return next((row for row in rows if row.kind == kind), None)
