"""Key moments: a few short explanations, each pinned to a step of this run and chosen from its facts.

Which sentence a moment says depends on what the events show (which came first, who ran the send, how it ended,
what the server did meanwhile), never on the mode's name; every sentence carries the claims that make it true.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.trace.claims import Literal, Sentence, claim, join, negate, sentence
from sandbox.trace.clock import shown_ms
from sandbox.trace.facts import Facts, fate_unknown, gap_phrase, slowest_wait_ms, stores_copy, unanswered, wait_tol
from sandbox.trace.gates import BY_BOUND
from sandbox.trace.steps import (
    BLIND,
    counted,
    hold_ending,
    mailbox_at,
    message_numbers,
    quoted,
    times,
    waiting_claim,
)
from sandbox.trace.tasks import task_failure, task_story, task_wait
from sandbox.trace.tracer import Event

MOMENTS_SHOWN = 5
QUEUED_MS = 50.0  # a wait in the server worth a moment of its own (a thread start takes about 1 ms)
HANDOFF_WORDS = {
    "route": "started a thread of its own for the send",
    "pool": "queued the send for the pool's threads",
    "consumer": "stored the send as a task for the queue's consumer",
}


@dataclass(frozen=True)
class Moment:
    title: str
    text: str
    step: int
    claims: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"title": self.title, "text": self.text, "step": self.step}


def key_moments(facts: Facts) -> list[Moment]:
    """Up to five moments, most telling first; fewer when the run was short."""
    found = [
        m
        for m in (
            _held(facts),
            _queued(facts),
            _who_waited(facts),
            _blocked(facts),
            _awaited(facts),
            _task(facts),
            _failure(facts),
            _copies(facts),
            _retries(facts),
            _pickup(facts),
            _cpu_work(facts),
            _sink_hold(facts),
            _arrival(facts),
        )
        if m is not None
    ]
    return found[:MOMENTS_SHOWN]


def _held(facts: Facts) -> Moment | None:
    """A send scheduled by hand: which thread waited at which gate, and for how long."""
    holds = facts.holds
    if not holds:
        return None
    parts = [
        sentence(
            "You scheduled this send by hand: its threads stopped at gates and went on only when released, so the "
            "times on this page include those waits.",
            claim("happened", "gate.parked"),
        )
    ]
    for parked, released in holds:
        gate = parked.details.get("gate")
        gate_claim = claim("detail", facts.ref(parked), "gate", Literal(gate))
        if released is None:
            parts.append(
                sentence(
                    f" {parked.thread} stopped at “{gate}” at step {facts.step(parked)}.",
                    gate_claim,
                )
            )
            continue
        gap, gap_claim = gap_phrase(facts, parked, released)
        bound = released.details.get("by") == BY_BOUND
        parts.append(
            sentence(
                f" {parked.thread} waited at “{gate}” from step {facts.step(parked)} to step {facts.step(released)}, "
                f"{gap}{', until the bound let it go' if bound else ''}.",
                gate_claim,
                gap_claim,
                claim("detail", facts.ref(released), "by", Literal(released.details.get("by"))),
            )
        )
    for waited in facts.all("lock.waiting"):
        acquired = facts.after(waited, ("lock.acquired",), waited.thread_id)
        holder = waited.details.get("holder")
        holder_claim = claim("detail", facts.ref(waited), "holder", Literal(holder))
        if acquired is None:
            parts.append(
                sentence(
                    f" {waited.thread} waited for {waited.details.get('lock')} from step "
                    f"{facts.step(waited)}, held by {holder}.",
                    holder_claim,
                )
            )
            continue
        gap, gap_claim = gap_phrase(facts, waited, acquired)
        parts.append(
            sentence(
                f" {waited.thread} waited for {waited.details.get('lock')}, held by {holder}, from step "
                f"{facts.step(waited)} to step {facts.step(acquired)}, {gap}: no gate, only the holder could free it.",
                holder_claim,
                gap_claim,
            )
        )
    return _moment("Who held the threads?", join(parts, ""), facts.step(holds[0][0]))


def _moment(title: str, text: Sentence, step: int | None) -> Moment | None:
    return None if step is None else Moment(title, text.text, step, text.claims)


def ms_phrase(facts: Facts, event: Event) -> tuple[str, str]:
    """``"2.01 s"`` and the claim that the event came that long after the trace's start."""
    value = facts.ms(event)
    text, tol = shown_ms(value)
    return text, claim("at_ms", facts.ref(event), round(value, 3), tol)


def order(facts: Facts, a: Event, b: Event) -> str:
    return claim("before", facts.ref(a), facts.ref(b))


