"""Quiz questions whose right answers, wrong options and feedback are computed from a trace's facts.

Each option carries the claim that makes it right (or, for a wrong one, the claim that it is false), and each
wrong option has feedback that names the misconception and says what the run showed instead. The same trace and
seed give the same quiz.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandbox.trace.claims import Literal, Sentence, claim, negate, sentence
from sandbox.trace.clock import shown_gap, shown_ms
from sandbox.trace.facts import IN_MAILBOX_ENDS, Facts, gap_phrase, slowest_wait_ms, stores_copy, unanswered, wait_tol
from sandbox.trace.steps import (
    AWAITING_STATE,
    Row,
    counted,
    mailbox_at,
    message_numbers,
    quoted,
    request_state,
    times,
    waiting_claim,
)
from sandbox.trace.tracer import SINK_THREAD_NAME, Event

OPTIONS_PER_QUESTION = 4
# In the order a student meets them: what the run was about first (who waited, which came first, why it failed),
# then its details (threads, times), and last the questions a student answers by reading the table's step numbers.
QUIZ_KINDS = (
    "which_first",
    "who_waits",
    "why_no_context",
    "send_thread",
    "wait_time",
    "copies",
    "killed_at",
    "async_def",
    "created_task",
    "other_mode",
    "thread_count",
    "request_thread_at",
    "response_step",
    "accept_step",
)
# The live trace page's quiz when no lesson names its kinds: fewer questions, with the stepper's step numbers (the
# table is folded away there) left to the full JSON and the written files.
PAGE_QUIZ_KINDS = QUIZ_KINDS[: QUIZ_KINDS.index("response_step")]
# Questions about how long things took, or what a crash at one moment would cost: not asked of a send whose threads
# were held at gates, where the answer would teach the holding, not the program.
NATURAL_KINDS = ("wait_time", "killed_at")

# What a step did, in a few words, for options and feedback.
LABELS = {
    "request.arrived": "the server had the request",
    "request.received": "Flask started handling the request",
    "message.built": "the route built the message",
    "worker.spawned": "the route started the worker thread",
    "worker.started": "the worker began",
    "cpu.started": "the worker began computing",
    "cpu.finished": "the worker finished computing",
    "context.pushed": "the worker pushed the app context",
    "send.started": "mail.send() was called",
    "smtp.connected": "smtplib connected to the server",
    "smtp.data_sent": "smtplib sent the message data",
    "sink.data_received": "the sink received the message",
    "sink.delay_started": "the sink began its wait",
    "sink.accepted": "the sink accepted the email",
    "smtp.accepted": "mail.send() returned",
    "smtp.failed": "mail.send() raised an error",
    "pool.queued": "the route queued the send for the pool",
    "queue.stored": "the route stored the task",
    "queue.unavailable": "the route found the queue's store out of reach",
    "pool.full": "the route found the pool's queue full",
    "attempt.started": "an attempt began",
    "attempt.failed": "an attempt failed",
    "sink.reply_lost": "the sink stored the email and hung up without answering",
    "sink.rejected": "the sink rejected the message",
    "sink.disconnected": "the sink hung up",
    "sink.client_left": "the sink found the client gone",
    "worker.finished": "the worker finished",
    "worker.failed": "the worker failed",
    "coroutine.called": "the route handed its coroutine to app.ensure_sync()",
    "coroutine.started": "the coroutine began on the event loop's thread",
    "coroutine.finished": "the coroutine returned",
    "coroutine.failed": "the coroutine raised the send's error",
    "task.created": "the view created a task",
    "task.started": "the view's task started",
    "task.cancelled": "the view's task was cancelled",
    "task.failed": "the view's task raised",
    "task.finished": "the view's task finished",
    "loop.closed": "the view's event loop closed",
    "task.unsent": "the sandbox found the task's email never sent",
    "response.sent": "the answer left for the client",
}
# The same steps when no answer came after the data: the sender gave up without learning the email's fate.
UNANSWERED_LABELS = {
    "smtp.failed": "mail.send() ended without an answer",
    "attempt.failed": "an attempt got no answer",
    "worker.failed": "the worker ended without an answer",
}


# The sink's ends for a copy it recognised by its Message-ID: it stored nothing new.
RECOGNISED_LABELS = {
    "sink.accepted": "the sink answered 250 to a copy it already held",
    "sink.reply_lost": "the sink recognised a copy it already held and hung up without answering",
}


def label(event: Event) -> str:
    """What the step did, in a few words, true to how it ended."""
    if unanswered(event) and event.kind in UNANSWERED_LABELS:
        return UNANSWERED_LABELS[event.kind]
    if event.kind in RECOGNISED_LABELS and not stores_copy(event):
        return RECOGNISED_LABELS[event.kind]
    return LABELS.get(event.kind, event.kind)


@dataclass(frozen=True)
class Question:
    kind: str
    question: str
    options: list[str]
    answer: int
    explanation: str
    step: int | None
    misconceptions: list[str | None]
    feedback: list[str]
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "question": self.question,
            "options": self.options,
            "answer": self.answer,
            "explanation": self.explanation,
            "step": self.step,
            "misconceptions": self.misconceptions,
            "feedback": self.feedback,
        }


@dataclass(frozen=True)
class Choice:
    """An option, the claims that make it right (for a wrong one: that it is false), and what to say if picked."""

    text: str
    claims: tuple[str, ...]
    misconception: str | None = None
    feedback: Sentence = field(default_factory=lambda: Sentence(""))


def make_quiz(
    facts: Facts, rows: list[Row], seed: int = 0, other: Facts | None = None, kinds: Sequence[str] = QUIZ_KINDS
) -> list[Question]:
    """The questions of ``kinds`` this run can support; ``other`` is the other send of the same comparison."""
    # Each kind draws from its own generator, so a question reads the same whichever other kinds are asked with it
    # (the page, a lesson and the server judging an answer all build the same options in the same order).
    builders: dict[str, Callable[[random.Random], Question | None]] = {
        "response_step": lambda rng: _step_question(facts, rows, rng, "response_step", "response.sent"),
        "accept_step": lambda rng: _step_question(facts, rows, rng, "accept_step", "sink.accepted"),
        "send_thread": lambda rng: _send_thread(facts, rng),
        "wait_time": lambda rng: _wait_time(facts, rng),
        "request_thread_at": lambda rng: _request_thread_at(facts, rng),
        "which_first": lambda rng: _which_first(facts, rng),
        "thread_count": lambda rng: _thread_count(facts, rows, rng),
        "other_mode": lambda rng: _other_mode(facts, other, rng),
        "killed_at": lambda rng: _killed_at(facts, rng),
        "why_no_context": lambda rng: _why_no_context(facts, rng),
        "who_waits": lambda rng: _who_waits(facts, rng),
        "copies": lambda rng: _copies(facts, rng),
        "async_def": lambda rng: _async_def(facts, rng),
        "created_task": lambda rng: _created_task(facts, rng),
    }
    if facts.holds:  # held at gates, the run's times and its state at a moment are what you made them
        kinds = [kind for kind in kinds if kind not in NATURAL_KINDS]
    questions = [
        builders[kind](random.Random(f"{seed}:{facts.trace.trace_id}:{kind}")) for kind in QUIZ_KINDS if kind in kinds
    ]
    return [q for q in questions if q is not None]


def _question(
    kind: str,
    text: Sentence,
    right: Choice,
    wrong: list[Choice],
    explanation: Sentence,
    step: int | None,
    rng: random.Random,
) -> Question | None:
    """Shuffle the right choice among up to three distinct wrong ones; no question without two wrong ones."""
    seen = {right.text}
    distinct = []
    for choice in wrong:
        if choice.text not in seen:
            seen.add(choice.text)
            distinct.append(choice)
    if len(distinct) < 2:
        return None
    choices = [right, *distinct[: OPTIONS_PER_QUESTION - 1]]
    rng.shuffle(choices)
    answer = choices.index(right)
    right_feedback = Sentence("Right. ") + explanation
    feedback = [right_feedback if c is right else c.feedback for c in choices]
    claims = {"question": text.claims, "explanation": explanation.claims}
    for index, choice in enumerate(choices):
        claims[f"options[{index}]"] = choice.claims
        claims[f"feedback[{index}]"] = feedback[index].claims
    return Question(
        kind,
        text.text,
        [c.text for c in choices],
        answer,
        explanation.text,
        step,
        [c.misconception for c in choices],
        [f.text for f in feedback],
        claims,
    )


def _relation(facts: Facts, event: Event, anchor: Event) -> Sentence:
    """``"12.3 ms before"`` / ``"after"`` the anchor, with the claims."""
    first, second = sorted((event, anchor), key=facts.position)
    value = facts.gap_ms(first, second)
    text, tol = shown_gap(value)
    word = "before" if event is first else "after"
    return sentence(
        f"{text} {word}",
        claim("before", facts.ref(first), facts.ref(second)),
        claim("gap_ms", facts.ref(first), facts.ref(second), round(value, 3), tol),
    )


MISREADS = "Reads the table too quickly: the right step is next to this one"
STEP_MISCONCEPTIONS = {
    ("response_step", "sink.accepted"): "Believes the answer waits for the email to be accepted",
    ("response_step", "worker.finished"): "Believes the answer waits for the worker to finish",
    ("response_step", "worker.failed"): "Believes the answer waits for the worker to finish",
    ("response_step", "send.started"): "Believes the answer leaves as soon as mail.send() is called",
    ("response_step", "request.received"): "Believes Flask answers before it does the route's work",
    ("accept_step", "response.sent"): "Believes the email is delivered when the answer is sent",
    ("accept_step", "smtp.data_sent"): "Believes sending the data is the same as the server accepting it",
    ("accept_step", "send.started"): "Believes calling mail.send() delivers the email at once",
    ("accept_step", "worker.finished"): "Believes the email counts as accepted only when the worker ends",
}


# The same two wrong steps when the answer left after the sink's 250 (the route waited for the send): then picking
# one is not believing that the answer waits, or that answering delivers, but taking one event for the other.
AFTER_ACCEPT_MISCONCEPTIONS = {
    ("response_step", "sink.accepted"): "Believes the sink's 250 is the route's HTTP answer",
    ("accept_step", "response.sent"): "Believes the route's HTTP answer is the sink's 250",
}


def _step_misconception(facts: Facts, kind: str, event: Event) -> str | None:
    """The misconception a wrong step stands for, true to this run's order of answer and 250; None for a step
    that stands for none (a neighbour, or not the first event of its kind)."""
    if facts.first(event.kind) is not event:
        return None
    accepted, response = facts.first("sink.accepted"), facts.response
    answered_after = (
        accepted is not None and response is not None and facts.position(accepted) < facts.position(response)
    )
    if answered_after and (kind, event.kind) in AFTER_ACCEPT_MISCONCEPTIONS:
        return AFTER_ACCEPT_MISCONCEPTIONS[(kind, event.kind)]
    return STEP_MISCONCEPTIONS.get((kind, event.kind))


def _you_may(misconception: str) -> str:
    """A misconception tag ("Believes the answer waits...") said to the student: "You may believe the answer..."."""
    for tag, said in (("Believes ", "You may believe "), ("Blames ", "You may be blaming ")):
        if misconception.startswith(tag):
            return said + misconception.removeprefix(tag)
    if misconception == MISREADS:
        return "You may have read the table too quickly: the right step is next to this one"
    return "You may be " + misconception[0].lower() + misconception[1:]


def _step_question(facts: Facts, rows: list[Row], rng: random.Random, kind: str, event_kind: str) -> Question | None:
    right_event = facts.first(event_kind)
    if right_event is None:
        return None
    copies = facts.stored_copies
    if event_kind == "sink.accepted" and (len(copies) != 1 or copies[0] is not right_event or facts.recognised_copies):
        return None  # the email reached the mailbox some other way too: "the step it was accepted" is not one step
    n = facts.step(right_event)
    label_text = label(right_event)
    tagged = [facts.first(k) for (q, k) in STEP_MISCONCEPTIONS if q == kind]
    wrong_events = [e for e in tagged if e is not None and e is not right_event]
    for offset in (1, -1, 2, -2, 3):
        if 1 <= n + offset <= len(facts.visible):
            wrong_events.append(facts.visible[n + offset - 1])
    wrong = []
    for event in wrong_events:
        k = facts.step(event)
        misconception = _step_misconception(facts, kind, event)
        relation = _relation(facts, event, right_event)
        feedback = (
            sentence(
                f"{_you_may(misconception or MISREADS)}. Step {k} is where {label(event)}, ",
                facts.shown_at(event),
            )
            + relation
            + sentence(f" step {n}, where {label_text}.", claim("step", n, event_kind))
        )
        wrong.append(Choice(f"Step {k}", (negate(claim("step", k, event_kind)),), misconception or MISREADS, feedback))
    at, tol = shown_ms(facts.ms(right_event))
    explanation = sentence(
        f"At step {n}, {at} after the server had the request, {label_text}.",
        claim("step", n, event_kind),
        claim("at_ms", event_kind, round(facts.ms(right_event), 3), tol),
    )
    question = (
        "At which step did the answer leave for the client?"
        if kind == "response_step"
        else ("At which step did the SMTP sink accept the email?")
    )
    return _question(
        kind,
        sentence(question, claim("happened", event_kind)),
        Choice(f"Step {n}", (claim("step", n, event_kind),)),
        wrong,
        explanation,
        n,
        rng,
    )


def worker_label(facts: Facts) -> str:
    origin = facts.worker_origin
    return {"route": "a thread the route started", "pool": "a pool thread", "consumer": "a queue consumer thread"}.get(
        origin or "", "a worker thread"
    )


def origin_claim(facts: Facts) -> str:
    """The event that shows where the worker came from."""
    if facts.worker_origin == "route":
        return claim("detail", "worker.spawned", "worker", Literal(facts.spawned_worker_name))
    return claim("happened", "pool.queued" if facts.worker_origin == "pool" else "queue.stored")


def _send_thread(facts: Facts, rng: random.Random) -> Question | None:
    send, received = facts.send, facts.received
    if send is None or received is None:
        return None
    if len({e.thread_id for e in facts.all("send.started")}) > 1:
        return None  # retries ran on several consumer threads: no one thread is the answer
    request_choice = f"{received.thread} (the thread handling the request)"
    on_request = facts.on_request(send)
    if send is facts.task_send:
        return None  # the task's fate is the question there (created_task)
    if not on_request and facts.awaited_call is not None and facts.in_coroutine(send):
        if facts.loop_sent:
            return _loop_send_thread(facts, rng, request_choice)
        return _awaited_send_thread(facts, rng, request_choice)
    same = claim("same_thread", "send.started", "request.received")
    other = claim("other_thread", "send.started", "request.received")
    where = sentence(
        f"Step {facts.step(send)} shows mail.send() called on {send.thread}",
        claim("happened", "send.started"),
        same if on_request else other,
    )
    if on_request:
        where += sentence(", the request's own thread, so the answer had to wait for it.", same)
    elif facts.worker_context is not None and facts.worker_context.thread_id == send.thread_id:
        where += sentence(
            f", {worker_label(facts)}, inside the app context it pushed at step {facts.step(facts.worker_context)}.",
            claim("same_thread", facts.ref(facts.worker_context), "send.started"),
            claim("before", facts.ref(facts.worker_context), "send.started"),
        )
    else:
        where += sentence(
            f", {worker_label(facts)}, which had pushed no app context of its own.", claim("absent", "context.pushed")
        )
    if on_request:
        right = Choice(request_choice, (same,))
        worker_text = "A background thread Flask-Mail starts by itself"
        wrong = [
            Choice(
                worker_text,
                (same,),
                "Believes Flask-Mail sends in the background on its own",
                Sentence("You may be thinking Flask-Mail sends in the background by itself; ") + where,
            )
        ]
    else:
        right = Choice(f"{send.thread} ({worker_label(facts)})", (other, origin_claim(facts)))
        wrong = [
            Choice(
                request_choice,
                (other,),
                "Believes the route still sends the mail after handing it off",
                Sentence("You may be thinking the route sends the mail itself; ") + where,
            )
        ]
    wrong.append(_sink_thread_choice(facts, where))
    wrong.append(
        Choice(
            "A separate process",
            (claim("happened", "send.started"),),
            "Believes a thread is a separate process",
            Sentence("You may be thinking a thread is a process of its own; ") + where,
        )
    )
    return _question(
        "send_thread",
        sentence("Which thread ran mail.send()?", claim("happened", "send.started")),
        right,
        wrong,
        where,
        facts.step(send),
        rng,
    )


def _loop_send_thread(facts: Facts, rng: random.Random, request_choice: str) -> Question | None:
    """``send_thread`` for an async view that calls mail.send() itself: the event loop's own thread sent."""
    send = facts.send
    assert send is not None
    other = claim("other_thread", "send.started", "request.received")
    on_loop = claim("same_thread", "send.started", "coroutine.started")
    where = sentence(
        f"Step {facts.step(send)} shows mail.send() called on {send.thread}, the event loop's thread that ran the "
        "coroutine: the coroutine called it with no await, so the loop itself waited for the send.",
        claim("happened", "send.started"),
        other,
        on_loop,
    )
    wrong = [
        Choice(
            request_choice,
            (other,),
            "Believes an async view runs on the thread handling the request",
            Sentence("You may be thinking an async view runs on the thread handling the request; ") + where,
        ),
        _sink_thread_choice(facts, where),
    ]
    return _question(
        "send_thread",
        sentence("Which thread ran mail.send()?", claim("happened", "send.started")),
        Choice(f"{send.thread} (the event loop's thread, running the coroutine)", (other, on_loop)),
        wrong,
        where,
        facts.step(send),
        rng,
    )


