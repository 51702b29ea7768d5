"""Everything derived from one trace, gathered once: the JSON document and the input of every other renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.trace.facts import NOT_OBSERVED, Facts, ServerView
from sandbox.trace.moments import Moment, key_moments
from sandbox.trace.quiz import QUIZ_KINDS, Question, make_quiz
from sandbox.trace.steps import Row, Tracker, rows_from, state_tracker
from sandbox.trace.timeline import Timeline, timeline
from sandbox.trace.tracer import Trace

ROW_FIELDS = ("action", "thread_state", "main_app_state", "output")


@dataclass(frozen=True)
class TraceReport:
    """A trace with its views; built by :func:`report`, read by the HTML, Markdown and terminal renderers."""

    trace: Trace
    facts: Facts
    rows: list[Row]
    tracker: Tracker
    moments: list[Moment]
    timeline: Timeline
    quiz: list[Question]
    other: Facts | None = None

    @property
    def server(self) -> ServerView:
        return self.facts.server


def report(
    trace: Trace,
    seed: int = 0,
    other: Trace | None = None,
    kinds: Sequence[str] = QUIZ_KINDS,
    server: ServerView = NOT_OBSERVED,
    other_server: ServerView = NOT_OBSERVED,
) -> TraceReport:
    """The views of ``trace``; ``other`` is the other send of the same comparison, if there was one."""
    facts = Facts(trace, server)
    other_facts = Facts(other, other_server, prefix="other:") if other is not None else None
    rows = rows_from(facts)
    return TraceReport(
        trace,
        facts,
        rows,
        state_tracker(rows),
        key_moments(facts),
        timeline(trace),
        make_quiz(facts, rows, seed, other_facts, kinds),
        other_facts,
    )


def claims_of(result: TraceReport) -> list[dict[str, Any]]:
    """Every sentence a student reads in this report, where it is shown, and the claims that make it true."""
    entries = []
    for index, row in enumerate(result.rows):
        for name in ROW_FIELDS:
            text = getattr(row, name)
            if text:
                entries.append({"where": f"steps[{index}].{name}", "text": text, "claims": list(row.claims[name])})
    for index, moment in enumerate(result.moments):
        entries.append({"where": f"key_moments[{index}].text", "text": moment.text, "claims": list(moment.claims)})
    for index, question in enumerate(result.quiz):
        texts = {"question": question.question, "explanation": question.explanation}
        texts |= {f"options[{i}]": option for i, option in enumerate(question.options)}
        texts |= {f"feedback[{i}]": feedback for i, feedback in enumerate(question.feedback)}
        for key, text in texts.items():
            entries.append({"where": f"quiz[{index}].{key}", "text": text, "claims": list(question.claims[key])})
    return entries


def events_json(trace: Trace) -> list[dict[str, Any]]:
    start = trace.started_ns
    return [
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
    ]


def trace_document(result: TraceReport) -> dict[str, Any]:
    """The trace JSON of the contract (DESIGN.md), with the tracker, key moments, the server's view of the send,
    and every sentence's claims beside the steps and quiz."""
    trace = result.trace
    other = result.other
    return {
        "trace_id": trace.trace_id,
        "mode": trace.mode,
        "delay_s": trace.delay_s,
        "server": result.server.to_dict() | {"kind": result.facts.server_kind},
        "complete": trace.complete,
        "response_ms": _round(trace.response_ms),
        "accepted_ms": _round(trace.accepted_ms),
        "outcome": result.facts.outcome,
        "comparison": trace.comparison,
        "settings": dict(trace.settings),
        "versions": dict(trace.versions),
        "events": events_json(trace),
        "steps": [row.to_dict() for row in result.rows],
        "tracker": asdict(result.tracker),
        "key_moments": [m.to_dict() for m in result.moments],
        "quiz": [q.to_dict() for q in result.quiz],
        "claims": claims_of(result),
        "compared_with": None
        if other is None
        else {
            "trace_id": other.trace.trace_id,
            "mode": other.trace.mode,
            "response_ms": _round(other.trace.response_ms),
            "accepted_ms": _round(other.trace.accepted_ms),
            "events": events_json(other.trace),
            "steps": [row.to_dict() for row in rows_from(other)],
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
