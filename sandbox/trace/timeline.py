"""Timelines drawn to scale from the timestamps: swimlanes for one trace, and sync beside thread on one axis.

These functions compute geometry only (lanes, spans, markers, ticks in milliseconds); the templates draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sandbox.trace.facts import SEND_ENDS, SINK_ENDS
from sandbox.trace.tracer import SINK_THREAD_NAME, Event, Trace

TASK_ENDS = ("task.finished", "task.failed", "task.cancelled")
COROUTINE_ENDS = ("coroutine.finished", "coroutine.failed")


@dataclass(frozen=True)
class Span:
    label: str
    start_ms: float
    end_ms: float
    kind: str  # "request", "blocked", "worker", "waiting", "delay"


@dataclass(frozen=True)
class Marker:
    label: str
    at_ms: float
    kind: str  # "response" or "accepted"


@dataclass
class Lane:
    name: str
    thread: str
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    lanes: list[Lane]
    markers: list[Marker]
    total_ms: float
    ticks: list[float]


def timeline(trace: Trace) -> Timeline:
    """Request thread, worker thread and SMTP sink lanes, each span from one event to another of this trace: one
    wait per SMTP conversation and one hold per message the sink had, so retries show as separate bars."""
    at = _Times(trace)
    received = trace.first("request.received")
    request = Lane("Request thread", received.thread if received else "request")
    _span(request, "waiting for a handler", at("request.arrived"), at("request.received"), "waiting")
    _span(request, "handling the request", at("request.received"), at.first("response.sent"), "request")
    lanes = [request]
    if trace.mode == "sync":
        _span(request, "blocked in mail.send()", at("send.started"), at.first(*SEND_ENDS), "blocked")
    coroutine = trace.first("coroutine.started")
    if coroutine is not None:
        lanes += _event_loop_lanes(trace, at, request, coroutine)
    worker_event = trace.first("worker.started")
    if worker_event is not None:
        worker = Lane("Worker thread", worker_event.thread)
        _span(worker, "worker thread", at("worker.started"), at.first("worker.finished", "worker.failed"), "worker")
        for sent, answered in at.each("smtp.data_sent", SEND_ENDS, same_thread=True):
            _span(worker, "waiting for the SMTP server", sent, answered, "waiting")
        lanes.append(worker)
    if trace.first("sink.data_received") is not None:
        sink = Lane("SMTP sink", SINK_THREAD_NAME)
        for held, ended in at.each("sink.delay_started", SINK_ENDS, same_thread=False):
            _span(sink, "holding the email", held, ended, "delay")
        lanes.append(sink)
    markers = []
    if (response := at("response.sent")) is not None:
        markers.append(Marker("response sent", response, "response"))
    if (accepted := at("sink.accepted")) is not None:
        markers.append(Marker("email accepted", accepted, "accepted"))
    total = max((e.t_ns - trace.started_ns) / 1e6 for e in trace.events) if trace.events else 0.0
    return Timeline(lanes, markers, total, nice_ticks(total))


class _Times:
    """Milliseconds from the trace's start: of an event kind's first event, or of pairs of events."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.start = trace.started_ns

    def __call__(self, kind: str) -> float | None:
        event = self.trace.first(kind)
        return None if event is None else (event.t_ns - self.start) / 1e6

    def first(self, *kinds: str) -> float | None:
        """The first of ``kinds`` (in the order given) that happened."""
        return next((t for t in map(self, kinds) if t is not None), None)

    def each(self, begin: str, ends: tuple[str, ...], same_thread: bool) -> list[tuple[float, float]]:
        """From every ``begin`` event to the first of ``ends`` after it (on its thread, if ``same_thread``)."""
        pairs = []
        for opened in self.trace.events_of(begin):
            closed = next(
                (
                    e
                    for e in self.trace.events
                    if e.t_ns >= opened.t_ns and e.kind in ends and (not same_thread or e.thread_id == opened.thread_id)
                ),
                None,
            )
            if closed is not None:
                pairs.append(((opened.t_ns - self.start) / 1e6, (closed.t_ns - self.start) / 1e6))
        return pairs


def _event_loop_lanes(trace: Trace, at: _Times, request: Lane, coroutine: Event) -> list[Lane]:
    """An async view: the request waits in ensure_sync until the loop has closed; the loop's thread runs the view's
    coroutine, then closes; a task the view created runs on the same thread; a send handed to a thread has a lane."""
    view_end = next((e for e in trace.events if e.kind in COROUTINE_ENDS), None)
    _span(
        request,
        "waiting in app.ensure_sync()",
        at("coroutine.called"),
        at.first("loop.closed", *COROUTINE_ENDS),
        "blocked",
    )
    loop = Lane("Event loop thread", coroutine.thread)
    sent = trace.first("send.started")
    by_view = sent is not None and (view_end is None or sent.t_ns <= view_end.t_ns)
    if not by_view:
        doing = "the view's coroutine"
    elif sent is not None and sent.thread_id == coroutine.thread_id:
        doing = "the coroutine, blocked in mail.send()"
    else:
        doing = "the coroutine, awaiting the send"
    _span(loop, doing, at("coroutine.started"), at.first(*COROUTINE_ENDS), "worker")
    _span(loop, "the loop closing (asyncio.run)", at.first(*COROUTINE_ENDS), at("loop.closed"), "waiting")
    lanes = [loop]
    task = trace.first("task.started")
    if task is not None:
        lane = Lane("Task on the event loop", task.thread)
        how = next((e.kind.removeprefix("task.") for e in trace.events if e.kind in TASK_ENDS), "running")
        created = trace.first("task.created")
        name = created.details.get("task") if created is not None else "the task"
        label = f"{name}: {task.details.get('function')}(), {how}"
        _span(lane, label, at("task.started"), at.first(*TASK_ENDS), "worker")
        lanes.append(lane)
    if sent is not None and sent.thread_id != coroutine.thread_id:
        executor = Lane("Executor thread", sent.thread)
        for data_sent, answered in at.each("smtp.data_sent", SEND_ENDS, same_thread=True):
            _span(executor, "waiting for the SMTP server", data_sent, answered, "waiting")
        lanes.append(executor)
    return lanes


def _span(lane: Lane, label: str, start: float | None, end: float | None, kind: str) -> None:
    if start is not None and end is not None:
        lane.spans.append(Span(label, start, end, kind))


@dataclass(frozen=True)
class ComparisonBar:
    mode: str
    response_ms: float | None
    accepted_ms: float | None
    trace_id: str


@dataclass(frozen=True)
class Comparison:
    bars: list[ComparisonBar]
    total_ms: float
    ticks: list[float]


def comparison(traces: list[Trace]) -> Comparison:
    """Response and acceptance times of several traces (sync and thread) on one shared axis."""
    bars = [ComparisonBar(t.mode, t.response_ms, t.accepted_ms, t.trace_id) for t in traces]
    times = [ms for bar in bars for ms in (bar.response_ms, bar.accepted_ms) if ms is not None]
    total = max(times, default=0.0)
    return Comparison(bars, total, nice_ticks(total))


def nice_ticks(total_ms: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) from 0 up to at least ``total_ms``."""
    if total_ms <= 0:
        return [0.0]
    raw = total_ms / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(total_ms / step) + 1)]
