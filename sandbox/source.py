"""The sandbox's own source, cut into the functions a trace's events point at, for the code panel.

Each excerpt is one top-level function (or method) around an event's line, found with ``ast``, so a student sees
the whole strategy the step came from, with the line that produced it highlighted.
"""

from __future__ import annotations

import ast
import functools
import threading
from dataclasses import dataclass
from pathlib import Path

from sandbox.tracer import PROJECT_DIR, Trace


@dataclass(frozen=True)
class Excerpt:
    """Lines ``first_line`` to ``first_line + len(lines) - 1`` of ``file``: one function."""

    key: str
    file: str
    function: str
    first_line: int
    lines: tuple[str, ...]


def excerpt_for(file: str, line: int) -> Excerpt | None:
    """The outermost function or method in ``file`` (relative to the project) that contains ``line``."""
    source = _source(file)
    if source is None:
        return None
    text, tree = source
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _span(node)[0] <= line <= node.end_lineno:
            first, last = _span(node)
            return Excerpt(f"{file}:{first}", file, node.name, first, tuple(text.splitlines()[first - 1 : last]))
    return None


def trace_excerpts(trace: Trace) -> dict[str, Excerpt]:
    """Every function the trace's events point at, keyed by ``file:first_line``."""
    excerpts = {}
    for event in trace.events:
        if event.file:
            excerpt = excerpt_for(event.file, event.line)
            if excerpt is not None:
                excerpts.setdefault(excerpt.key, excerpt)
    return excerpts


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """First and last line, decorators included."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first, node.end_lineno or node.lineno


# CPython 3.11 before 3.11.9 keeps the AST builder's recursion depth in global state, so two threads parsing at once
# can fail with "AST constructor recursion depth mismatch" (gh-106905). The lock keeps the sandbox's own parses
# apart; the traceback module parses too (for its error carets), on whatever thread formats one, so a clash with
# it is retried: the error says nothing about the source, only that another parse ran at the same moment.
_PARSING = threading.Lock()
PARSE_ATTEMPTS = 3


@functools.cache
def _source(file: str) -> tuple[str, ast.Module] | None:
    path = (Path(PROJECT_DIR) / file).resolve()
    if Path(PROJECT_DIR) not in path.parents or path.suffix != ".py" or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return text, _parse(text)


def _parse(text: str) -> ast.Module:
    for _ in range(PARSE_ATTEMPTS - 1):
        try:
            with _PARSING:
                return ast.parse(text)
        except SystemError:  # the clash described above; the last attempt lets it through
            continue
    with _PARSING:
        return ast.parse(text)
