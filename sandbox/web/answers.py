"""The quiz answers a desk gives on its trace pages, judged by the server from the same trace the page was made from.

The page sends which option was picked (its index and its words); the server builds the trace's question of that
kind again, checks that the words match what was shown, and keeps the answer with the misconceptions of every
option offered. So the instructor's view can say "9 of the 14 students offered this choice picked it" from answers
that are judged by the run, never typed in.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.trace.quiz import QUIZ_KINDS
from sandbox.web.desks import current_desk, desks
from sandbox.web.routes import trace_report
from sandbox.web.send_request import BadInput, read_json

bp = Blueprint("answers", __name__)


@dataclass(frozen=True)
class Answer:
    """One desk's first answer to one question of one trace."""

    trace_id: str
    kind: str
    question: str
    chosen: str
    right: bool
    misconception: str | None  # what the chosen option stands for (None: the right one, or a plain slip)
    offered: tuple[str, ...]  # the misconceptions of every option shown, so a count can say "of how many"
    at: float  # time.time()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"offered": list(self.offered)}


@bp.post("/api/traces/<trace_id>/answers")
def answer(trace_id: str) -> Response:
    """Record this desk's answer: ``{"kind", "choice", "option"}`` (the option's index and its words), judged
    against the trace as of ``?as_of=`` (the moment the page was built: a worker may have finished since, which
    would change the options). The first answer to a question counts, as on the page; a later one is
    answered with the first."""
    body = read_json(request) if request.is_json else None
    if not isinstance(body, dict):
        raise BadInput('send a JSON object, e.g. {"kind": "which_first", "choice": 0, "option": "..."}')
    kind, choice, option = body.get("kind"), body.get("choice"), body.get("option")
    if kind not in QUIZ_KINDS:
        raise BadInput(f"'kind' must be one of {', '.join(QUIZ_KINDS)}")
    if not isinstance(choice, int) or isinstance(choice, bool) or choice < 0:
        raise BadInput("'choice' must be the index of the option picked (0, 1, ...)")
    as_of = request.args.get("as_of", type=int)  # the moment the page was built from: judged as it showed the trace
    question = next((q for q in trace_report(trace_id, [kind], as_of).quiz if q.kind == kind), None)
    if question is None:
        raise BadInput(f"trace {trace_id} has no {kind!r} question (this run cannot support it)", 404)
    if choice >= len(question.options):
        raise BadInput(f"'choice' must be below {len(question.options)}: the question has that many options")
    if option is not None and " ".join(str(option).split()) != " ".join(question.options[choice].split()):
        raise BadInput("the option's words are not those of this trace's question: reload the trace page", 409)
    given = Answer(
        trace_id,
        kind,
        question.question,
        question.options[choice],
        choice == question.answer,
        question.misconceptions[choice],
        tuple(dict.fromkeys(m for m in question.misconceptions if m)),
        time.time(),
    )
    kept = desks().answer(current_desk(), given)
    return jsonify(kept.to_dict() | {"first": kept is given})
