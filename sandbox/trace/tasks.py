"""The sentences about a task an ``async def`` view created and did not await, and about its event loop's close.

Flask runs an async view with ``asyncio.run()`` on a loop of the view's own: once the view's coroutine returns, the
loop cancels the tasks still waiting, waits for the threads of its executor and closes, and only then does the
request's thread go on. Every sentence here is chosen from the order of the recorded events (the view's return,
the task's start and end, the send's start and end, the loop's close), never from the route's name.
"""

from __future__ import annotations

from sandbox.trace.claims import Literal, Sentence, claim, join, negate, sentence
from sandbox.trace.clock import shown_gap
from sandbox.trace.facts import SEND_ENDS, Facts, gap_phrase
from sandbox.trace.tracer import Event

TASK_KINDS = ("task.created", "task.started", "task.finished", "task.failed", "task.cancelled")


def task_name(facts: Facts) -> str:
    """The name asyncio gave the view's task (``Task-7``)."""
    created = facts.task_created
    return str(created.details.get("task")) if created is not None else "the task"


def task_action(facts: Facts, event: Event) -> Sentence:
    """The Action cell of a task's event, or of the loop's close."""
    match event.kind:
        case "task.created":
            return _created(facts, event)
        case "task.started":
            return _started(facts, event)
        case "task.cancelled":
            return _cancelled(facts, event)
        case "send.started":
            return _task_sends(facts, event)
        case "task.unsent":
            return sentence(
                f"The loop has closed, and no mail.send() ever began for {event.details.get('task')}: its email never "
                "left, and the sandbox records it as failed",
                claim("before", "loop.closed", facts.ref(event)),
                claim("absent", "send.started"),
                claim("detail", facts.ref(event), "task", Literal(event.details.get("task"))),
                claim("detail", facts.ref(event), "outcome", Literal("failed")),
            )
        case "task.failed":
            return _failed(facts, event)
        case "task.finished":
            return sentence(
                f"{task_name(facts)} runs {event.function}() to its end",
                claim("same_thread", facts.ref(event), "task.started"),
            )
        case _:
            return _loop_closed(facts, event)


def _view_returned(facts: Facts, event: Event) -> tuple[str, list[str]]:
    """``", after the view's coroutine returned (step 6)"`` when it had returned by ``event``."""
    end = facts.coroutine_end
    if end is None or facts.position(end) > facts.position(event):
        return "", []
    return f", after the view's coroutine returned (step {facts.step(end)})", [
        claim("before", facts.ref(end), facts.ref(event))
    ]