def _who_waited(facts: Facts) -> Moment | None:
    response, send = facts.response, facts.send
    if response is None:
        return None
    step = facts.step(response)
    at, at_claim = ms_phrase(facts, response)
    head = sentence(
        f"The answer (HTTP {facts.status}) left at step {step}, {at} after the server had the request.",
        at_claim,
        claim("detail", "response.sent", "status", Literal(facts.status)),
    )
    if facts.task_created is not None:
        return _moment("What did the client wait for?", head + task_wait(facts), step)
    if send is None and facts.handoff is None:
        return _moment(
            "What did the client wait for?",
            head + sentence(" No email was sent: the route answered before any send.", claim("absent", "send.started")),
            step,
        )
    if send is not None and facts.on_request(send):
        end = facts.send_end
        if end is not None:
            how = "returned" if end.kind == "smtp.accepted" else "raised"
            rest = sentence(
                f" mail.send() ran on the request's own thread, so the answer could only leave after it {how} "
                f"at step {facts.step(end)}.",
                claim("same_thread", "send.started", "request.received"),
                order(facts, end, response),
            )
            return _moment("What did the client wait for?", head + rest, step)
        return None
    if send is not None and facts.awaited_call is not None and facts.in_coroutine(send):
        return _moment("What did the client wait for?", head + _awaited_answer(facts), step)
    handoff = facts.handoff
    if handoff is None or facts.worker_origin is None:
        return None
    parts = [head, _answered_without_waiting(facts, handoff, response)]
    end = facts.worker_end
    if end is not None:
        gap, gap_claim = gap_phrase(facts, *sorted((response, end), key=facts.position))
        what = "finished" if end.kind == "worker.finished" else ENDED[unanswered(end)]
        if facts.position(response) < facts.position(end):
            parts.append(
                sentence(
                    f" The worker {what} {gap} later, at step {facts.step(end)}.",
                    order(facts, response, end),
                    gap_claim,
                )
            )
        else:
            parts.append(
                sentence(
                    f" This time the worker had already {what} at step {facts.step(end)}, {gap} before the answer "
                    "left: nothing makes the two wait for each other, so either can come first.",
                    order(facts, end, response),
                    gap_claim,
                )
            )
    return _moment("Why didn't the client wait for the email?", join(parts, ""), step)


def _awaited_answer(facts: Facts) -> Sentence:
    """Why the answer of an async view came after its awaited send: only what the events show, or nothing."""
    called, loop, send, end = facts.awaited_call, facts.coroutine, facts.send, facts.send_end
    coroutine_end, response = facts.coroutine_end, facts.response
    if loop is None or send is None or end is None or coroutine_end is None or response is None:
        return Sentence("")
    if not facts.in_order(end, coroutine_end, response):
        return Sentence("")
    how = "returned" if end.kind == "smtp.accepted" else "raised"
    if facts.loop_sent:
        sent = "which called mail.send() itself, with no await, on that same thread"
        where = claim("same_thread", facts.ref(send), facts.ref(loop))
    else:
        sent, where = (
            f"which awaited mail.send() on {send.thread}",
            claim("other_thread", facts.ref(send), facts.ref(loop)),
        )
    return sentence(
        f" The route was written as async def: at step {facts.step(called)} app.ensure_sync() ran its coroutine on "
        f"{loop.thread}, the event loop's thread, {sent}, and the request's thread "
        f"waited meanwhile. mail.send() {how} at step {facts.step(end)}, the coroutine ended at step "
        f"{facts.step(coroutine_end)}, and only then could the answer leave: Flask runs an async view to its end "
        "before it answers.",
        claim("same_thread", facts.ref(called), "request.received"),
        claim("other_thread", facts.ref(loop), "request.received"),
        where,
        claim("other_thread", facts.ref(send), "request.received"),
        order(facts, end, coroutine_end),
        order(facts, coroutine_end, response),
        claim("same_thread", "response.sent", "request.received"),
    )


def _queued(facts: Facts) -> Moment | None:
    """A request that waited in the server before Flask saw it (a one-request-at-a-time server with company)."""
    arrived, received, wait = facts.arrived, facts.received, facts.queue_wait_ms
    if arrived is None or received is None or wait is None or wait < QUEUED_MS:
        return None
    waited, wait_claim = gap_phrase(facts, arrived, received)
    parts = [sentence(f"Before Flask even started on this request, it waited {waited} in the web server.", wait_claim)]
    answered = facts.server.answered(facts.ms(arrived), facts.ms(received))
    if answered:
        parts.append(
            sentence(
                f" Meanwhile the server finished {counted(len(answered), 'other request')}.",
                claim(
                    "server_answered",
                    "request.arrived",
                    "request.received",
                    len(answered),
                    slowest_wait_ms(answered),
                    wait_tol(answered),
                ),
            )
        )
    if facts.server_kind == "single":
        parts.append(
            sentence(
                " This server handles one request at a time, in the order they arrive.",
                claim("detail", "request.arrived", "server", Literal("single")),
            )
        )
    if facts.server_kind == "pooled" and facts.pool_threads is not None and facts.server.observed:
        parts.append(_pool_on_arrival(facts, arrived, facts.pool_threads))
    return _moment("Why did this request wait before it started?", join(parts, ""), facts.step(received))


