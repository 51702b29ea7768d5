"""The scheduler's challenges: a goal about the order of a send's events, reached by releasing its threads from
their gates by hand, and judged from the trace (never from what the page believes it did).

``GET /scheduler`` is the page; ``POST /api/challenges/<slug>/check`` judges one of the desk's sends scheduled by
hand, and keeps a solved challenge with the desk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from sandbox.strategies.modes import NO_CONTEXT, PROXY
from sandbox.trace.facts import Facts
from sandbox.trace.tracer import Event
from sandbox.web import desks
from sandbox.web.desks import current_desk
from sandbox.web.send_request import BadInput, read_json

bp = Blueprint("challenges", __name__)

Judgement = tuple[bool, str]  # solved, and why: sentences true of the trace


@dataclass(frozen=True)
class Challenge:
    slug: str
    title: str
    mode: str
    goal: str
    hint: str
    judge: Callable[[Facts], Judgement]

    def to_dict(self, solved: bool) -> dict[str, object]:
        return {
            "slug": self.slug,
            "title": self.title,
            "mode": self.mode,
            "goal": self.goal,
            "hint": self.hint,
            "solved": solved,
        }


def _first(facts: Facts, earlier: Event | None, later: Event | None, names: tuple[str, str]) -> Judgement:
    """Whether ``earlier`` came before ``later``, in the trace's words (``names`` say what each was)."""
    if earlier is None:
        return False, f"In this run {names[0]} never happened."
    if later is None:
        return True, f"{names[0].capitalize()} came at step {facts.step(earlier)}, and {names[1]} never did."
    a, b = facts.step(earlier), facts.step(later)
    if facts.position(earlier) < facts.position(later):
        return True, f"{names[0].capitalize()} came at step {a}, before {names[1]} at step {b}."
    return False, f"{names[1].capitalize()} came at step {b}, before {names[0]} at step {a}."


def _email_first(facts: Facts) -> Judgement:
    return _first(facts, facts.first("sink.accepted"), facts.response, ("the sink's 250", "the answer"))


def _failure_first(facts: Facts) -> Judgement:
    return _first(facts, facts.first("worker.failed"), facts.response, ("the worker's failure", "the answer"))


def _answer_first(facts: Facts) -> Judgement:
    solved, why = _first(facts, facts.response, facts.first("sink.accepted"), ("the answer", "the sink's 250"))
    send, request = facts.send, facts.request_thread_id
    if not solved and send is not None and send.thread_id == request:
        why += (
            " The route's own thread ran mail.send(), so its answer could leave only after mail.send() came back:"
            " no order of releases changes that."
        )
    return solved, why


def _proxy_works(facts: Facts) -> Judgement:
    finished, failed = facts.first("worker.finished"), facts.first("worker.failed")
    if finished is not None:
        return True, f"The worker finished its send at step {facts.step(finished)}."
    if failed is None:
        return False, "In this run the worker never ended."
    return False, (
        f"The worker failed at step {facts.step(failed)}: {failed.details.get('error')}. The route handed it "
        "current_app, which finds the app through the current thread's context, and the worker's thread has none, "
        "whatever the order."
    )


CHALLENGES = (
    Challenge(
        "email-first",
        "Email before answer",
        "thread",
        "Make the sink accept the email (its 250) before the browser has its answer.",
        "The route's thread waits at its gate after starting the worker. Let the worker and the sink go first.",
        _email_first,
    ),
    Challenge(
        "failure-first",
        "Fail before the answer",
        NO_CONTEXT,
        "The worker has no app context, so its send fails. Make it fail before the browser has its answer.",
        "Hold the route at its gate and run the worker to its end.",
        _failure_first,
    ),
    Challenge(
        "answer-first",
        "A blocking answer before the 250?",
        "sync",
        "Make the blocking route's answer leave before the sink's 250. Try every order you like.",
        "Look at which thread calls mail.send().",
        _answer_first,
    ),
    Challenge(
        "proxy",
        "Can an order save the proxy?",
        PROXY,
        "This route hands its worker current_app, the proxy, instead of the app. Find an order of releases in which "
        "the worker still sends.",
        "Hold the route at its gate, so its request is still running while the worker starts.",
        _proxy_works,
    ),
)
BY_SLUG = {c.slug: c for c in CHALLENGES}


@bp.get("/scheduler")
def page() -> str:
    solved = desks.desks().solved(current_desk())
    return render_template(
        "pages/scheduler.html",
        challenges=[c.to_dict(c.slug in solved) for c in CHALLENGES],
        bound_s=current_app.extensions["sandbox.scheduler"].bound_s,
    )


@bp.post("/api/challenges/<slug>/check")
def check(slug: str) -> Response:
    """Judge the desk's send ``{"trace_id"}`` against the challenge: it must be complete, scheduled by hand and
    sent by the challenge's route."""
    challenge = BY_SLUG.get(slug)
    if challenge is None:
        raise BadInput(f"no challenge {slug!r}; these exist: {', '.join(BY_SLUG)}", 404)
    body = read_json(request)
    trace_id = body.get("trace_id") if isinstance(body, dict) else None
    if not isinstance(trace_id, str):
        raise BadInput('name the send to judge: {"trace_id": "..."}')
    desk = current_desk()
    trace = current_app.extensions["sandbox.tracer"].get(trace_id, desk)
    if trace is None:
        raise BadInput(f"no trace {trace_id!r} at your desk", 404)
    if trace.mode != challenge.mode or not trace.first("gate.parked"):
        raise BadInput(f"this challenge is judged on a {challenge.mode} send you scheduled by hand", 409)
    if not trace.complete:
        raise BadInput("the send is still under way: release its threads first", 409)
    solved, why = challenge.judge(Facts(trace))
    if solved:
        desks.desks().solve(desk, slug)
    return jsonify(slug=slug, trace_id=trace_id, solved=solved, why=why)
