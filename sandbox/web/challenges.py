"""The scheduler's challenges: a goal about the order of a send's events, reached by releasing its threads from
their gates by hand, and judged from the trace (never from what the page believes it did).

``GET /scheduler`` is the page; ``POST /api/challenges/<slug>/check`` judges the desk's sends scheduled by hand
(one, or two for the challenges about two workers), and keeps a solved challenge with the desk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from sandbox.explorer import SCENARIOS
from sandbox.strategies.labels import title
from sandbox.strategies.modes import COUNT_MODE, LOCKED_COUNT_MODE, NO_CONTEXT, PROXY, SCHEDULABLE_MODES, STARVED
from sandbox.trace.facts import Facts, count_writes, lost_update
from sandbox.trace.gates import COUNT_READ
from sandbox.trace.steps import counted
from sandbox.trace.tracer import Event, Trace
from sandbox.web import desks
from sandbox.web.desks import current_desk
from sandbox.web.explorations import MAX_RUNS
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
    judge: Callable[[list[Facts]], Judgement]
    sends: int = 1  # how many sends of ``mode`` a try takes

    def to_dict(self, solved: bool) -> dict[str, object]:
        return {
            "slug": self.slug,
            "title": self.title,
            "mode": self.mode,
            "goal": self.goal,
            "hint": self.hint,
            "sends": self.sends,
            "solved": solved,
        }


def _one(judge: Callable[[Facts], Judgement]) -> Callable[[list[Facts]], Judgement]:
    """A judge of a one-send challenge."""
    return lambda runs: judge(runs[0])


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


def _read_then_wrote(n: int, facts: Facts, write: Event) -> str:
    """What one worker did to the count, in the trace's words."""
    read = facts.first("count.read")  # a send's worker counts once
    d = write.details
    if read is not None:
        said = f"send {n}'s worker, {write.thread}, read the count as {d.get('read')} and wrote {d.get('value')} "
        said += f"(steps {facts.step(read)} and {facts.step(write)} of its trace)"
    else:
        said = f"send {n}'s worker, {write.thread}, wrote {d.get('value')} (step {facts.step(write)} of its trace)"
    if lost_update(write):
        said += (
            f", over the {d.get('found')} another worker had written after that read: this write overwrites that "
            "update, which is lost"
        )
    return said


def _counted_writes(runs: list[Facts]) -> tuple[bool, str]:
    """Whether a write of the runs lost an update, and what the writes did in sentences, in the order they came
    (a note when a send's worker never counted), ending with how the count went."""
    writes = count_writes(runs)
    said = "; ".join(_read_then_wrote(*write) for write in writes)
    if len(writes) > 1:
        said = f"In the order the workers wrote: {said}"
    if len(writes) < len(runs):
        counted_none = len(runs) - len(writes)
        said += f"{'. ' if said else ''}{counted(counted_none, 'worker')} never counted: a failed send counts nothing"
    said = f"{said}."
    if writes:
        first_read, last = writes[0][2].details.get("read"), writes[-1][2].details.get("value")
        said += f" After {counted(len(writes), 'email')} the count went from {first_read} to {last}."
    return any(lost_update(write) for _, _, write in writes), said[0].upper() + said[1:]


def _update_lost(runs: list[Facts]) -> Judgement:
    lost, said = _counted_writes(runs)
    if lost:
        return True, said
    return False, (
        f"{said} Each write found the value its worker had read, so no update was lost. Hold one worker at the "
        f"gate “{COUNT_READ}”, and let the other read the count too."
    )


def _lock_holds(runs: list[Facts]) -> Judgement:
    lost, said = _counted_writes(runs)
    if lost:
        return True, said
    waits = [(n, facts, e) for n, facts in enumerate(runs, 1) for e in facts.all("lock.waiting")]
    if not waits:
        return False, (
            f"{said} No worker had to wait for stats_lock: they counted one after the other. "
            f"Hold one worker at the gate “{COUNT_READ}”, inside the lock, and run the other up to its lock."
        )
    n, facts, wait = waits[0]
    holder = wait.details.get("holder")
    acquired = facts.after(wait, ("lock.acquired",), wait.thread_id)
    got = f", and got it at step {facts.step(acquired)}, once {holder} had let it go" if acquired is not None else ""
    return False, (
        f"Send {n}'s worker, {wait.thread}, asked for stats_lock at step {facts.step(wait)} of its trace while "
        f"{holder} held it{got}. {said} No worker that takes the lock can read the count between the read and the "
        "write of another that holds it, so no order of releases loses an update in these sends."
    )