def _pool_on_arrival(facts: Facts, arrived: Event, size: int) -> Sentence:
    """How busy the pool was when a request that then waited arrived: its threads, and the line ahead of it."""
    at_ms = facts.ms(arrived)
    busy, waiting = len(facts.server.busy(at_ms)), facts.server.waiting(at_ms)
    ahead = (
        f", and {counted(len(waiting), 'other request')} {'was' if len(waiting) == 1 else 'were'} already waiting"
        if waiting
        else ""
    )
    return sentence(
        f" This server runs requests on a pool of {counted(size, 'thread')} and keeps the rest waiting in line; when "
        f"this request arrived, {busy} of them {'was' if busy == 1 else 'were'} busy with other requests{ahead}.",
        claim("detail", "request.arrived", "server", Literal("pooled")),
        claim("detail", "request.arrived", "threads", size),
        claim("server_busy", "request.arrived", busy),
        waiting_claim("request.arrived", waiting, at_ms),
    )


def _answered_without_waiting(facts: Facts, handoff: Event, response: Event) -> Sentence:
    """The route handed the send on and did not wait for it; if you held the route at a gate, that is what its
    answer waited for."""
    claims = [order(facts, handoff, response), claim("same_thread", facts.ref(handoff), "request.received")]
    handed = f" At step {facts.step(handoff)} the route {HANDOFF_WORDS[facts.worker_origin]}"
    text = f"{handed} and answered without waiting for it."
    held = [
        (parked, released)
        for parked, released in facts.holds
        if facts.on_request(parked) and released is not None and facts.position(released) < facts.position(response)
    ]
    if held:
        parked, released = held[-1]
        gate = parked.details.get("gate")
        text = (
            f"{handed} and did not wait for it: its answer waited only for you, at the gate “{gate}” until step "
            f"{facts.step(released)}."
        )
        claims += [
            claim("same_thread", facts.ref(parked), "request.received"),
            claim("detail", facts.ref(parked), "gate", Literal(parked.details.get("gate"))),
            order(facts, released, response),
        ]
    return Sentence(text, tuple(claims))


def _blocked(facts: Facts) -> Moment | None:
    send = facts.send
    if send is None or not facts.on_request(send):
        return None
    end = facts.send_end
    if end is None:
        return None
    held, held_claim = gap_phrase(facts, send, end)
    parts = [
        sentence(
            f"From step {facts.step(send)} to step {facts.step(end)}, {held}, the request's thread sat inside "
            "mail.send().",
            held_claim,
            claim("same_thread", "send.started", "request.received"),
        )
    ]
    parts += _meanwhile(facts, send, end, "When it returned", "the blocked thread")
    return _moment("What does 'blocked' mean here?", join(parts, ""), facts.step(send))


def _task(facts: Facts) -> Moment | None:
    """An async view that created a task and did not await it: what became of the task, its send and the answer."""
    story = task_story(facts)
    return None if story is None else _moment(*story)


def _awaited(facts: Facts) -> Moment | None:
    """An async view: the request's thread waited in ``ensure_sync`` while the coroutine awaited the send elsewhere
    (a view that left its send to a task has its own moment)."""
    called, loop, end, response = facts.awaited_call, facts.coroutine, facts.coroutine_end, facts.response
    if called is None or loop is None or end is None or facts.task_created is not None:
        return None
    closed = facts.loop_closed
    until = closed if closed is not None and facts.position(end) < facts.position(closed) else end
    held, held_claim = gap_phrase(facts, called, until)
    closing = f" and its event loop closed (step {facts.step(until)})" if until is closed else ""
    text = (
        f"From step {facts.step(called)} to step {facts.step(until)}, {held}, the request's thread waited in "
        f"app.ensure_sync() while the coroutine ran on the event loop's thread, {loop.thread}, until it ended (step "
        f"{facts.step(end)}){closing}"
    )
    claims = [
        held_claim,
        claim("same_thread", facts.ref(called), "request.received"),
        claim("other_thread", facts.ref(loop), "request.received"),
        claim("same_thread", facts.ref(end), facts.ref(loop)),
        facts.shown_at(end),
        facts.shown_at(until),
    ]
    send = facts.send
    if send is not None and facts.in_coroutine(send) and send.thread_id != loop.thread_id:
        text += f", and mail.send() on {send.thread}"
        claims.append(claim("other_thread", facts.ref(send), facts.ref(loop)))
        claims.append(claim("other_thread", facts.ref(send), "request.received"))
    if send is not None and facts.loop_sent:
        text += f", itself blocked in mail.send() from step {facts.step(send)}: nothing was awaited"
        claims.append(claim("same_thread", facts.ref(send), facts.ref(loop)))
    text += "."
    if response is not None and facts.position(end) < facts.position(response):
        freed = (
            "Awaiting freed the event loop's thread, not the request's"
            if not facts.loop_sent
            else "Neither thread was free"
        )
        text += (
            f" {freed}: the request's thread answered only after the coroutine ended, at step {facts.step(response)}."
        )
        claims.append(order(facts, end, response))
        claims.append(claim("same_thread", "response.sent", "request.received"))
    parts = [Sentence(text, tuple(claims))]
    parts += _meanwhile(facts, called, end, "When the coroutine ended", "the waiting thread")
    title = "Did async def free the request's thread?" if facts.loop_sent else "Did awaiting free the request's thread?"
    return _moment(title, join(parts, ""), facts.step(called))


