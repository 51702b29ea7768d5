"""The JSON API of sends scheduled by hand (``POST /send-email/<mode>?schedule=manual``, see :mod:`sandbox.gates`):
which threads wait at which gate, and releasing one of them.

A scheduled send's own request waits at a gate too, so its answer cannot tell the page the trace id: the page finds
its sends here, by desk.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.render.code_panes import file_blocks
from sandbox.trace.gates import Schedule, Scheduler
from sandbox.web.desks import current_desk
from sandbox.web.send_request import BadInput, read_json

bp = Blueprint("schedule", __name__)


def scheduler() -> Scheduler:
    return current_app.extensions["sandbox.scheduler"]


@bp.get("/api/schedule")
def schedules() -> Response:
    """The desk's sends scheduled by hand, newest first, each with the threads waiting now: at a gate (``waiting``,
    each released by you) or for something another thread must do first (``blocked``: a lock to let go, a task to
    run), which no release frees."""
    return jsonify(bound_s=scheduler().bound_s, sends=[schedule_view(s) for s in scheduler().of_desk(current_desk())])


@bp.post("/api/schedule/<trace_id>/release")
def release(trace_id: str) -> Response:
    """Let one thread of the send go on from its gate: ``{"thread": "<name>"}``."""
    schedule = scheduler().get(trace_id, current_desk())
    if schedule is None:
        raise BadInput(f"no send {trace_id!r} scheduled by hand at your desk", 404)
    body = read_json(request)
    thread = body.get("thread") if isinstance(body, dict) else None
    if not isinstance(thread, str) or not thread:
        raise BadInput('name the thread to release: {"thread": "<name>"}, one of GET /api/schedule\'s')
    gate = schedule.release(thread)
    if gate is None:
        waiting = ", ".join(p.thread for p in schedule.parked()) or "none"
        raise BadInput(f"{thread!r} waits at no gate of this send (waiting now: {waiting})", 409)
    return jsonify(trace_id=trace_id, thread=thread, released=gate)


def schedule_view(schedule: Schedule) -> dict[str, object]:
    """A send scheduled by hand: who waits at which gate, who waits for another thread, and whether it is over
    (nothing more will be recorded)."""
    trace = current_app.extensions["sandbox.tracer"].get(schedule.trace_id)
    return {
        "trace_id": schedule.trace_id,
        "mode": schedule.mode,
        "how": schedule.how,
        "waiting": [with_code(parked.to_dict()) for parked in schedule.parked()],
        "blocked": [with_code(blocked.to_dict()) for blocked in schedule.blocked()],
        "complete": trace is not None and trace.complete,
    }


def with_code(where: dict[str, object]) -> dict[str, object]:
    """A waiting thread with the student's function around its line (``block``: None outside the student's files),
    for the page to show as the stepper's code pane does."""
    file, line = where.get("file"), where.get("line")
    blocks = file_blocks(file) if isinstance(file, str) and file else ()
    block = next(
        (b for b in blocks if isinstance(line, int) and b.first_line <= line < b.first_line + len(b.lines)), None
    )
    where["block"] = (
        None if block is None else {"function": block.name, "first_line": block.first_line, "lines": list(block.lines)}
    )
    return where
