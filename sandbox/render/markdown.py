"""Markdown from a Jinja2 template: the tables and the quiz (answers folded away), readable on a code host."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader

from sandbox.explorer import Exploration, summary, yes_no
from sandbox.render.document import TraceReport
from sandbox.strategies.labels import title


def markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no raw HTML, no column breaks, one line."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    text = text.replace("[", "\\[").replace("]", "\\]")  # no link or image from text that came from outside
    return text.replace("\r", " ").replace("\n", " ")


environment = Environment(
    loader=PackageLoader("sandbox.render", "templates"),
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
environment.filters["cell"] = markdown_cell


def render_exploration_markdown(exploration: Exploration) -> str:
    return environment.get_template("reports/explore.md").render(
        e=exploration, summary=summary(exploration), yes_no=yes_no
    )


def render_trace_markdown(result: TraceReport) -> str:
    return environment.get_template("reports/trace.md").render(
        result=result, trace=result.trace, title=title(result.trace.mode)
    )