def _meanwhile(facts: Facts, start: Event, end: Event, when: str, holder: str) -> list[Sentence]:
    """What the web server did for other clients while this request's thread was held from ``start`` to ``end``:
    those it answered, those left waiting for a handler, those it was still handling; ``when`` opens the sentences
    about the moment ``end`` ("When it returned"), and ``holder`` names the held thread."""
    server = facts.server
    if not server.observed:
        return [
            sentence(
                " What other clients saw meanwhile depends on the web server, and none was watched in this run.",
                "not(server_observed())",
            )
        ]
    parts = []
    answered = server.answered(facts.ms(start), facts.ms(end))
    waiting = server.waiting(facts.ms(end))
    busy = server.busy(facts.ms(end))
    slowest_ms, tol = slowest_wait_ms(answered), wait_tol(answered)
    span = claim("server_answered", facts.ref(start), facts.ref(end), len(answered), slowest_ms, tol)
    if answered:
        slowest, _ = shown_ms(slowest_ms)
        parts.append(
            sentence(
                f" Meanwhile the server answered {counted(len(answered), 'other request')}, the slowest in {slowest}: "
                "this request's wait did not stop the server answering others.",
                span,
            )
        )
    if waiting:
        oldest_ms = max(facts.ms(end) - r.arrived_ms for r in waiting)
        oldest, tol = shown_ms(oldest_ms)
        waited = sentence(
            f" {when}, {counted(len(waiting), 'other request')} had been waiting for a handler, the "
            f"oldest for {oldest}",
            claim("server_waiting", facts.ref(end), len(waiting), round(oldest_ms, 3), tol),
        )
        if facts.server_kind == "single":
            waited += sentence(
                f": this server handles one request at a time, and {holder} was that one",
                claim("detail", "request.arrived", "server", Literal("single")),
            )
        elif facts.server_kind == "pooled" and facts.pool_threads == len(busy) + 1:
            waited += sentence(
                f": the only thread of this server's pool was busy, {holder} on it"
                if facts.pool_threads == 1
                else f": all {facts.pool_threads} threads of this server's pool were busy, {holder} on one",
                claim("detail", "request.arrived", "server", Literal("pooled")),
                claim("detail", "request.arrived", "threads", facts.pool_threads),
                claim("server_busy", facts.ref(end), len(busy)),
            )
        parts.append(waited + ".")
    if busy:
        parts.append(
            sentence(
                f" {when}, {counted(len(busy), 'other request')} {'was' if len(busy) == 1 else 'were'} "
                "still being handled, each on a thread of its own.",
                claim("server_busy", facts.ref(end), len(busy)),
            )
        )
    if not answered and not waiting and not busy:
        kind = facts.server_kind
        other, claims = _had_some_come(facts, kind)
        parts.append(
            Sentence(
                f" No other request came in meanwhile, so nobody else was kept waiting; had some come, {other}.",
                (
                    span,
                    claim("server_waiting", facts.ref(end), 0, 0, 0),
                    claim("server_busy", facts.ref(end), 0),
                    claim("detail", "request.arrived", "server", Literal(kind)),
                    *claims,
                ),
            )
        )
    return parts


def _had_some_come(facts: Facts, kind: str | None) -> tuple[str, tuple[str, ...]]:
    """What this kind of server does with requests that come while one of its threads is held and no other is
    busy, with the claims that depend on the run."""
    if kind == "single":
        return (
            "this one-request-at-a-time server would have kept them waiting, where a threaded server answers them on "
            "threads of their own",
            (),
        )
    size = facts.pool_threads
    if kind == "pooled" and size is not None:
        size_claim = (claim("detail", "request.arrived", "threads", size),)
        if size == 1:
            return (
                "they would have waited in line: this server's pool has one thread, and this request held it",
                size_claim,
            )
        return (
            f"this server would have run them on the {size - 1} other threads of its pool of {size}, and kept any "
            "more waiting in line",
            size_claim,
        )
    return (
        "this threaded server would have answered them on threads of their own; a one-request-at-a-time server would "
        "have kept them waiting",
        (),
    )


