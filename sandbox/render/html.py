"""HTML pages from Jinja2 templates: one per trace, and an index comparing the modes. Self-contained and offline.

The same templates serve the web app (with a CSP nonce on the inline style and script) and the files run_demo.py
writes (opened straight from disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader

from sandbox.explorer import Exploration, summary, yes_no
from sandbox.render.code_panes import panes, step_marks
from sandbox.render.document import TraceReport
from sandbox.strategies.labels import title
from sandbox.trace.clock import format_ms
from sandbox.trace.timeline import comparison

environment = Environment(
    loader=PackageLoader("sandbox.render", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


def steps_data(result: TraceReport) -> dict[str, Any]:
    """What the stepper's script reads: the rows, the moment for each step, and each thread's marked line."""
    moments: dict[str, dict[str, str]] = {}
    for moment in result.moments:
        moments.setdefault(str(moment.step), {"title": moment.title, "text": moment.text})
    marks = step_marks(result.rows)
    rows = [
        {
            "step": row.step,
            "time": format_ms(row.t_ms),
            "thread": row.thread,
            "action": row.action,
            "thread_state": row.thread_state,
            "main_app_state": row.main_app_state,
            "email_state": row.email_state,
            "output": row.output,
            "file": row.file,
            "line": row.line,
            "function": row.function,
            "marks": [mark.to_dict() for mark in marks[n]],
        }
        for n, row in enumerate(result.rows)
    ]
    return {"rows": rows, "moments": moments}


environment.globals["steps_data"] = steps_data


def render_trace_page(
    result: TraceReport,
    *,
    nonce: str | None = None,
    back_link: str | None = None,
    back_label: str = "All modes",
    folded: bool = False,
    answers_url: str | None = None,
) -> str:
    """The trace page. ``folded`` (the live sandbox) closes the table, tracker and quiz below the stepper so the first
    screen holds the timeline, the stepper and the code; a written file keeps them open, as print does.
    ``answers_url`` (the live sandbox) is where the quiz reports each first answer, for the instructor's view."""
    return environment.get_template("reports/trace.html").render(
        result=result,
        trace=result.trace,
        title=title(result.trace.mode),
        panes=panes(result.rows),
        nonce=nonce,
        back_link=back_link,
        back_label=back_label,
        folded=folded,
        answers_url=answers_url,
    )


def render_exploration_page(exploration: Exploration) -> str:
    """Every ordering of a scenario, with how often each came up when nobody held the threads."""
    return environment.get_template("reports/explore.html").render(
        e=exploration, summary=summary(exploration), yes_no=yes_no
    )


def render_index_page(results: Sequence[TraceReport]) -> str:
    """The modes side by side; links point at the ``<mode>.*`` files written next to it."""
    delays = {r.trace.delay_s for r in results}
    return environment.get_template("reports/index.html").render(
        entries=[{"mode": r.trace.mode, "result": r} for r in results],
        comparison=comparison([r.trace for r in results]),
        delay_s=delays.pop() if len(delays) == 1 else None,
    )
