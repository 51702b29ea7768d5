"""HTML pages from Jinja2 templates: one per trace, and an index comparing the modes. Self-contained and offline.

The same templates serve the web app (with a CSP nonce on the inline style and script) and the files run_demo.py
writes (opened straight from disk).
"""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, PackageLoader

from sandbox.render.document import TraceReport
from sandbox.timeline import comparison

MODE_TITLES = {"sync": "Blocking send (sync)", "thread": "Threaded send (thread)"}

environment = Environment(
    loader=PackageLoader("sandbox", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


def trace_title(mode: str) -> str:
    return MODE_TITLES.get(mode, f"{mode} send")


def render_trace_page(result: TraceReport, *, nonce: str | None = None, back_link: str | None = None) -> str:
    return environment.get_template("reports/trace.html").render(
        result=result, trace=result.trace, title=trace_title(result.trace.mode), nonce=nonce, back_link=back_link
    )


def render_index_page(results: Sequence[TraceReport]) -> str:
    """The modes side by side; links point at the ``<mode>.*`` files written next to it."""
    delays = {r.trace.delay_s for r in results}
    return environment.get_template("reports/index.html").render(
        entries=[{"mode": r.trace.mode, "result": r} for r in results],
        comparison=comparison([r.trace for r in results]),
        delay_s=delays.pop() if len(delays) == 1 else None,
    )