def _starved(facts: Facts) -> Judgement:
    queued, waited = facts.first("follow_up.queued"), facts.first("follow_up.waiting")
    if queued is None or waited is None:
        return False, "In this run the worker never queued its follow-up task and waited for it."
    function = queued.details.get("function")
    ran = facts.first("follow_up.started")
    if ran is not None:
        return False, f"{function}() got a thread at step {facts.step(ran)}: {ran.thread}. The pool was not starved."
    gave_up = facts.first("follow_up.timed_out")
    said = (
        f"{waited.thread} queued {function}() at step {facts.step(queued)}, while the busy threads of "
        f"{queued.details.get('pool')} were {', '.join(queued.details.get('busy') or []) or 'none'}, and from step "
        f"{facts.step(waited)} it waited for the result"
    )
    if not waited.details.get("starved"):
        return False, f"{said}, with a thread of the pool free to run it."
    size = int(queued.details.get("pool_size", 0))
    held = "the pool's only thread" if size == 1 else f"one of the pool's {size} threads, all of them busy"
    said += f", holding {held} itself, so nothing could run the task it waited for"
    if gave_up is None:
        return False, f"{said}. The wait never gave up in this run."
    failed = facts.first("worker.failed")
    ended = f"; the send failed at step {facts.step(failed)}, and /api/failures lists it" if failed is not None else ""
    return True, (
        f"{said}. Only the wait's own timeout ended it: .result() raised TimeoutError at step "
        f"{facts.step(gave_up)}{ended}."
    )


CHALLENGES = (
    Challenge(
        "email-first",
        "Email before answer",
        "thread",
        "Make the sink accept the email (its 250) before the browser has its answer.",
        "The route's thread waits at its gate after starting the worker. Let the worker and the sink go first.",
        _one(_email_first),
    ),
    Challenge(
        "failure-first",
        "Fail before the answer",
        NO_CONTEXT,
        "The worker has no app context, so its send fails. Make it fail before the browser has its answer.",
        "Hold the route at its gate and run the worker to its end.",
        _one(_failure_first),
    ),
    Challenge(
        "answer-first",
        "A blocking answer before the 250?",
        "sync",
        "Make the blocking route's answer leave before the sink's 250. Try every order you like.",
        "Look at which thread calls mail.send().",
        _one(_answer_first),
    ),
    Challenge(
        "lost-update",
        "Lose an update",
        COUNT_MODE,
        "Each worker counts its email in a shared dict: it reads the count, then writes it back one higher. Send two "
        "and make the count go up by only one.",
        f"Hold the first worker at the gate “{COUNT_READ}”, and let the second read the count before the first writes.",
        _update_lost,
        sends=2,
    ),
    Challenge(
        "lost-update-locked",
        "Lose an update, with the lock",
        LOCKED_COUNT_MODE,
        "Now each worker reads and writes the count while it holds stats_lock. Send two and try the same order again.",
        "Hold one worker between its read and its write, then run the other up to the lock: see who waits.",
        _lock_holds,
        sends=2,
    ),
    Challenge(
        "starved-pool",
        "Starve the pool",
        STARVED,
        "This route's task runs on a pool of one thread, queues a second task on the same pool and waits for its "
        "result. Make the send hang, and find out what ends the wait.",
        "Release the pool's thread from its first gate, then watch the list: who waits for whom?",
        _one(_starved),
    ),
    Challenge(
        "proxy",
        "Can an order save the proxy?",
        PROXY,
        "This route hands its worker current_app, the proxy, instead of the app. Find an order of releases in which "
        "the worker still sends.",
        "Hold the route at its gate, so its request is still running while the worker starts.",
        _one(_proxy_works),
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
        scenarios={name: plan.question for name, plan in SCENARIOS.items()},
        schedulable=SCHEDULABLE_MODES,
        titles={mode: title(mode) for mode in SCHEDULABLE_MODES},
        max_runs=MAX_RUNS,
    )


@bp.post("/api/challenges/<slug>/check")
def check(slug: str) -> Response:
    """Judge the desk's sends against the challenge: ``{"trace_ids": [...]}`` with as many as the challenge takes
    (``{"trace_id"}`` for one), each complete, scheduled by hand and sent by the challenge's route."""
    challenge = BY_SLUG.get(slug)
    if challenge is None:
        raise BadInput(f"no challenge {slug!r}; these exist: {', '.join(BY_SLUG)}", 404)
    trace_ids = _named_sends(read_json(request), challenge.sends)
    desk = current_desk()
    runs = [Facts(_judged_trace(trace_id, desk, challenge)) for trace_id in trace_ids]
    solved, why = challenge.judge(runs)
    if solved:
        desks.desks().solve(desk, slug)
    return jsonify(slug=slug, trace_id=trace_ids[0], trace_ids=trace_ids, solved=solved, why=why)


def _named_sends(body: object, sends: int) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("trace_id"), str) and "trace_ids" not in body:
        trace_ids: object = [body["trace_id"]]
    else:
        trace_ids = body.get("trace_ids") if isinstance(body, dict) else None
    if (
        not isinstance(trace_ids, list)
        or len(trace_ids) != sends
        or len(set(trace_ids)) != sends
        or not all(isinstance(t, str) for t in trace_ids)
    ):
        one = '{"trace_id": "..."}'
        raise BadInput(
            f"name the send to judge: {one}"
            if sends == 1
            else f'name {sends} different sends to judge: {{"trace_ids": [...]}}'
        )
    return trace_ids


def _judged_trace(trace_id: str, desk: str, challenge: Challenge) -> Trace:
    trace = current_app.extensions["sandbox.tracer"].get(trace_id, desk)
    if trace is None:
        raise BadInput(f"no trace {trace_id!r} at your desk", 404)
    if trace.mode != challenge.mode or not trace.first("gate.parked"):
        raise BadInput(f"this challenge is judged on {challenge.mode} sends you scheduled by hand", 409)
    if not trace.complete:
        raise BadInput("the send is still under way: release its threads first", 409)
    return trace
