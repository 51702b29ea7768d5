"""The lessons: Markdown files in ``lessons/`` with front matter naming the scenario they run and the quiz they use.

    ---
    title: Why the blocking route blocks
    summary: One line for the list of lessons.
    order: 1
    scenario:
      description: What pressing "Run it" does.
      modes: [sync, thread]
      delay_s: 2.0
    quiz: [response_step, wait_time]
    ---
    The lesson text, in Markdown.

A lesson that names an unknown mode or quiz kind, or a delay out of range, fails loudly when the lessons load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, current_app, render_template
from markdown_it import MarkdownIt
from markupsafe import Markup

from sandbox.faults import MAX_DELAY_S
from sandbox.modes import BUTTON_LABELS
from sandbox.quiz import QUIZ_KINDS
from sandbox.send_request import BadInput
from sandbox.strategies import SEND_MODES

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"

bp = Blueprint("lessons", __name__, url_prefix="/lessons")
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


class LessonError(ValueError):
    """A lesson file is malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    summary: str
    order: int
    scenario: dict[str, Any]
    quiz: list[str]
    html: Markup


def parse_lesson(path: Path, modes: frozenset[str]) -> Lesson:
    text = path.read_text(encoding="utf-8")
    _, sep, rest = text.partition("---\n")
    front, sep2, body = rest.partition("\n---\n")
    if sep != "---\n" or not sep2 or text[: len(text) - len(text.lstrip())]:
        raise LessonError(f"{path.name}: start with front matter between two '---' lines")
    meta = yaml.safe_load(front) or {}
    missing = [key for key in ("title", "summary", "order", "scenario", "quiz") if key not in meta]
    if missing:
        raise LessonError(f"{path.name}: front matter lacks {', '.join(missing)}")
    scenario = meta["scenario"]
    unknown_modes = [m for m in scenario.get("modes", []) if m not in modes]
    if not scenario.get("modes") or unknown_modes:
        raise LessonError(f"{path.name}: scenario.modes must list modes among {', '.join(sorted(modes))}")
    if not 0 <= float(scenario.get("delay_s", -1)) <= MAX_DELAY_S:
        raise LessonError(f"{path.name}: scenario.delay_s must be between 0 and {MAX_DELAY_S:g}")
    unknown_kinds = [k for k in meta["quiz"] if k not in QUIZ_KINDS]
    if unknown_kinds:
        raise LessonError(f"{path.name}: unknown quiz kinds {unknown_kinds}; known: {', '.join(QUIZ_KINDS)}")
    return Lesson(
        path.stem.split("-", 1)[-1],
        meta["title"],
        meta["summary"],
        int(meta["order"]),
        scenario,
        list(meta["quiz"]),
        Markup(_markdown.render(body)),
    )


@functools.cache
def load_lessons(directory: Path = LESSONS_DIR, modes: frozenset[str] = frozenset()) -> tuple[Lesson, ...]:
    """Every lesson, in order; read once per process."""
    return tuple(sorted((parse_lesson(p, modes) for p in directory.glob("*.md")), key=lambda lesson: lesson.order))


def lessons() -> tuple[Lesson, ...]:
    return load_lessons(LESSONS_DIR, frozenset(SEND_MODES))


@bp.get("")
def index() -> str:
    return render_template("pages/lessons.html", lessons=lessons())


@bp.get("/<slug>")
def lesson(slug: str) -> str:
    ordered = lessons()
    position = next((i for i, lesson in enumerate(ordered) if lesson.slug == slug), None)
    if position is None:
        raise BadInput(f"no lesson {slug!r}; see /lessons", 404)
    return render_template(
        "pages/lesson.html",
        lesson=ordered[position],
        previous=ordered[position - 1] if position > 0 else None,
        next=ordered[position + 1] if position + 1 < len(ordered) else None,
        server=current_app.config["SANDBOX_SERVER"],
        labels=BUTTON_LABELS,
    )
