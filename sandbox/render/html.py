"""HTML pages from Jinja2 templates: one per trace, and an index comparing the modes. Self-contained and offline.

The same templates serve the web app (with a CSP nonce on the inline style and script) and the files run_demo.py
writes (opened straight from disk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader

from sandbox.clock import format_ms
from sandbox.modes import title
from sandbox.render.document import TraceReport
from sandbox.source import Excerpt, trace_excerpts
from sandbox.timeline import comparison

environment = Environment(
    loader=PackageLoader("sandbox", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


def steps_data(result: TraceReport, excerpts: dict[str, Excerpt]) -> dict[str, Any]:
    """What the stepper's script reads: the rows, the moment for each step, and which excerpt holds each line."""
    by_location = {}
    for key, excerpt in excerpts.items():
        for offset in range(len(excerpt.lines)):
            by_location[(excerpt.file, excerpt.first_line + offset)] = key
    moments: dict[str, dict[str, str]] = {}
    for moment in result.moments:
        moments.setdefault(str(moment.step), {"title": moment.title, "text": moment.text})
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
            "excerpt": by_location.get((row.file, row.line), ""),
        }
        for row in result.rows
    ]
    return {"rows": rows, "moments": moments}


environment.globals["steps_data"] = steps_data


def render_trace_page(
    result: TraceReport, *, nonce: str | None = None, back_link: str | None = None, back_label: str = "All modes"
) -> str:
    return environment.get_template("reports/trace.html").render(
        result=result,
        trace=result.trace,
        title=title(result.trace.mode),
        excerpts=trace_excerpts(result.trace),
        nonce=nonce,
        back_link=back_link,
        back_label=back_label,
    )


def render_index_page(results: Sequence[TraceReport]) -> str:
    """The modes side by side; links point at the ``<mode>.*`` files written next to it."""
    delays = {r.trace.delay_s for r in results}
    return environment.get_template("reports/index.html").render(
        entries=[{"mode": r.trace.mode, "result": r} for r in results],
        comparison=comparison([r.trace for r in results]),
        delay_s=delays.pop() if len(delays) == 1 else None,
    )