ENDED = {False: "failed", True: "ended without an answer"}  # a worker's end, by whether an answer came


def _how_it_ended(facts: Facts, failed: Event, error: str) -> Sentence:
    """The send's last failure, and what it meant for the email: when the whole message went out and no answer
    came, the client cannot know; the sink's lane, if the trace has one, can."""
    quote = quoted(facts.ref(failed), failed.details)
    if not fate_unknown(failed):
        return sentence(f"By step {facts.step(failed)} the send had failed for good: {error}.", quote)
    if unanswered(failed):
        ended = sentence(f"At step {facts.step(failed)} the send ended without an answer: {error}.", quote)
    else:
        ended = sentence(
            f"At step {facts.step(failed)} the worker gave up, not knowing the email's fate: {error}.",
            quote,
            claim("detail", facts.ref(failed), "answered", Literal(True)),
        )
    copies, copy_claims = mailbox_at(facts)
    if copies:
        steps = ", ".join(str(facts.step(e)) for e in copies)
        stored = Sentence(
            f" The sink's side of the trace settles it: the sink stored the email {times(len(copies))} "
            f"(step{'s' if len(copies) > 1 else ''} {steps}: ",
            copy_claims,
        ) + message_numbers(facts, copies)
        heard = " and the sender never heard a 250 for it" if len(copies) == 1 else " and the sender heard no 250"
        return (
            ended
            + stored
            + sentence(
                f"), so the email arrived{' more than once' if len(copies) > 1 else ''},{heard}.",
                claim("absent", "smtp.accepted"),
            )
        )
    if facts.sink_lane_ended:
        return ended + Sentence(
            " The sink's side of the trace settles it: the sink stored nothing, so the email did not arrive.",
            copy_claims,
        )
    return ended


def _failure(facts: Facts) -> Moment | None:
    failed = facts.final_failure
    if failed is None:
        return None
    error = str(failed.details.get("error", "")).rstrip(".")
    parts = [_how_it_ended(facts, failed, error)]
    if "application context" in error and facts.worker is not None and facts.worker_context is None:
        parts.append(
            sentence(
                " The worker needed current_app, which exists only inside an application context, and this thread "
                "had pushed none.",
                claim("absent", "context.pushed"),
                claim("other_thread", "worker.started", "request.received"),
            )
        )
    last_failed = facts.last("smtp.failed")
    code = last_failed.details.get("code") if last_failed is not None else None  # the last try's answer decides
    attempts = facts.all("attempt.started")
    last_try = facts.last("attempt.failed")
    if code and code >= 500 and attempts and last_try is not None and last_try.details.get("policy") == BLIND:
        parts.append(
            sentence(
                f" A {code} answer is permanent, but this worker retries whatever the error: it stopped only because "
                f"attempt {len(attempts)} was the last it allows.",
                claim("count", "attempt.started", len(attempts)),
                claim("detail", facts.ref(last_try), "final", Literal(True)),
                claim("detail", facts.ref(last_failed), "code", Literal(code)),
                claim("detail", facts.ref(last_try), "policy", Literal(BLIND)),
            )
        )
    elif code and code >= 500 and attempts:
        parts.append(
            sentence(
                f" A {code} answer is permanent, so attempt {len(attempts)} was the last.",
                claim("count", "attempt.started", len(attempts)),
                claim("detail", facts.ref(last_failed), "code", Literal(code)),
            )
        )
    response = facts.response
    if failed.kind == "worker.failed":
        parts.append(
            sentence(
                " The sandbox caught the error the worker raised and recorded it; /api/failures lists it.",
                claim("happened", "worker.failed"),
            )
        )
        if response is not None:
            gap, gap_claim = gap_phrase(facts, *sorted((response, failed), key=facts.position))
            status = claim("detail", "response.sent", "status", Literal(facts.status))
            if facts.position(response) < facts.position(failed):
                parts.append(
                    sentence(
                        f" The client had its HTTP {facts.status} {gap} before the worker {ENDED[unanswered(failed)]}: "
                        "its answer cannot tell it.",
                        order(facts, response, failed),
                        gap_claim,
                        status,
                    )
                )
            else:
                parts.append(
                    sentence(
                        f" The worker {ENDED[unanswered(failed)]} {gap} before the answer left, and the answer still "
                        f"said HTTP {facts.status}: the route did not wait to find out.",
                        order(facts, failed, response),
                        gap_claim,
                        status,
                    )
                )
    elif response is not None and facts.task_created is not None:
        parts.append(task_failure(facts, failed))
    elif response is not None and _raised_through_coroutine(facts, failed):
        raised = facts.first("coroutine.failed")
        parts.append(
            sentence(
                f" It came back through the coroutine that {'made' if facts.loop_sent else 'awaited'} the send, which "
                f"raised it at step "
                f"{facts.step(raised)}, to the request's thread, and the route turned it into HTTP {facts.status} for "
                f"the client at step {facts.step(response)}.",
                order(facts, failed, raised),
                order(facts, raised, response),
                claim("same_thread", "response.sent", "request.received"),
                claim("detail", "response.sent", "status", Literal(facts.status)),
            )
        )
    elif response is not None:
        parts.append(
            sentence(
                f" The route turned it into HTTP {facts.status} for the client at step {facts.step(response)}.",
                order(facts, failed, response),
                claim("detail", "response.sent", "status", Literal(facts.status)),
            )
        )
        if (
            (facts.status or 0) >= 500
            and facts.in_mailbox is not None
            and facts.position(facts.in_mailbox) < facts.position(response)
        ):
            parts.append(
                sentence(
                    " So the client was told of a failure for an email that had arrived: a user who tries again "
                    "sends a second copy.",
                    order(facts, facts.in_mailbox, response),
                    claim("happened", facts.ref(facts.in_mailbox)),
                )
            )
    return _moment("Where did the error go?", join(parts, ""), facts.step(failed))


