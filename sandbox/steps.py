"""From a trace's events to the rows a student steps through: Step | Action | Thread State | Main App State | Output.

Everything here is derived from the recorded events, in the order of their timestamps: the states are what the
events imply, so a row can never claim something the clock contradicts. The state tracker is the same walk, seen
per variable instead of per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sandbox.tracer import Event, Trace

# Events too fine-grained for the table (they stay in the JSON and the Perfetto timeline).
HIDDEN_KINDS = frozenset({"smtp.connecting", "smtp.command"})

NO_WORKER = "No worker thread"
NOT_STARTED = "Not started"
QUEUED = "Queued, waiting for a worker"
RUNNING = "Running"
RETRY_WAIT = "Waiting to retry"
WAITING = "Waiting for the SMTP server"
FINISHED = "Finished"
FAILED = "Failed"

IDLE = "Ready for new requests"
HANDLING = "Handling the request"
BLOCKED = "Blocked in mail.send()"
RESPONDED = "Response sent"

EMAIL_NOT_WRITTEN = "Not written yet"
EMAIL_BUILT = "Built, not sent"
EMAIL_SENDING = "Being sent"
EMAIL_AT_SINK = "At the sink, waiting for its 250"
EMAIL_ACCEPTED = "Accepted by the sink"
EMAIL_REFUSED = "Refused by the server"
EMAIL_FAILED = "Not delivered"

THREAD_STATES = (NO_WORKER, NOT_STARTED, QUEUED, RUNNING, WAITING, RETRY_WAIT, FINISHED, FAILED)
MAIN_APP_STATES = (IDLE, HANDLING, BLOCKED, RESPONDED)


@dataclass(frozen=True)
class State:
    """What the worker thread, the request-handling side and the email are doing between two events."""

    worker: str
    main_app: str
    email: str


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def initial_state(trace: Trace) -> State:
    return State(NO_WORKER if trace.mode == "sync" else NOT_STARTED, IDLE, EMAIL_NOT_WRITTEN)


def visible_events(trace: Trace) -> list[Event]:
    return [e for e in trace.events if e.kind not in HIDDEN_KINDS]


def next_state(state: State, event: Event, request_thread: int) -> State:
    """The state once ``event`` has happened; ``request_thread`` tells the request's side from a worker's."""
    on_request = event.thread_id == request_thread
    worker, main_app, email = state.worker, state.main_app, state.email
    if main_app == RESPONDED:
        main_app = IDLE
    match event.kind:
        case "request.received":
            main_app = HANDLING
        case "message.built":
            email = EMAIL_BUILT
        case "pool.queued" | "queue.stored":
            worker = QUEUED
        case "worker.started" | "context.pushed" | "attempt.started":
            worker = RUNNING
        case "send.started":
            email = EMAIL_SENDING
            if on_request:
                main_app = BLOCKED
        case "smtp.data_sent" | "sink.data_received" | "sink.delay_started":
            email = EMAIL_AT_SINK
            if state.worker in (RUNNING, WAITING):
                worker = WAITING
        case "sink.accepted":
            email = EMAIL_ACCEPTED
        case "smtp.accepted":
            if on_request:
                main_app = HANDLING
            else:
                worker = RUNNING
        case "smtp.failed":
            if on_request:
                email, main_app = EMAIL_FAILED, HANDLING
            else:
                email, worker = EMAIL_REFUSED, RUNNING
        case "sink.client_left" | "sink.rejected" | "sink.disconnected":
            email = EMAIL_REFUSED
        case "attempt.failed":
            if not event.details.get("final"):
                worker = RETRY_WAIT
        case "worker.finished":
            worker = FINISHED
        case "worker.failed":
            worker, email = FAILED, EMAIL_FAILED
        case "response.sent":
            main_app = RESPONDED
    return State(worker, main_app, email)


def execution_table(trace: Trace) -> list[Row]:
    """One row per visible event, numbered from 1, with the state after it and what an observer would see."""
    events = visible_events(trace)
    if not events:
        return []
    request_thread = events[0].thread_id
    state = initial_state(trace)
    rows = []
    for number, event in enumerate(events, start=1):
        state = next_state(state, event, request_thread)
        rows.append(
            Row(
                step=number,
                action=describe_action(event, event.thread_id == request_thread),
                thread_state=state.worker,
                main_app_state=state.main_app,
                output=describe_output(event, event.thread_id == request_thread),
                t_ms=round((event.t_ns - trace.started_ns) / 1e6, 3),
                thread=event.thread,
                kind=event.kind,
                email_state=state.email,
                file=event.file,
                line=event.line,
                function=event.function,
            )
        )
    return rows


def describe_action(event: Event, on_request: bool) -> str:
    d = event.details
    match event.kind:
        case "request.received":
            return f"{d.get('method', 'POST')} {d.get('path', '')} arrives; Flask starts handling it"
        case "message.built":
            return "The route builds the Message, rendering welcome.txt and welcome.html"
        case "worker.started":
            return f"Worker thread {d.get('worker', event.thread)} starts running {event.function or 'its target'}()"
        case "context.pushed":
            return "The worker pushes app.app_context(), so Flask-Mail can read the app's settings"
        case "send.started":
            where = "on the request's own thread" if on_request else "inside the worker"
            return f"mail.send(msg) is called {where}"
        case "smtp.connected":
            return f"smtplib connects to {d.get('server', 'the SMTP server')} and greets it (EHLO)"
        case "smtp.data_sent":
            return f"smtplib sends the message ({d.get('size', '?')} bytes) and waits for the server's reply"
        case "sink.data_received":
            return "The sink receives the message data"
        case "sink.delay_started":
            return f"The sink waits {d.get('delay_s', 0):g} s before answering, like a slow real server"
        case "sink.accepted":
            return f"The sink stores message #{d.get('message_id', '?')} and answers 250"
        case "sink.client_left":
            return "The sink finds the client gone when its wait ends and keeps nothing"
        case "smtp.accepted":
            return "mail.send() returns: Flask-Mail saw the 250 and fires email_dispatched"
        case "smtp.failed":
            return f"mail.send() fails: {d.get('error', '')}"
        case "pool.queued":
            return (
                f"The route queues the send for a pool of {d.get('pool_size', '?')} worker threads "
                f"({d.get('ahead', 0)} sends already waiting or running)"
            )
        case "queue.stored":
            return (
                f"The route stores the send as task {str(d.get('task_id', ''))[:8]} in the queue "
                f"({d.get('backend', 'Huey')}); once stored, it can answer"
            )
        case "attempt.started":
            return f"Attempt {d.get('attempt', '?')} of {d.get('attempts', '?')}"
        case "attempt.failed":
            if d.get("final"):
                return f"Attempt {d.get('attempt', '?')} failed for good: {d.get('error', '')}"
            return (
                f"Attempt {d.get('attempt', '?')} failed ({d.get('error', '')}); "
                f"the worker waits {d.get('retry_in_s', 0):g} s before trying again"
            )
        case "sink.rejected":
            return f"The sink rejects the message: {d.get('reply', '')}"
        case "sink.disconnected":
            return "The sink hangs up without answering (a dropped connection)"
        case "worker.finished":
            return "The worker leaves the app context and its thread ends"
        case "worker.failed":
            return f"The worker catches the error and records it: {d.get('error', '')}"
        case "response.sent":
            return f"Flask hands the HTTP {d.get('status', '')} response to the web server"
    return event.kind


def describe_output(event: Event, on_request: bool) -> str:
    """What someone watching the browser, the mailbox or /api/failures would see change; '' when nothing."""
    d = event.details
    match event.kind:
        case "response.sent":
            return f"HTTP {d.get('status', '')} reaches the browser"
        case "sink.accepted":
            return "The sink accepts the email: 250 OK"
        case "worker.failed":
            return "No page shows it, but /api/failures lists the error"
        case "smtp.failed":
            return "The failure is recorded; the route will answer with an error" if on_request else ""
        case "sink.rejected":
            return f"The sink answers {str(d.get('reply', ''))[:3]}"
        case "sink.disconnected":
            return "The connection drops"
    return ""


@dataclass(frozen=True)
class Tracker:
    """Each variable's value at the start, after every step that changed something, and at the end."""

    columns: list[str]
    steps: list[int | None]
    variables: dict[str, list[str]]


def state_tracker(trace: Trace) -> Tracker:
    rows = execution_table(trace)
    start = initial_state(trace)
    columns, steps = ["Start"], [None]
    values = {"Worker thread": [start.worker], "Main app": [start.main_app], "Email": [start.email]}
    previous = start
    for row in rows:
        state = State(row.thread_state, row.main_app_state, row.email_state)
        if state != previous:
            columns.append(f"After step {row.step}")
            steps.append(row.step)
            for name, value in zip(values, (state.worker, state.main_app, state.email), strict=True):
                values[name].append(value)
        previous = state
    columns.append("Final")
    steps.append(rows[-1].step if rows else None)
    final_main_app = IDLE if previous.main_app == RESPONDED else previous.main_app  # the request is over
    for name, value in zip(values, (previous.worker, final_main_app, previous.email), strict=True):
        values[name].append(value)
    return Tracker(columns, steps, values)


def step_of(rows: list[Row], kind: str) -> Row | None:
    """The first row produced by an event of ``kind``."""
    return next((row for row in rows if row.kind == kind), None)