def _awaited_send_thread(facts: Facts, rng: random.Random, request_choice: str) -> Question | None:
    """``send_thread`` for an async view: the send ran on an executor thread the coroutine awaited, neither the
    request's thread (which waited in ``ensure_sync``) nor the event loop's (where the coroutine ran)."""
    send, loop = facts.send, facts.coroutine
    assert send is not None
    via = send.details.get("via")
    other = claim("other_thread", "send.started", "request.received")
    where = sentence(
        f"Step {facts.step(send)} shows mail.send() called on {send.thread}, an executor thread: the coroutine "
        f"awaited it through {via}",
        claim("happened", "send.started"),
        other,
        claim("detail", "send.started", "via", Literal(via)),
    )
    off_loop = loop is not None and loop.thread_id != send.thread_id
    if off_loop:
        where += sentence(
            f", while the coroutine itself ran on {loop.thread}, the event loop's thread.",
            claim("other_thread", "send.started", "coroutine.started"),
            claim("other_thread", "coroutine.started", "request.received"),
        )
    else:
        where += "."
    wrong = [
        Choice(
            request_choice,
            (other,),
            "Believes an async view runs what it awaits on the thread handling the request",
            Sentence("You may be thinking an async view runs what it awaits on the thread handling the request; ")
            + where,
        )
    ]
    if off_loop:
        wrong.append(
            Choice(
                f"{loop.thread} (the event loop's thread, where the coroutine ran)",
                (claim("other_thread", "send.started", "coroutine.started"),),
                "Believes awaiting runs a blocking call on the event loop's own thread",
                Sentence("You may be thinking awaiting runs the call on the event loop's own thread; ") + where,
            )
        )
    wrong.append(_sink_thread_choice(facts, where))
    return _question(
        "send_thread",
        sentence("Which thread ran mail.send()?", claim("happened", "send.started")),
        Choice(
            f"{send.thread} (an executor thread the coroutine awaited)",
            (other, claim("detail", "send.started", "via", Literal(via))),
        ),
        wrong,
        where,
        facts.step(send),
        rng,
    )