def _raised_through_coroutine(facts: Facts, failed: Event) -> bool:
    """The send's failure was raised again by the coroutine that awaited it, before the answer."""
    raised, response = facts.first("coroutine.failed"), facts.response
    return (
        facts.awaited_call is not None
        and raised is not None
        and response is not None
        and facts.in_order(failed, raised, response)
    )


def _retries(facts: Facts) -> Moment | None:
    failed = [e for e in facts.all("attempt.failed") if not e.details.get("final")]
    if not failed:
        return None
    first = failed[0]
    attempt = int(first.details.get("attempt", 1))
    planned = first.details.get("retry_in_s")
    ref = facts.ref(first)
    said = [
        claim("detail", ref, "retry_in_s", Literal(planned)),
        claim("detail", ref, "final", Literal(False)),
        quoted(ref, first.details),
    ]
    if first.details.get("policy") == BLIND:
        parts = [
            sentence(
                f"At step {facts.step(first)} attempt {attempt} failed ({first.details.get('error', '')}). This worker "
                f"retries after any error, so it planned to send the very same message again after "
                f"{float(planned or 0):g} s.",
                *said,
                claim("detail", ref, "policy", Literal(BLIND)),
            )
        ]
        if unanswered(first):
            parts.append(
                sentence(
                    " But the whole message had gone out and no answer came: it may already have been in the "
                    "mailbox, so sending it again risked a second copy.",
                    claim("detail", ref, "outcome", Literal("unknown")),
                )
            )
    else:
        parts = [
            sentence(
                f"At step {facts.step(first)} attempt {attempt} failed in a way worth retrying "
                f"({first.details.get('error', '')}); a retry was planned after {float(planned or 0):g} s.",
                *said,
            )
        ]
    following = [e for e in facts.attempts if int(e.details.get("attempt", 0)) == attempt + 1]
    if following:
        gap, gap_claim = gap_phrase(facts, first, following[0])
        parts.append(sentence(f" Attempt {attempt + 1} began {gap} later.", gap_claim))
    if facts.outcome == "delivered":
        proof = facts.in_mailbox or facts.first("smtp.accepted")
        parts.append(sentence(" In the end the email reached the mailbox.", claim("happened", facts.ref(proof))))
    elif facts.outcome == "failed":
        parts.append(
            sentence(" In the end it could not be delivered.", claim("happened", facts.ref(facts.final_failure)))
        )
    elif facts.outcome == "unknown" and unanswered(facts.final_failure):
        parts.append(
            sentence(
                " In the end nobody can tell from this side whether it arrived: the last attempt sent the whole "
                "message and got no answer.",
                claim("detail", facts.ref(facts.final_failure), "outcome", Literal("unknown")),
            )
        )
    elif facts.outcome == "unknown":
        parts.append(
            sentence(
                " In the end nobody can tell from this side whether it arrived: the last attempt was refused, but an "
                "earlier one had sent the whole message and got no answer.",
                claim("detail", facts.ref(facts.final_failure), "outcome", Literal("unknown")),
                claim("detail", facts.ref(facts.final_failure), "answered", Literal(True)),
            )
        )
    return _moment("What did the retry do?", join(parts, ""), facts.step(first))