def _created(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    name, function = event.details.get("task"), event.details.get("function")
    claims = [
        claim("detail", ref, "task", Literal(name)),
        claim("detail", ref, "function", Literal(function)),
        claim("other_thread", ref, "request.received"),
    ]
    text = f"The view creates {name} to run {function}() on its event loop, and does not await it"
    started, end = facts.task_started, facts.coroutine_end
    if started is None:
        text += ": the task never gets to start"
        claims.append(claim("absent", "task.started"))
    elif end is not None and facts.position(end) < facts.position(started):
        text += f": the task first runs at step {facts.step(started)}, once the view has returned"
        claims += [claim("before", facts.ref(end), "task.started"), facts.shown_at(started)]
    return Sentence(text, tuple(claims))


def _started(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    after, claims = _view_returned(facts, event)
    claims += [
        claim("other_thread", ref, "request.received"),
        claim("detail", ref, "function", Literal(event.details.get("function"))),
    ]
    if facts.coroutine is not None:
        claims.append(claim("same_thread", ref, facts.ref(facts.coroutine)))
    return Sentence(
        f"{task_name(facts)} starts {event.details.get('function')}() on {event.thread}, the event loop's "
        f"thread{after}",
        tuple(claims),
    )


def _task_sends(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    claims = [claim("before", "task.started", ref)]
    started = facts.task_started
    if started is not None and started.thread_id == event.thread_id:
        claims.append(claim("same_thread", ref, "task.started"))
        text = f"{task_name(facts)} calls mail.send(msg) itself, on the event loop's thread"
    else:
        via = event.details.get("via")
        claims += [claim("other_thread", ref, "task.started"), claim("detail", ref, "via", Literal(via))]
        text = f"mail.send(msg) starts on {event.thread}, the thread {task_name(facts)} handed it to through {via}"
    return Sentence(text, tuple(claims))


def _cancelled(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    after, claims = _view_returned(facts, event)
    started = facts.task_started
    if started is None or facts.position(started) > facts.position(event):
        head = f"{task_name(facts)} is cancelled before it ran a line{after}"
        claims.append(negate(claim("before", "task.started", ref)))
    else:
        head = f"{task_name(facts)} is cancelled at line {event.line}, where {event.function}() was waiting{after}"
        claims.append(claim("before", "task.started", ref))
    send, end = facts.task_send, facts.task_send_end
    if send is None:
        claims.append(claim("absent", "send.started"))
        return Sentence(f"{head}: no mail.send() has begun for it", tuple(claims))
    same = send.thread_id == event.thread_id  # a send the task made itself, on the loop's thread
    claims.append(claim("same_thread" if same else "other_thread", facts.ref(send), ref))
    if facts.position(send) > facts.position(event):
        claims.append(claim("before", ref, facts.ref(send)))
        return Sentence(
            f"{head}, before the mail.send() it handed on began on {send.thread} (step {facts.step(send)}): cancelling "
            "the task does not stop that thread",
            (*claims, facts.shown_at(send)),
        )
    claims.append(claim("before", facts.ref(send), ref))
    if end is None:
        return Sentence(f"{head}, while mail.send() runs on {send.thread}", tuple(claims))
    if facts.position(end) < facts.position(event):
        claims.append(claim("before", facts.ref(end), ref))
        return Sentence(f"{head}; its mail.send() had already ended on {send.thread}", tuple(claims))
    claims += [claim("before", ref, facts.ref(end)), claim("same_thread", facts.ref(end), facts.ref(send))]
    return Sentence(
        f"{head}, while mail.send() runs on {send.thread}: cancelling the task does not stop that thread, whose "
        f"mail.send() ends at step {facts.step(end)}",
        (*claims, facts.shown_at(end)),
    )


def _failed(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    text = f"{task_name(facts)} raises at line {event.line}"
    claims = [claim("same_thread", ref, "task.started")]
    error = event.details.get("error")
    if error:
        text += f" ({error})"
        claims.append(claim("detail", ref, "error", Literal(error)))
    return Sentence(text, tuple(claims))


def _loop_closed(facts: Facts, event: Event) -> Sentence:
    ref = facts.ref(event)
    claims = [claim("same_thread", ref, "request.received")]
    text = "asyncio.run() has closed the view's event loop, so app.ensure_sync() returns on the request's thread"
    end = facts.coroutine_end
    if end is None:
        return Sentence(text, tuple(claims))
    gap = facts.gap_ms(end, event)
    shown, tol = shown_gap(gap)
    text += f", {shown} after the view's coroutine returned"
    claims.append(claim("gap_ms", facts.ref(end), ref, round(gap, 3), tol))
    said = []
    for e in facts.events[facts.position(end) + 1 : facts.position(event)]:
        if e.kind == "task.cancelled":
            said.append(f"{task_name(facts)} was cancelled (step {facts.step(e)})")
        elif e.kind in SEND_ENDS and not facts.on_request(e):
            said.append(
                f"mail.send() {'returned' if e.kind == 'smtp.accepted' else 'raised'} on {e.thread} "
                f"(step {facts.step(e)})"
            )
        else:
            continue
        claims += [claim("before", facts.ref(end), facts.ref(e)), claim("before", facts.ref(e), ref)]
    if said:
        text += ": in between, " + " and ".join(said)
    return Sentence(text, tuple(claims))


def task_state(facts: Facts, n: int) -> Sentence:
    """The task's state after step n, for the Thread State cell ("" without a task)."""
    created = facts.task_created
    if created is None:
        return Sentence("")
    upto = facts.position(facts.visible[n - 1])
    if facts.position(created) > upto:
        return sentence("Task: not created yet", claim("before", f"@{n}", facts.ref(created)))
    event = [e for e in facts.events[: upto + 1] if e.kind in TASK_KINDS][-1]
    ref = facts.ref(event)
    claims = [claim("happened", ref), negate(claim("before", f"@{n}", ref))]
    send, end = facts.task_send, facts.task_send_end
    sent_by_n = send is not None and facts.position(send) <= upto
    running = sent_by_n and (end is None or facts.position(end) > upto)
    if sent_by_n:
        claims.append(negate(claim("before", f"@{n}", facts.ref(send))))
    if running and end is not None:
        claims.append(claim("before", f"@{n}", facts.ref(end)))
    if end is not None and sent_by_n and not running:
        claims.append(negate(claim("before", f"@{n}", facts.ref(end))))
    match event.kind:
        case "task.created":
            text = "Task: created, waiting for the loop to run it"
        case "task.started" if running and send.thread_id != event.thread_id:
            text = f"Task: awaiting mail.send() on {send.thread}"
        case "task.started":
            text = f"Task: running {event.details.get('function')}()"
        case "task.cancelled" if running:
            text = f"Task: cancelled; its mail.send() still runs on {send.thread}"
        case "task.cancelled" if sent_by_n:
            text = "Task: cancelled; its mail.send() has ended"
        case "task.cancelled":
            text = "Task: cancelled; no mail.send() begun for it"
            claims.append(
                claim("before", f"@{n}", facts.ref(send)) if send is not None else claim("absent", "send.started")
            )
        case "task.failed":
            text = "Task: raised"
        case _:
            text = "Task: finished"
    return Sentence(text, tuple(claims))


def task_story(facts: Facts) -> tuple[str, Sentence, int] | None:
    """A key moment for a view that created a task and did not await it: what became of the task, of its send and
    of the answer, in the order the events show; (title, text, step) or None without such a task."""
    created, end, started = facts.task_created, facts.task_end, facts.task_started
    view_end, closed, response = facts.coroutine_end, facts.loop_closed, facts.response
    if created is None or end is None or view_end is None or closed is None or response is None:
        return None
    if not facts.in_order(view_end, closed, response):
        return None
    name = task_name(facts)
    parts = [
        sentence(
            f"At step {facts.step(created)} the view created {name} to run {created.details.get('function')}(), and "
            f"did not await it; the view's coroutine returned at step {facts.step(view_end)}.",
            facts.shown_at(created),
            facts.shown_at(view_end),
        )
    ]
    if started is not None and facts.position(view_end) < facts.position(started):
        parts.append(
            sentence(
                f" The task started only after that, at step {facts.step(started)}.",
                claim("before", facts.ref(view_end), "task.started"),
                facts.shown_at(started),
            )
        )
    send, send_end = facts.task_send, facts.task_send_end
    title = "Did the task outlive the view?"
    unsent = facts.unsent
    if unsent is not None and send is None and end.kind == "task.cancelled":
        parts.append(
            sentence(
                f" It was cancelled at step {facts.step(end)}, at line {end.line}, before it called mail.send(). The "
                f"event loop closed at step {facts.step(closed)} and the answer (HTTP {facts.status}) left at step "
                f"{facts.step(response)}: the email was never sent, and the sandbox lists it as failed (step "
                f"{facts.step(unsent)}). A task lives no longer than its event loop, and the loop Flask runs a view "
                "on does not outlive the request: once the view has returned, it cancels the tasks still waiting.",
                facts.shown_at(end),
                facts.shown_at(unsent),
                claim("detail", facts.ref(unsent), "outcome", Literal("failed")),
                claim("before", facts.ref(end), "loop.closed"),
                claim("before", "loop.closed", "response.sent"),
                claim("absent", "send.started"),
            )
        )
        return title, join(parts, ""), facts.step(end)
    if send is None or send_end is None or end.kind != "task.cancelled" or send.thread_id == end.thread_id:
        return None
    if not facts.in_order(send, end, send_end, closed):
        return None  # (a send that began only after its task was cancelled: the table tells it step by step)
    waited, waited_claim = gap_phrase(facts, view_end, closed)
    how = "returned" if send_end.kind == "smtp.accepted" else "raised"
    parts.append(
        sentence(
            f" It handed mail.send() to {send.thread} at step {facts.step(send)} and was cancelled at step "
            f"{facts.step(end)}, at its await. Cancelling the task did not stop {send.thread}: mail.send() {how} at "
            f"step {facts.step(send_end)}, and only then did the event loop close (step {facts.step(closed)}) and the "
            f"answer leave (step {facts.step(response)}). The request's thread waited {waited} after the view had "
            "returned, for the send the view meant to leave behind.",
            facts.shown_at(send),
            facts.shown_at(end),
            facts.shown_at(send_end),
            claim("other_thread", facts.ref(send), facts.ref(end)),
            claim("same_thread", facts.ref(send_end), facts.ref(send)),
            claim("before", facts.ref(end), facts.ref(send_end)),
            claim("before", facts.ref(send_end), "loop.closed"),
            claim("before", "loop.closed", "response.sent"),
            claim("same_thread", "loop.closed", "request.received"),
            waited_claim,
        )
    )
    if send_end.kind == "smtp.failed":
        parts.append(
            sentence(
                " Its error reached no code of the view's: the task that could have seen it had been cancelled. "
                "The sandbox lists the failure.",
                claim("before", facts.ref(end), facts.ref(send_end)),
            )
        )
    return title, join(parts, ""), facts.step(end)


def task_wait(facts: Facts) -> Sentence:
    """Why the answer of a view that left its send to a task came when it did: the loop's close, and what came just
    before it; empty when the events do not show that order."""
    view_end, closed, response = facts.coroutine_end, facts.loop_closed, facts.response
    if view_end is None or closed is None or response is None:
        return Sentence("")
    if not facts.in_order(view_end, closed, response):
        return Sentence("")
    text = (
        f" The view's coroutine returned at step {facts.step(view_end)}, but the request's thread went on only once "
        f"the event loop had closed, at step {facts.step(closed)}"
    )
    claims = [
        claim("before", facts.ref(view_end), "loop.closed"),
        claim("before", "loop.closed", "response.sent"),
        claim("same_thread", "loop.closed", "request.received"),
        facts.shown_at(view_end),
        facts.shown_at(closed),
    ]
    send_end = facts.task_send_end
    if send_end is not None and facts.in_order(view_end, send_end, closed):
        how = "returned" if send_end.kind == "smtp.accepted" else "raised"
        text += f", after the task's mail.send() {how} on {send_end.thread} at step {facts.step(send_end)}"
        claims += [claim("before", facts.ref(send_end), "loop.closed"), facts.shown_at(send_end)]
    return Sentence(text + ".", tuple(claims))


def task_failure(facts: Facts, failed: Event) -> Sentence:
    """Where the failure of a task's send went: to no code of the view's, which had returned; only the sandbox's
    record shows it. Empty when the events do not show the view gone first."""
    view_end, response = facts.coroutine_end, facts.response
    if view_end is None or response is None or not facts.position(view_end) < facts.position(failed):
        return Sentence("")
    return sentence(
        f" No code of the view's saw it: the view's coroutine had returned at step {facts.step(view_end)} without "
        f"awaiting its task, and the answer still said HTTP {facts.status} at step {facts.step(response)}. The "
        "sandbox recorded the failure; /api/failures lists it.",
        claim("before", facts.ref(view_end), facts.ref(failed)),
        facts.shown_at(view_end),
        claim("detail", "response.sent", "status", Literal(facts.status)),
        facts.shown_at(response),
        claim("happened", "task.created"),
    )
