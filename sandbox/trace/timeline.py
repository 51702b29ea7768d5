"""Timelines drawn to scale from the timestamps: swimlanes for one trace, and sync beside thread on one axis.

These functions compute geometry only (lanes, spans, markers, ticks in milliseconds); the templates draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sandbox.trace.facts import SINK_ENDS
from sandbox.trace.tracer import SINK_THREAD_NAME, Trace

CLIENT_ENDS = ("smtp.accepted", "smtp.failed")


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
    start = trace.started_ns

    def at(kind: str) -> float | None:
        event = trace.first(kind)
        return None if event is None else (event.t_ns - start) / 1e6

    def end_of(*kinds: str) -> float | None:
        return next((t for t in map(at, kinds) if t is not None), None)

    def each(begin: str, ends: tuple[str, ...], same_thread: bool) -> list[tuple[float, float]]:
        """From every ``begin`` event to the first of ``ends`` after it (on its thread, if ``same_thread``)."""
        pairs = []
        for opened in trace.events_of(begin):
            closed = next(
                (
                    e
                    for e in trace.events
                    if e.t_ns >= opened.t_ns and e.kind in ends and (not same_thread or e.thread_id == opened.thread_id)
                ),
                None,
            )
            if closed is not None:
                pairs.append(((opened.t_ns - start) / 1e6, (closed.t_ns - start) / 1e6))
        return pairs

    received = trace.first("request.received")
    request = Lane("Request thread", received.thread if received else "request")
    _span(request, "waiting for a handler", at("request.arrived"), at("request.received"), "waiting")
    _span(request, "handling the request", at("request.received"), end_of("response.sent"), "request")
    lanes = [request]
    if trace.mode == "sync":
        _span(request, "blocked in mail.send()", at("send.started"), end_of("smtp.accepted", "smtp.failed"), "blocked")
    coroutine = trace.first("coroutine.started")
    if coroutine is not None:  # an async view: the request waits in ensure_sync while the coroutine runs elsewhere
        ended = ("coroutine.finished", "coroutine.failed")
        _span(request, "waiting in app.ensure_sync()", at("coroutine.called"), end_of(*ended), "blocked")
        loop = Lane("Event loop thread", coroutine.thread)
        sent = trace.first("send.started")
        on_loop = sent is not None and sent.thread_id == coroutine.thread_id
        doing = "the coroutine, blocked in mail.send()" if on_loop else "the coroutine, awaiting the send"
        _span(loop, doing, at("coroutine.started"), end_of(*ended), "worker")
        lanes.append(loop)
        if sent is not None and sent.thread_id != coroutine.thread_id:
            executor = Lane("Executor thread", sent.thread)
            for data_sent, answered in each("smtp.data_sent", CLIENT_ENDS, same_thread=True):
                _span(executor, "waiting for the SMTP server", data_sent, answered, "waiting")
            lanes.append(executor)
    worker_event = trace.first("worker.started")
    if worker_event is not None:
        worker = Lane("Worker thread", worker_event.thread)
        _span(worker, "worker thread", at("worker.started"), end_of("worker.finished", "worker.failed"), "worker")
        for sent, answered in each("smtp.data_sent", CLIENT_ENDS, same_thread=True):
            _span(worker, "waiting for the SMTP server", sent, answered, "waiting")
        lanes.append(worker)
    if trace.first("sink.data_received") is not None:
        sink = Lane("SMTP sink", SINK_THREAD_NAME)
        for held, ended in each("sink.delay_started", SINK_ENDS, same_thread=False):
            _span(sink, "holding the email", held, ended, "delay")
        lanes.append(sink)
    markers = []
    if (response := at("response.sent")) is not None:
        markers.append(Marker("response sent", response, "response"))
    if (accepted := at("sink.accepted")) is not None:
        markers.append(Marker("email accepted", accepted, "accepted"))
    total = max((e.t_ns - start) / 1e6 for e in trace.events) if trace.events else 0.0
    return Timeline(lanes, markers, total, nice_ticks(total))


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