WAIT_BUCKETS = (
    (0, 10, "under 10 ms"),
    (10, 100, "10 to 100 ms"),
    (100, 1000, "100 to 1000 ms"),
    (1000, 3000, "1 to 3 s"),
    (3000, 10000, "3 to 10 s"),
    (10000, float("inf"), "over 10 s"),
)


def wait_bucket(ms: float) -> int:
    return next(i for i, (low, high, _) in enumerate(WAIT_BUCKETS) if low <= ms < high)


def _bucket_claim(facts: Facts, index: int) -> str:
    low, high, _ = WAIT_BUCKETS[index]
    first = facts.prefix + facts.events[0].kind
    return claim("within_ms", first, facts.prefix + "response.sent", low, "inf" if high == float("inf") else high)


def _wait_time(facts: Facts, rng: random.Random) -> Question | None:
    response = facts.response
    if response is None:
        return None
    waited = facts.ms(response)
    right = wait_bucket(waited)
    at, tol = shown_ms(waited)
    said = sentence(
        f"The answer left {at} after the server had the request.",
        claim("at_ms", "response.sent", round(waited, 3), tol),
    )
    wrong = []
    for offset in (1, -1, 2, -2, 3):
        index = right + offset
        if 0 <= index < len(WAIT_BUCKETS):
            wrong.append(
                Choice(
                    WAIT_BUCKETS[index][2],
                    (negate(_bucket_claim(facts, index)),),
                    "Misjudges how long the route took",
                    Sentence("You may be misjudging how long the route took. ") + said,
                )
            )
    accepted = facts.accepted
    if (
        accepted is not None
        and wait_bucket(facts.ms(accepted)) != right
        and facts.position(response) < facts.position(accepted)
    ):
        index = wait_bucket(facts.ms(accepted))
        wrong.insert(
            0,
            Choice(
                WAIT_BUCKETS[index][2],
                (negate(_bucket_claim(facts, index)),),
                "Believes the answer waits for the email",
                Sentence("You may be thinking the answer waits for the email; it left first. ")
                + said
                + sentence("", order_claim(facts, response, accepted)),
            ),
        )
    return _question(
        "wait_time",
        sentence("About how long did the client wait for its answer?", claim("happened", "response.sent")),
        Choice(WAIT_BUCKETS[right][2], (_bucket_claim(facts, right),)),
        wrong,
        said,
        facts.step(response),
        rng,
    )


