"""The student's code beside the stepper, in two panes like the run: the app's file and the mail server's.

Each pane shows the top-level functions (or the class) of its file that this trace's steps point at, with their line
numbers, found with ``ast``. For every step, :func:`step_marks` says where each thread's latest step was, so a
thread that is waiting keeps its line marked while the others move, and when its next step comes.
"""

from __future__ import annotations

import ast
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.trace.clock import shown_gap
from sandbox.trace.steps import Row
from sandbox.trace.tracer import PROJECT_DIR

# Steps whose thread did not run the line they light: the web server's acceptor took the connection for the route
# (its step lights the route), but it runs no line of the app, so it keeps no mark once the step is past.
NOT_RUN_BY_ITS_THREAD = frozenset({"request.arrived"})
# The student's files, one pane each, in the order of the run: the app sends, the mail server receives.
APP_FILE = "sandbox/app/emails.py"
PANES = (("app", "The app", APP_FILE), ("server", "The mail server", "sandbox/app/mail_server.py"))


@dataclass(frozen=True)
class Block:
    """Lines ``first_line`` to ``first_line + len(lines) - 1``: one top-level function or class."""

    name: str
    first_line: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Pane:
    key: str
    title: str
    file: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Mark:
    """At one step: ``thread`` took its latest step on ``line`` of pane ``pane`` (this very step when ``current``);
    ``note`` says when its next step comes, or that it has none in this trace."""

    pane: str
    line: int
    thread: str
    current: bool
    note: str

    def to_dict(self) -> dict[str, object]:
        return {"pane": self.pane, "line": self.line, "thread": self.thread, "current": self.current, "note": self.note}


def panes(rows: Sequence[Row]) -> list[Pane]:
    """Both panes, each with the blocks of its file that the steps point at, in file order."""
    found = []
    for key, title, file in PANES:
        lines = {row.line for row in rows if row.file == file}
        blocks = [b for b in file_blocks(file) if any(b.first_line <= n < b.first_line + len(b.lines) for n in lines)]
        found.append(Pane(key, title, file, tuple(blocks)))
    return found


def step_marks(rows: Sequence[Row]) -> list[list[Mark]]:
    """For each step, one mark per thread seen so far whose latest step lit a line of a pane."""
    pane_of = {file: key for key, _, file in PANES}
    marks: list[list[Mark]] = []
    latest: dict[str, int] = {}  # thread -> index of its latest row so far
    for n, row in enumerate(rows):
        latest[row.thread] = n
        here = []
        for thread, index in latest.items():
            seen = rows[index]
            if seen.file not in pane_of or (index != n and seen.kind in NOT_RUN_BY_ITS_THREAD):
                continue
            here.append(Mark(pane_of[seen.file], seen.line, thread, index == n, _note(rows, index)))
        marks.append(here)
    return marks


def _note(rows: Sequence[Row], index: int) -> str:
    row = rows[index]
    following = next((k for k in range(index + 1, len(rows)) if rows[k].thread == row.thread), None)
    if following is None:
        return f"step {row.step}, its last in this trace"
    gap, _ = shown_gap(max(0.0, rows[following].t_ms - row.t_ms))
    return f"step {row.step}; its next, step {rows[following].step}, comes {gap} later"


@functools.cache
def file_blocks(file: str) -> tuple[Block, ...]:
    """The top-level functions and classes of one of the student's files, decorators included."""
    text = (Path(PROJECT_DIR) / file).read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    for node in _parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            last = node.end_lineno or node.lineno
            blocks.append(Block(node.name, first, tuple(lines[first - 1 : last])))
    return tuple(blocks)


# CPython 3.11 before 3.11.9 keeps the AST builder's recursion depth in global state, so two threads parsing at once
# can fail with "AST constructor recursion depth mismatch" (gh-106905). The lock keeps the sandbox's own parses
# apart; the traceback module parses too (for its error carets), on whatever thread formats one, so a clash with
# it is retried: the error says nothing about the source, only that another parse ran at the same moment.
_PARSING = threading.Lock()
PARSE_ATTEMPTS = 3


def _parse(text: str) -> ast.Module:
    for _ in range(PARSE_ATTEMPTS - 1):
        try:
            with _PARSING:
                return ast.parse(text)
        except SystemError:  # the clash described above; the last attempt lets it through
            continue
    with _PARSING:
        return ast.parse(text)
