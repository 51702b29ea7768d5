"""Everything derived from one trace, gathered once: the JSON document and the input of every other renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.moments import Moment, key_moments
from sandbox.quiz import QUIZ_KINDS, Question, make_quiz
from sandbox.steps import Row, Tracker, execution_table, state_tracker
from sandbox.timeline import Timeline, timeline
from sandbox.tracer import Trace


@dataclass(frozen=True)
class TraceReport:
    """A trace with its views; built by :func:`report`, read by the HTML, Markdown and terminal renderers."""

    trace: Trace
    rows: list[Row]
    tracker: Tracker
    moments: list[Moment]
    timeline: Timeline
    quiz: list[Question]


def report(trace: Trace, seed: int = 0, other: Trace | None = None, kinds: Sequence[str] = QUIZ_KINDS) -> TraceReport:
    return TraceReport(
        trace,
        execution_table(trace),
        state_tracker(trace),
        key_moments(trace),
        timeline(trace),
        make_quiz(trace, seed, other, kinds),
    )


def trace_document(result: TraceReport) -> dict[str, Any]:
    """The trace JSON of the contract (DESIGN.md), with the tracker and key moments beside the steps and quiz."""
    trace = result.trace
    start = trace.started_ns
    return {
        "trace_id": trace.trace_id,
        "mode": trace.mode,
        "delay_s": trace.delay_s,
        "server": trace.server,
        "complete": trace.complete,
        "response_ms": _round(trace.response_ms),
        "accepted_ms": _round(trace.accepted_ms),
        "settings": dict(trace.settings),
        "versions": dict(trace.versions),
        "events": [
            {
                "t_ms": round((e.t_ns - start) / 1e6, 3),
                "thread": e.thread,
                "thread_id": e.thread_id,
                "kind": e.kind,
                "details": dict(e.details),
                "file": e.file,
                "line": e.line,
                "function": e.function,
            }
            for e in trace.events
        ],
        "steps": [row.to_dict() for row in result.rows],
        "tracker": asdict(result.tracker),
        "key_moments": [m.to_dict() for m in result.moments],
        "quiz": [q.to_dict() for q in result.quiz],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