def order_claim(facts: Facts, a: Event, b: Event) -> str:
    return claim("before", facts.ref(a), facts.ref(b))


REQUEST_STATE_CHOICES = (
    ("Running the route", "Believes the route is still working when it is not"),
    ("Blocked inside mail.send()", "Believes the request waits for a send it did not make itself"),
    ("Answered: its work was done", "Believes the request is over before it is"),
    ("Waiting for a handler thread", "Confuses the request's thread with the server's queue"),
)
AWAITING_CHOICE = "Waiting in app.ensure_sync() for the coroutine to finish"
# The wrong states for a request whose async view awaits the send elsewhere, with what picking each means there.
AWAITING_WRONG = (
    ("Blocked inside mail.send()", "Believes an async view runs what it awaits on the thread handling the request"),
    ("Answered: its work was done", "Believes an async view answers before what it awaits is done"),
    ("Running the route", "Believes the route is still working when it is not"),
)


def _request_thread_at(facts: Facts, rng: random.Random) -> Question | None:
    """What the request's thread was doing while the sink held the email: the moment the modes differ most."""
    event = facts.first("sink.delay_started") or facts.first("smtp.data_sent")
    if event is None or facts.received is None:
        return None
    n = facts.step(event)
    state = request_state(facts, n)
    texts = {
        "Request: running the route": "Running the route",
        "Request: blocked inside mail.send()": "Blocked inside mail.send()",
        "Request: waiting for a handler thread": "Waiting for a handler thread",
        AWAITING_STATE: AWAITING_CHOICE,
    }
    right_text = texts.get(
        state.text, "Answered: its work was done" if state.text.startswith("Request: answered") else None
    )
    if right_text is None:
        return None
    wrong = []
    for text, misconception in AWAITING_WRONG if right_text == AWAITING_CHOICE else REQUEST_STATE_CHOICES:
        if text != right_text:
            # The claims that make the right state true also make this one false: the states exclude each other.
            wrong.append(
                Choice(
                    text,
                    state.claims,
                    misconception,
                    Sentence(
                        f"You may be thinking so, but at step {n} the request's thread was: "
                        f"{right_text[0].lower() + right_text[1:]}.",
                        state.claims,
                    ),
                )
            )
    explanation = Sentence(
        f"At step {n} ({label(event)}) the request's thread was: {right_text[0].lower() + right_text[1:]}.",
        state.claims,
    )
    return _question(
        "request_thread_at",
        sentence(
            f"What was the request's thread doing at step {n}, when {label(event)}?", claim("step", n, event.kind)
        ),
        Choice(right_text, state.claims),
        wrong,
        explanation,
        n,
        rng,
    )


ORDER_PAIRS = (
    ("response.sent", "sink.accepted"),
    ("response.sent", "worker.finished"),
    ("response.sent", "worker.failed"),
    ("context.pushed", "response.sent"),
    ("smtp.accepted", "response.sent"),
)