def _copies(facts: Facts) -> Moment | None:
    """More than one copy reached the sink: how many the mailbox holds, and whether the sink recognised them."""
    copies, copy_claims = mailbox_at(facts)
    recognised = facts.recognised_copies
    if len(copies) < 2 and not recognised:
        return None
    sent = [c for c in facts.conversations if c.received is not None and c.sink_end is not None]
    if copies:
        steps = ", ".join(str(facts.step(e)) for e in copies)
        parts = [
            Sentence(
                f"The sink stored this email {times(len(copies))}, at step{'s' if len(copies) > 1 else ''} {steps}: ",
                copy_claims,
            )
            + message_numbers(facts, copies)
            + "."
        ]
    else:
        parts = [Sentence("The sink stored no new copy of this email.", copy_claims)]
    if recognised:
        steps = ", ".join(str(facts.step(e)) for e in recognised)
        originals = sorted({int(e.details.get("duplicate_of", 0)) for e in recognised})
        parts.append(
            sentence(
                f" At step{'s' if len(recognised) > 1 else ''} {steps} it recognised the Message-ID of message "
                f"{' and '.join(f'#{n}' for n in originals)}, which it already held, and stored nothing new: an "
                "idempotent receiver turns repeated sends of one message into one copy.",
                *(
                    claim("detail", facts.ref(e), "duplicate_of", Literal(e.details.get("duplicate_of")))
                    for e in recognised
                ),
            )
        )
    headers = {str(c.received.details.get("message_id_header", "")) for c in sent}
    if len(copies) > 1 and len(headers) == 1 and "" not in headers:
        parts.append(
            sentence(
                f" Every copy carried the same Message-ID, {next(iter(headers))}: the same message was sent again "
                "after a send whose result the sender never learned. That is at-least-once delivery: nothing lost, "
                "but copies possible.",
                *(
                    claim(
                        "detail",
                        facts.ref(c.received),
                        "message_id_header",
                        Literal(c.received.details.get("message_id_header")),
                    )
                    for c in sent
                ),
            )
        )
    return _moment("How many copies arrived?", join(parts, ""), facts.step((copies or recognised)[-1]))


def _pickup(facts: Facts) -> Moment | None:
    handoff, worker = facts.handoff, facts.worker
    if handoff is None or worker is None or facts.worker_origin == "route":
        return None
    gap, gap_claim = gap_phrase(facts, handoff, worker)
    who = "a pool thread" if facts.worker_origin == "pool" else "a consumer thread of the queue"
    text = sentence(
        f"At step {facts.step(handoff)} the route {HANDOFF_WORDS[facts.worker_origin]}; {who}, {worker.thread}, "
        f"took it up at step {facts.step(worker)}, {gap} later. The route started no thread for this email: "
        f"{worker.thread} works for the {'pool' if facts.worker_origin == 'pool' else 'queue'}, not for this request.",
        gap_claim,
        claim("absent", "worker.spawned"),
        claim("other_thread", "worker.started", "request.received"),
    )
    return _moment("Who picks the send up?", text, facts.step(handoff))


def _cpu_work(facts: Facts) -> Moment | None:
    """A worker that computed: what its computation cost the requests the server answered meanwhile."""
    started, finished = facts.first("cpu.started"), facts.first("cpu.finished")
    if started is None or finished is None:
        return None
    took, took_claim = gap_phrase(facts, started, finished)
    parts = [
        sentence(
            f"From step {facts.step(started)} to step {facts.step(finished)} the worker computed in pure Python for "
            f"{took}, holding the GIL except when the interpreter passed it on.",
            took_claim,
        )
    ]
    server = facts.server
    if not server.observed:
        parts.append(
            sentence(
                " What it cost other requests needs the web server's log, and none was watched in this run.",
                negate(claim("server_observed")),
            )
        )
        return _moment("What did the computation cost the others?", join(parts, ""), facts.step(started))
    answered = server.answered(facts.ms(started), facts.ms(finished))
    span = claim(
        "server_answered",
        facts.ref(started),
        facts.ref(finished),
        len(answered),
        slowest_wait_ms(answered),
        wait_tol(answered),
    )
    if answered:
        slowest, _ = shown_ms(slowest_wait_ms(answered))
        parts.append(
            sentence(
                f" Meanwhile the server answered {counted(len(answered), 'other request')}, the slowest in {slowest}: "
                "a computing thread does not stop the others, it takes turns with them, one at a time.",
                span,
            )
        )
    else:
        parts.append(sentence(" No other request was answered meanwhile.", span))
    return _moment("What did the computation cost the others?", join(parts, ""), facts.step(started))


def _sink_hold(facts: Facts) -> Moment | None:
    started = facts.first("sink.delay_started")
    response = facts.response
    if started is None or response is None:
        return None
    end = facts.sink_hold_end(started)
    if end is None:
        return None
    held, held_claim = gap_phrase(facts, started, end)
    parts = [
        sentence(f"At step {facts.step(started)} the sink began to hold the email; {held} passed ", held_claim)
        + hold_ending(facts, end, 1)
        + "."
    ]
    if facts.position(end) < facts.position(response):
        after, after_claim = gap_phrase(facts, end, response)
        parts.append(
            sentence(
                f" All of that wait was inside the client's: the answer left {after} after the sink's.",
                order(facts, end, response),
                after_claim,
            )
        )
    elif facts.position(response) < facts.position(started):
        before, before_claim = gap_phrase(facts, response, started)
        parts.append(
            sentence(
                f" The client did not wait for any of it: its answer had left {before} before the sink began to hold.",
                order(facts, response, started),
                before_claim,
            )
        )
    else:
        into, into_claim = gap_phrase(facts, started, response)
        parts.append(
            sentence(
                f" The HTTP answer left {into} into the sink's wait, before that wait ended.",
                order(facts, started, response),
                order(facts, response, end),
                into_claim,
            )
        )
    return _moment("How long did the sink hold the email?", join(parts, ""), facts.step(started))


def _arrival(facts: Facts) -> Moment | None:
    arrived = facts.in_mailbox
    if arrived is None:
        return None
    ref = facts.ref(arrived)
    number = claim("detail", ref, "message_id", Literal(arrived.details.get("message_id")))
    found = "found by this trace's id in its X-Sandbox-Trace header"
    if not stores_copy(arrived):
        what = "answered 250" if arrived.kind == "sink.accepted" else "hung up without answering"
        head = sentence(
            f"At step {facts.step(arrived)} the sink recognised this email's Message-ID as that of message "
            f"#{arrived.details.get('duplicate_of')}, which it already held, {what}, and stored nothing new.",
            claim("detail", ref, "duplicate_of", Literal(arrived.details.get("duplicate_of"))),
        )
    elif arrived.kind == "sink.accepted":
        head = sentence(
            f"At step {facts.step(arrived)} the sink answered 250 and stored message "
            f"#{arrived.details.get('message_id')}, {found}.",
            number,
        )
    else:
        head = sentence(
            f"At step {facts.step(arrived)} the sink stored message #{arrived.details.get('message_id')}, {found}, "
            "then hung up without answering 250.",
            number,
            negate(claim("detail", ref, "stored", Literal(False))),
        )
    parts = [head]
    conversation = facts.conversation_of(arrived)
    client_end = conversation.client_end if conversation is not None else None
    if arrived.kind == "sink.accepted" and client_end is not None and client_end.kind == "smtp.accepted":
        parts.append(
            sentence(
                f" The sender saw that 250 at step {facts.step(client_end)}, when mail.send() returned.",
                order(facts, arrived, client_end),
                claim("same_thread", facts.ref(client_end), facts.ref(conversation.data)),
            )
        )
    elif client_end is not None and client_end.kind == "smtp.failed" and fate_unknown(client_end):
        parts.append(
            sentence(
                f" The sender never heard a 250 for it: at step {facts.step(client_end)} mail.send() raised, not "
                "knowing whether it had arrived.",
                claim("detail", facts.ref(client_end), "outcome", Literal("unknown")),
                claim("same_thread", facts.ref(client_end), facts.ref(conversation.data)),
            )
        )
    response = facts.response
    if response is not None and facts.send is not None and not facts.on_request(facts.send):
        gap, gap_claim = gap_phrase(facts, *sorted((response, arrived), key=facts.position))
        what = "250" if arrived.kind == "sink.accepted" else "store"
        if facts.position(response) < facts.position(arrived):
            parts.append(
                sentence(
                    f" The sink's {what} came {gap} after the client had its answer.",
                    order(facts, response, arrived),
                    gap_claim,
                )
            )
        elif (
            facts.awaited_call is not None
            and facts.in_coroutine(facts.send)
            and facts.coroutine_end is not None
            and facts.position(facts.coroutine_end) < facts.position(response)
        ):
            parts.append(
                sentence(
                    f" The sink's {what} came {gap} before the answer left: the route's coroutine "
                    f"{'made the send itself' if facts.loop_sent else 'awaited the send'}, and the answer waited for "
                    "the coroutine.",
                    order(facts, arrived, response),
                    gap_claim,
                    order(facts, facts.awaited_call, facts.send),
                    order(facts, facts.coroutine_end, response),
                )
            )
        elif (
            (closed := facts.loop_closed) is not None
            and facts.send is facts.task_send
            and facts.in_order(arrived, closed, response)
        ):
            parts.append(
                sentence(
                    f" The sink's {what} came {gap} before the answer left: the view's event loop closed only after "
                    "its task's send had ended.",
                    order(facts, arrived, closed),
                    order(facts, closed, response),
                    gap_claim,
                )
            )
        else:
            parts.append(
                sentence(
                    f" The sink's {what} came {gap} before the answer left, this time.",
                    order(facts, arrived, response),
                    gap_claim,
                )
            )
    return _moment("How do we know the email arrived?", join(parts, ""), facts.step(arrived))