def _which_first(facts: Facts, rng: random.Random) -> Question | None:
    pairs = [(a, b) for a, b in ORDER_PAIRS if facts.first(a) and facts.first(b)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    event_a, event_b = facts.first(a), facts.first(b)
    if event_a.t_ns == event_b.t_ns:
        return None  # the clock cannot order them
    first, second = sorted((event_a, event_b), key=facts.position)
    relation = _relation(facts, second, first)
    fact = (
        sentence(f"{_capital(label(second))} at step {facts.step(second)}, ")
        + relation
        + sentence(f" {label(first)} at step {facts.step(first)}.")
    )
    right = Choice(_capital(label(first)), (order_claim(facts, first, second),))
    wrong = [
        Choice(
            _capital(label(second)),
            (order_claim(facts, first, second),),
            f"Believes {label(second)} always comes first",
            Sentence("You may be assuming an order the clock does not show here. ") + fact,
        ),
        Choice(
            "Both at the same moment",
            (order_claim(facts, first, second),),
            "Believes threads run in lockstep",
            Sentence("You may be thinking threads move in lockstep. ") + fact,
        ),
    ]
    return _question(
        "which_first",
        sentence(
            f"In this run, which came first: {label(event_a)}, or {label(event_b)}?",
            claim("happened", a),
            claim("happened", b),
        ),
        right,
        wrong,
        fact,
        facts.step(first),
        rng,
    )


def _sink_thread_choice(facts: Facts, where: Sentence) -> Choice:
    """The distractor "the sink's thread ran mail.send()", for the questions on which thread sent."""
    not_sink = (
        claim("other_thread", "send.started", "sink.data_received")
        if facts.first("sink.data_received")
        else claim("happened", "send.started")
    )
    return Choice(
        "smtp-sink (the SMTP sink's thread)",
        (not_sink,),
        "Believes the SMTP server runs the app's code",
        Sentence("You may be thinking the mail server runs the app's code; ") + where,
    )


def _capital(text: str) -> str:
    """``text`` with a capital first letter, unless it starts with code (``mail.send()``), which keeps its case."""
    return text if text.startswith("mail.") else text[0].upper() + text[1:]


# The sandbox's sink runs in the app's process only so that its side can be watched; a real mail server is another
# program, usually on another machine.
LEFT_OUT_SINK = (
    "Leaving out the sink's thread: here the mail server runs in the same process, on a thread of its own, so that "
    "its side can be traced (a real one is another program, usually on another machine)"
)


def _thread_count(facts: Facts, rows: list[Row], rng: random.Random) -> Question | None:
    names: list[str] = []
    for row in rows:
        if row.thread not in names:
            names.append(row.thread)
    count = len(names)
    if count == 0:
        return None
    fact = sentence(f"The table shows {count}: {', '.join(names)}.", claim("threads", count))
    wrong = [
        Choice(
            str(n),
            (negate(claim("threads", n)),),
            why,
            Sentence(_you_may(why) + ". ") + fact,
        )
        for n, why in (
            (1, "Thinking everything in a web app runs on one thread"),
            (count + 1, "Counting a thread for each SMTP command or template"),
            (
                count - 1,
                LEFT_OUT_SINK if SINK_THREAD_NAME in names else "Leaving out one of the threads that recorded steps",
            ),
            (count + 2, "Thinking Flask starts threads for everything"),
        )
        if n >= 1 and n != count
    ]
    return _question(
        "thread_count",
        sentence("How many threads recorded the steps of this run?", claim("threads", count)),
        Choice(str(count), (claim("threads", count),)),
        wrong,
        fact,
        None,
        rng,
    )


def _other_mode(facts: Facts, other: Facts | None, rng: random.Random) -> Question | None:
    """The other send of the same comparison: what did the client wait, and did the email arrive?"""
    if other is None or other.response is None or facts.response is None:
        return None
    if other.outcome in ("unknown", "pending"):  # "did it arrive?" has no answer the trace can give
        return None
    mode, other_mode = facts.trace.mode, other.trace.mode
    at, tol = shown_ms(facts.ms(facts.response))
    text = sentence(
        f"This {mode} send answered in {at}. In the same comparison, the same email also went through the "
        f"{other_mode} route. What happened there?",
        claim("at_ms", "response.sent", round(facts.ms(facts.response), 3), tol),
    )
    bucket = wait_bucket(other.ms(other.response))
    delivered = other.outcome == "delivered"
    fate = "the email arrived" if delivered else "the email was not delivered"
    wrong_fate = "the email was not delivered" if delivered else "the email arrived"
    proof = other.in_mailbox or other.first("smtp.accepted")
    if delivered and proof is not None:
        fate_claim = claim("happened", other.ref(proof))
    else:
        fate_claim = negate(claim("any", *(claim("happened", f"other:{k}") for k in IN_MAILBOX_ENDS)))
    wrong_fate_claim = fate_claim
    right = Choice(
        f"The client waited {WAIT_BUCKETS[bucket][2]}, and {fate}", (_bucket_claim(other, bucket), fate_claim)
    )
    other_at, other_tol = shown_ms(other.ms(other.response))
    explanation = sentence(
        f"The {other_mode} send answered after {other_at}",
        claim("at_ms", "other:response.sent", round(other.ms(other.response), 3), other_tol),
    )
    if delivered and other.accepted is not None:
        acc, acc_tol = shown_ms(other.ms(other.accepted))
        explanation += sentence(
            f"; its email was accepted after {acc}.",
            claim("at_ms", other.ref(other.accepted), round(other.ms(other.accepted), 3), acc_tol),
        )
    elif delivered and other.in_mailbox is not None:
        stored, stored_tol = shown_ms(other.ms(other.in_mailbox))
        explanation += sentence(
            f"; its email was in the sink's mailbox after {stored}, though the sink's 250 never reached its sender.",
            claim("at_ms", other.ref(other.in_mailbox), round(other.ms(other.in_mailbox), 3), stored_tol),
            claim("absent", "other:sink.accepted"),
        )
    else:
        failure = other.final_failure or other.first_failure
        if failure is not None:
            explanation += sentence(
                f"; its email was not delivered: {other.failure_error()}.",
                fate_claim,
                quoted(other.ref(failure), failure.details),
            )
        else:
            explanation += sentence("; its email was not delivered.", fate_claim)
    mine = wait_bucket(facts.ms(facts.response))
    wrong = [
        Choice(
            f"The client waited {WAIT_BUCKETS[bucket][2]}, and {wrong_fate}",
            (_bucket_claim(other, bucket), wrong_fate_claim),
            "Guesses the email's fate instead of reading it",
            Sentence("You may be guessing the email's fate. ") + explanation,
        )
    ]
    if mine != bucket:
        wrong.append(
            Choice(
                f"The client waited {WAIT_BUCKETS[mine][2]}, and {fate}",
                (negate(_bucket_claim(other, mine)),),
                "Believes the route makes no difference to the client's wait",
                Sentence("You may be thinking the route makes no difference to the wait. ") + explanation,
            )
        )
    for offset in (1, -1, 2):
        index = bucket + offset
        if 0 <= index < len(WAIT_BUCKETS) and index != mine:
            wrong.append(
                Choice(
                    f"The client waited {WAIT_BUCKETS[index][2]}, and {fate}",
                    (negate(_bucket_claim(other, index)),),
                    "Misjudges how long the other route took",
                    Sentence("You may be misjudging the other route's wait. ") + explanation,
                )
            )
    wrong.append(
        Choice(
            "The server crashed",
            (claim("happened", "other:response.sent"),),
            "Believes blocking is an error rather than a wait",
            Sentence("You may be thinking a slow send crashes the server; it answered. ") + explanation,
        )
    )
    return _question("other_mode", text, right, wrong, explanation, facts.step(facts.response), rng)


# What a SIGKILL just after the data went out does to the email, by where the send lives: the request's own thread,
# a worker's memory (a thread the route started, or a pool thread), or the queue's store and its outbox. Each with
# the claim that the send lived there, the misconception of someone who picks it wrongly, and why it is so.
KILL_FATES = (
    (
        "The browser never gets an answer, and nothing in the app can say whether the server kept the email",
        claim("same_thread", "smtp.data_sent", "request.received"),
        "Believes a killed request still gets its answer",
        "The send ran on the request's own thread, so the request dies with it, answer and all.",
    ),
    (
        "It is gone with the process if the server drops the cut conversation, and no record says so",
        claim("any", claim("happened", "worker.spawned"), claim("happened", "pool.queued")),
        "Believes a thread's work outlives its process",
        "The send lived only in a worker's memory, and SIGKILL leaves no time to write anything down.",
    ),
    (
        "The outbox still has it: a restarted consumer sends it again (a second copy, if the server kept it)",
        claim("happened", "queue.stored"),
        "Believes a background send is lost in a crash whatever runs it",
        "The queue wrote the email into its outbox before the 202, and only a 250 crosses it out.",
    ),
)
FATE_BY_ORIGIN = {None: 0, "route": 1, "pool": 1, "consumer": 2}
# An async view's send ran on an executor thread, but the request's answer waited for it, so the first fate holds.
AWAITED_KILL_REASON = (
    "The send ran on an executor thread, but the request's thread was still waiting in app.ensure_sync() for the "
    "coroutine that awaited it, so no answer had left: the request dies with the process, answer and all."
)
LOOP_KILL_REASON = (
    "The send ran on the event loop's own thread, inside the coroutine, and the request's thread was still waiting "
    "in app.ensure_sync() for that coroutine, so no answer had left: the request dies with the process, answer and "
    "all."
)
TASK_KILL_REASON = (
    "The send ran on an executor thread for the view's task, and the request's thread was still waiting in "
    "app.ensure_sync() for the view's event loop to close, so no answer had left: the request dies with the process, "
    "answer and all."
)
ALREADY_DELIVERED = "Nothing happens to it: the server had already answered 250"
DELIVERED_ONCE_SENT = "Believes the email is delivered once its data is sent"


def _killed_at(facts: Facts, rng: random.Random) -> Question | None:
    """If the app's process were killed just after the whole message went out, what would become of the email?"""
    data = facts.first("smtp.data_sent")
    accepted = facts.in_mailbox
    if data is None or accepted is None or facts.position(accepted) < facts.position(data):
        return None
    conversation = facts.conversation_of(accepted)
    if (
        accepted.kind != "sink.accepted"
        or not stores_copy(accepted)
        or conversation is None
        or conversation.data is not data
    ):
        return None  # only the first conversation, ended by the 250 that first put the email in the mailbox
    n = facts.step(data)
    text, right_claim, _, reason = KILL_FATES[FATE_BY_ORIGIN[facts.worker_origin]]
    right_claims: tuple[str, ...] = (right_claim,)
    task_sent = facts.task_send is not None and facts.loop_closed is not None
    if facts.awaited_call is not None and (facts.in_coroutine(data) or task_sent):
        response = facts.response
        if response is None or facts.position(response) < facts.position(data):
            return None
        text, reason = KILL_FATES[0][0], AWAITED_KILL_REASON
        right_claims = (
            claim("other_thread", "smtp.data_sent", "request.received"),
            claim("same_thread", "coroutine.called", "request.received"),
            claim("before", "smtp.data_sent", "response.sent"),
        )
        if task_sent:
            reason = TASK_KILL_REASON
            right_claims += (claim("before", "smtp.data_sent", "loop.closed"),)
        elif facts.loop_sent:
            reason = LOOP_KILL_REASON
            right_claims += (claim("same_thread", "smtp.data_sent", "coroutine.started"),)
    explanation = sentence(
        f"At step {n} the whole message had gone out, and the 250 came only at step {facts.step(accepted)}. ",
        claim("step", n, "smtp.data_sent"),
        claim("before", "smtp.data_sent", "sink.accepted"),
    ) + Sentence(reason, right_claims)
    wrong = [
        Choice(other, (negate(c),), why, Sentence(_you_may(why) + ". ") + explanation)
        for other, c, why, _ in KILL_FATES
        if other != text
    ]
    wrong.append(
        Choice(
            ALREADY_DELIVERED,
            (negate(claim("before", "sink.accepted", f"@{n}")),),
            DELIVERED_ONCE_SENT,
            Sentence(_you_may(DELIVERED_ONCE_SENT) + ". ") + explanation,
        )
    )
    return _question(
        "killed_at",
        sentence(
            f"Suppose the app's process were killed (SIGKILL) just after step {n}, while the mail server, on "
            "another machine, carried on. What would become of this email?",
            claim("step", n, "smtp.data_sent"),
        ),
        Choice(text, (*right_claims, claim("before", f"@{n}", "sink.accepted"))),
        wrong,
        explanation,
        n,
        rng,
    )


NO_CONTEXT_ERROR = "Working outside of application context"


def _why_no_context(facts: Facts, rng: random.Random) -> Question | None:
    """A worker that failed for want of an app context: why did it, when the route itself had the app?"""
    failed = facts.worker_end
    worker = facts.worker
    if failed is None or worker is None or failed.kind != "worker.failed" or facts.worker_context is not None:
        return None
    if NO_CONTEXT_ERROR not in str(failed.details.get("error", "")):
        return None
    n = facts.step(failed)
    explanation = sentence(
        f"At step {n} the worker failed with {NO_CONTEXT_ERROR!r}. It ran on a thread of its own, and that thread had "
        "pushed no app context, so current_app (a proxy that looks the app up in the current thread's context) "
        "had nothing to find.",
        claim("step", n, "worker.failed"),
        quoted(facts.ref(failed), failed.details),
        claim("other_thread", "worker.started", "request.received"),
        claim("absent", "context.pushed"),
    )
    right = Choice(
        "current_app finds the app through the current thread's context, and the worker's thread had none",
        (claim("other_thread", "worker.started", "request.received"), claim("absent", "context.pushed")),
    )
    wrong_options = [
        (
            "The mail server refused the email",
            claim("absent", "smtp.connecting"),
            "Blames the mail server for an error raised before any connection",
        ),
        (
            "The message could not be built from its templates",
            claim("happened", "message.built"),
            "Blames the message for an error about the context",
        ),
    ]
    if facts.response is not None and facts.position(failed) < facts.position(facts.response):
        wrong_options.append(
            (
                "The route had already answered, and the request was gone",
                claim("before", facts.ref(failed), "response.sent"),
                "Believes the failure comes from the request having ended",
            )
        )
    else:
        wrong_options.append(
            (
                "The worker started before the route had built the message",
                claim("before", "message.built", "worker.started"),
                "Believes the worker raced the route's setup",
            )
        )
    wrong = [Choice(text, (c,), why, Sentence(_you_may(why) + ". ") + explanation) for text, c, why in wrong_options]
    return _question(
        "why_no_context",
        sentence(
            f"The worker failed at step {n}, though the route that started it had the app at hand. Why?",
            claim("step", n, "worker.failed"),
        ),
        right,
        wrong,
        explanation,
        n,
        rng,
    )


ANSWERED_MEANWHILE = "They were answered meanwhile, each on a thread of its own"
WAITED_MEANWHILE = "They waited until this request was done: the server handles one request at a time"
EVERYTHING_FROZE = "Nothing ran at all: the whole process, the sink included, stood still"


def _who_waits(facts: Facts, rng: random.Random) -> Question | None:
    """A blocking send on an observed server, with other requests during it: what did they get meanwhile?"""
    send, end = facts.send, facts.first("smtp.accepted", "smtp.failed")
    server = facts.server
    if send is None or end is None or facts.handoff is not None or not server.observed:
        return None
    if not facts.on_request(send):  # an async view's send: the request's thread waited, but not inside mail.send()
        return None
    if facts.first("sink.data_received") is None:  # no sink lane: nothing to show the process kept working
        return None
    kind = facts.server_kind
    answered = server.answered(facts.ms(send), facts.ms(end))
    waiting = server.waiting(facts.ms(end))
    answered_claim = claim(
        "server_answered", "send.started", facts.ref(end), len(answered), slowest_wait_ms(answered), wait_tol(answered)
    )
    waited_claim = waiting_claim(facts.ref(end), waiting, facts.ms(end))
    kind_claim = claim("detail", "request.arrived", "server", Literal(kind))
    if kind in ("threaded", "pooled") and answered and not waiting:
        right, right_claims = ANSWERED_MEANWHILE, (kind_claim, answered_claim, waited_claim)
        others = [(WAITED_MEANWHILE, (waited_claim,), "Believes every Flask server handles one request at a time")]
    elif kind in ("single", "pooled") and waiting and not answered:
        right, right_claims = WAITED_MEANWHILE, (kind_claim, waited_claim, answered_claim)
        others = [(ANSWERED_MEANWHILE, (answered_claim,), "Believes every server gives each request a thread")]
    else:
        return None
    sink_worked = claim("other_thread", "sink.data_received", "send.started")
    others.append((EVERYTHING_FROZE, (sink_worked,), "Believes a blocked thread blocks the whole process"))
    shown_others = counted(len(answered) if answered else len(waiting), "other request")
    explanation = sentence(
        f"From step {facts.step(send)} to step {facts.step(end)} this request's thread sat in mail.send(). The "
        f"{kind} server {'answered' if answered else 'kept waiting'} {shown_others} meanwhile, and the sink worked "
        "on a thread of its own all along.",
        kind_claim,
        answered_claim if answered else waited_claim,
        sink_worked,
    )
    wrong = [Choice(text, claims, why, Sentence(_you_may(why) + ". ") + explanation) for text, claims, why in others]
    return _question(
        "who_waits",
        sentence(
            f"From step {facts.step(send)} to step {facts.step(end)} this request's thread sat in mail.send(). What "
            "happened to the other requests that reached the server meanwhile?",
            claim("step", facts.step(send), "send.started"),
        ),
        Choice(right, right_claims),
        wrong,
        explanation,
        facts.step(send),
        rng,
    )


COPY_MISCONCEPTIONS = {
    "none": "Believes an email whose sender heard no 250 did not arrive",
    "one": "Believes a retry cannot deliver an email the server already has",
    "each": "Believes every attempt adds a copy, whatever the sink does with it",
    "other": "Miscounting the sink's steps",
}


def _copies(facts: Facts, rng: random.Random) -> Question | None:
    """A send tried more than once, each try's end seen by the sink: how many copies does the mailbox hold?"""
    tried = len(facts.attempts)
    if tried < 2 or not facts.sink_lane_ended:
        return None
    copies, copy_claims = mailbox_at(facts)
    count = len(copies)
    asked = sentence(
        f"This send made {tried} attempts. How many copies of the email did the sink's mailbox end up with?",
        claim("count", "attempt.started", tried),
    )
    if copies:
        steps = ", ".join(str(facts.step(e)) for e in copies)
        explanation = (
            Sentence(f"The sink stored it {times(count)}, at step{'s' if count > 1 else ''} {steps} (", copy_claims)
            + message_numbers(facts, copies)
            + ")."
        )
    else:
        explanation = Sentence("The sink stored no copy of it.", copy_claims)
    recognised = facts.recognised_copies
    if recognised:
        explanation += sentence(
            f" It recognised the Message-ID {times(len(recognised))} and stored nothing new.",
            *(claim("detail", facts.ref(e), "stored", Literal(False)) for e in recognised),
        )
    wrong = []
    for number in range(tried + 1):
        if number == count:
            continue
        why = (
            COPY_MISCONCEPTIONS["none"]
            if number == 0
            else COPY_MISCONCEPTIONS["one"]
            if number == 1 and count > 1
            else COPY_MISCONCEPTIONS["each"]
            if number == tried
            else COPY_MISCONCEPTIONS["other"]
        )
        wrong.append(Choice(str(number), copy_claims, why, Sentence(_you_may(why) + ". ") + explanation))
    wrong.sort(key=lambda c: c.misconception == COPY_MISCONCEPTIONS["other"])
    return _question(
        "copies",
        asked,
        Choice(str(count), copy_claims),
        wrong,
        explanation,
        facts.step(copies[-1]) if copies else None,
        rng,
    )


ASYNC_NO = "No: Flask runs an async view to its end before it answers, so the answer still waits for the send"
ASYNC_BACKGROUND = "Yes: async def runs the send in the background"
ASYNC_TASK = "Yes, if the view starts the send with asyncio.create_task and returns"
ASYNC_UNSUPPORTED = "No, because Flask cannot run async views"
ASYNC_MISCONCEPTIONS = {
    ASYNC_BACKGROUND: "Believes async def runs a view's work in the background",
    ASYNC_TASK: "Believes a task the view leaves running carries on after the view has returned",
    ASYNC_UNSUPPORTED: "Believes Flask cannot run async views",
}
ASYNC_WHY = {
    ASYNC_BACKGROUND: "async def makes the view a coroutine, and Flask runs that coroutine to its end before it "
    "answers. ",
    ASYNC_TASK: "A task the view leaves behind does not outlive the view's event loop, which Flask closes before "
    "the answer leaves: a task still waiting at an await is cancelled there, and one that handed its send to a thread "
    "holds the answer until that thread is done (lesson 10 runs both). Only a thread, a pool or a queue that outlives "
    "the view lets the answer go first. ",
    ASYNC_UNSUPPORTED: "It can, once asgiref is installed (pip install flask[async]): app.ensure_sync() runs the "
    "view's coroutine on an event loop in another thread and waits for it. ",
}


def _async_def(facts: Facts, rng: random.Random) -> Question | None:
    """Would writing the route as ``async def`` (awaiting the send) let its answer leave before the server's 250?

    Asked of a send the route waited for, when the run decides it: mail.send() returned with the 250 and the answer
    left after it. A blocking send shows the send between the request's start and its answer, on the thread that
    answered; an async view's run shows it directly: the answer left after the awaited send had ended.
    """
    send, end, response, received = facts.send, facts.send_end, facts.response, facts.received
    if send is None or end is None or response is None or received is None or facts.handoff is not None:
        return None
    if end.kind != "smtp.accepted" or facts.position(response) < facts.position(end):
        return None
    n, m = facts.step(response), facts.step(end)
    gap, gap_claim = gap_phrase(facts, end, response)
    if facts.on_request(send):
        asked = (
            "Would writing this route as async def (awaiting the send) let its answer leave before the mail "
            "server's 250?"
        )
        shown = sentence(
            f"In this run mail.send() ran on the request's thread, {send.thread}, from step {facts.step(send)} to "
            f"step {m}: after the request's start at step {facts.step(received)} and {gap} before its answer at "
            f"step {n}, on that same thread. Written as async def, the view would await the send, and Flask would "
            "still wait for the whole view before answering.",
            claim("same_thread", "send.started", "request.received"),
            claim("same_thread", facts.ref(end), "request.received"),
            claim("same_thread", "response.sent", "request.received"),
            claim("before", "request.received", "send.started"),
            facts.shown_at(received),
            facts.shown_at(send),
            facts.shown_at(end),
            claim("step", n, "response.sent"),
            claim("before", facts.ref(end), "response.sent"),
            gap_claim,
        )
        evidence: tuple[str, ...] = (
            claim("same_thread", "send.started", "response.sent"),
            claim("before", facts.ref(end), "response.sent"),
        )
        ran = Sentence("")
        verdict = "The answer would still wait for the send. "
    else:
        called, loop, finished = facts.awaited_call, facts.coroutine, facts.coroutine_end
        if called is None or loop is None or finished is None or not facts.in_coroutine(send):
            return None
        if not facts.in_order(end, finished, response):
            return None
        how = "calls mail.send() in its coroutine" if facts.loop_sent else "awaits the send"
        asked = (
            f"This route is written as async def and {how}. Does that let its answer leave before the mail server's "
            "250?"
        )
        did = (
            "called mail.send() itself, on that thread; the"
            if facts.loop_sent
            else f"awaited mail.send() on {send.thread}; the awaited"
        )
        shown = sentence(
            f"In this run the coroutine, on {loop.thread}, {did} "
            f"send ended with the 250 at step {m}, the coroutine at step {facts.step(finished)}, and the answer left "
            f"at step {n}, {gap} after the send had ended, from the request's thread, which had waited in "
            "app.ensure_sync() since step "
            f"{facts.step(called)}.",
            claim("other_thread", "send.started", "request.received"),
            claim("other_thread", "coroutine.started", "request.received"),
            claim("same_thread", "coroutine.called", "request.received"),
            claim("same_thread", "response.sent", "request.received"),
            facts.shown_at(called),
            facts.shown_at(end),
            facts.shown_at(finished),
            claim("step", n, "response.sent"),
            claim("before", facts.ref(end), facts.ref(finished)),
            claim("before", facts.ref(finished), "response.sent"),
            gap_claim,
        )
        evidence = (
            claim("before", facts.ref(end), "response.sent"),
            claim("before", facts.ref(finished), "response.sent"),
        )
        ran = sentence(
            f"This run ran one: its coroutine started at step {facts.step(loop)}. ",
            facts.shown_at(loop),
            claim("other_thread", "coroutine.started", "request.received"),
        )
        verdict = "The answer still waited for the send. "
    explanation = Sentence(verdict, evidence) + shown
    wrong = [
        Choice(
            text,
            evidence,
            ASYNC_MISCONCEPTIONS[text],
            Sentence(f"{_you_may(ASYNC_MISCONCEPTIONS[text])}. {ASYNC_WHY[text]}", evidence)
            + (ran if text == ASYNC_UNSUPPORTED else Sentence(""))
            + shown,
        )
        for text in (ASYNC_BACKGROUND, ASYNC_TASK, ASYNC_UNSUPPORTED)
    ]
    return _question(
        "async_def",
        sentence(asked, claim("happened", "smtp.accepted"), claim("happened", "response.sent")),
        Choice(ASYNC_NO, evidence),
        wrong,
        explanation,
        n,
        rng,
    )


TASK_NEVER = "It was never sent: the task was cancelled before any mail.send() began"
TASK_AFTER = "The task sent it after the answer had left"
TASK_HELD = "The task's send ran to its end, and the answer waited for it: the loop closed only after that"
TASK_BACKGROUND = "async def made the route non-blocking: the send went on in the background as the answer left"
TASK_MISCONCEPTIONS = {
    TASK_NEVER: "Believes cancelling a task stops the thread it handed its work to",
    TASK_AFTER: "Believes a task created in a view runs after the response",
    TASK_HELD: "Believes a task's await keeps it alive until its work is done",
    TASK_BACKGROUND: "Believes async def makes Flask non-blocking",
}
TASK_WHY = {
    TASK_NEVER: "Cancelling a task stops the task at its await, not a thread it handed work to: that send ran on.",
    TASK_AFTER: "Flask closes the view's event loop before the answer leaves, and every task of that loop is done "
    "or cancelled by then: nothing of the view's runs after the answer.",
    TASK_HELD: "A task still waiting at an await when the view returns is cancelled right there.",
    TASK_BACKGROUND: "async def lets the view's coroutine wait without holding its loop's thread, but Flask runs the "
    "view and its event loop to their end before it answers.",
}


def _created_task(facts: Facts, rng: random.Random) -> Question | None:
    """What became of the email a view left to a task it created and did not await: the answer is the task's fate
    as the events show it (never sent, or sent while the answer waited for the loop to close)."""
    created, started, end = facts.task_created, facts.task_started, facts.task_end
    closed, response = facts.loop_closed, facts.response
    if created is None or started is None or end is None or closed is None or response is None:
        return None
    if not facts.in_order(end, closed, response):
        return None
    send, unsent = facts.task_send, facts.unsent
    send_end = facts.task_send_end
    steps = claim("before", "loop.closed", "response.sent")
    if unsent is not None and send is None and end.kind == "task.cancelled":
        right_text = TASK_NEVER
        explanation = sentence(
            f"The task started at step {facts.step(started)} and was cancelled at step {facts.step(end)}, at line "
            f"{end.line}; the loop closed at step {facts.step(closed)} with no mail.send() begun, and the answer left "
            f"at step {facts.step(response)}.",
            facts.shown_at(started),
            facts.shown_at(end),
            facts.shown_at(closed),
            facts.shown_at(response),
            claim("absent", "send.started"),
            claim("happened", "task.unsent"),
            steps,
        )
    elif send_end is not None and facts.position(send_end) < facts.position(closed):
        right_text = TASK_HELD
        how = "returned" if send_end.kind == "smtp.accepted" else "raised"
        explanation = sentence(
            f"The task handed mail.send() to {send.thread} at step {facts.step(send)} and was cancelled at step "
            f"{facts.step(end)}; the send went on and {how} at step {facts.step(send_end)}, the loop closed at step "
            f"{facts.step(closed)}, and only then did the answer leave (step {facts.step(response)}).",
            facts.shown_at(send),
            facts.shown_at(end),
            facts.shown_at(send_end),
            facts.shown_at(closed),
            facts.shown_at(response),
            claim("before", facts.ref(send_end), "loop.closed"),
            steps,
        )
    else:
        return None
    no_send_after = negate(claim("before", "response.sent", "send.started"))
    false_because = {
        TASK_NEVER: claim("happened", "send.started"),
        TASK_AFTER: no_send_after,
        TASK_HELD: claim("absent", "send.started"),
        TASK_BACKGROUND: claim("before", facts.ref(send_end), "response.sent") if send_end else no_send_after,
    }
    right = Choice(right_text, explanation.claims)
    wrong = [
        Choice(
            text,
            (false_because[text],),
            TASK_MISCONCEPTIONS[text],
            Sentence(f"{_you_may(TASK_MISCONCEPTIONS[text])}. {TASK_WHY[text]} ", (false_because[text],)) + explanation,
        )
        for text in (TASK_NEVER, TASK_AFTER, TASK_HELD, TASK_BACKGROUND)
        if text != right_text
    ]
    asked = sentence(
        f"At step {facts.step(created)} the view created {created.details.get('task')} with asyncio.create_task() to "
        "send the email, and returned without awaiting it. What became of the email?",
        facts.shown_at(created),
    )
    return _question("created_task", asked, right, wrong, explanation, facts.step(end), rng)
