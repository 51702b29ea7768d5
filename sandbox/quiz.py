"""Quiz questions whose right answers and distractors are computed from a recorded trace, never typed in.

Each wrong option carries the misconception it tests, so a wrong answer can be explained, not only marked.
The same trace and seed give the same quiz.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from sandbox.clock import format_ms
from sandbox.sink import SINK_THREAD_NAME
from sandbox.steps import BLOCKED, HANDLING, IDLE, MAIN_APP_STATES, RESPONDED, Row, execution_table, step_of
from sandbox.tracer import Trace

OPTIONS_PER_QUESTION = 4
QUIZ_KINDS = (
    "response_step",
    "accept_step",
    "send_thread",
    "wait_time",
    "main_app_at",
    "which_first",
    "thread_count",
    "other_mode",
)
OFF_BY_ONE = "Reads the table too quickly: the right step is next to this one"


@dataclass(frozen=True)
class Question:
    kind: str
    question: str
    options: list[str]
    answer: int
    explanation: str
    step: int | None
    misconceptions: list[str | None]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Choice:
    text: str
    misconception: str | None = None


def make_quiz(
    trace: Trace, seed: int = 0, other: Trace | None = None, kinds: Sequence[str] = QUIZ_KINDS
) -> list[Question]:
    """The questions of ``kinds`` this trace can support; ``other`` is the same email sent by another mode."""
    rows = execution_table(trace)
    rng = random.Random(f"{seed}:{trace.trace_id}")
    builders: list[Callable[[], Question | None]] = [
        lambda: _response_step(trace, rows, rng),
        lambda: _accept_step(rows, rng),
        lambda: _send_thread(trace, rows, rng),
        lambda: _wait_time(trace, rows, rng),
        lambda: _main_app_at(trace, rows, rng),
        lambda: _which_first(trace, rows, rng),
        lambda: _thread_count(rows, rng),
        lambda: _other_mode(trace, other, rng),
    ]
    questions = [q for q in (build() for build in builders) if q is not None]
    return [q for q in questions if q.kind in kinds]


def _question(
    kind: str, text: str, right: _Choice, wrong: list[_Choice], explanation: str, step: int | None, rng: random.Random
) -> Question:
    """Shuffle the right choice among up to three distinct wrong ones."""
    seen = {right.text}
    distinct = []
    for choice in wrong:
        if choice.text not in seen:
            seen.add(choice.text)
            distinct.append(choice)
    choices = [right, *distinct[: OPTIONS_PER_QUESTION - 1]]
    rng.shuffle(choices)
    return Question(
        kind,
        text,
        [c.text for c in choices],
        choices.index(right),
        explanation,
        step,
        [c.misconception for c in choices],
    )


def _step_choices(rows: list[Row], right_step: int, tagged: list[tuple[Row | None, str]]) -> list[_Choice]:
    """Wrong steps that stand for a misconception, then neighbouring steps, so there are always enough."""
    wrong = [_Choice(f"Step {row.step}", why) for row, why in tagged if row is not None and row.step != right_step]
    for offset in (1, -1, 2, -2, 3, -3):
        step = right_step + offset
        if 1 <= step <= len(rows):
            wrong.append(_Choice(f"Step {step}", OFF_BY_ONE))
    return wrong


def _response_step(trace: Trace, rows: list[Row], rng: random.Random) -> Question | None:
    response = step_of(rows, "response.sent")
    if response is None:
        return None
    if trace.mode == "sync":
        tagged = [
            (step_of(rows, "send.started"), "Believes mail.send() returns at once, as if a thread sent it"),
            (step_of(rows, "request.received"), "Believes Flask answers before it does the route's work"),
            (step_of(rows, "sink.delay_started"), "Believes the response leaves while the server still waits"),
        ]
        why = "It comes only after mail.send() returned, because the send ran on the request's own thread."
    else:
        tagged = [
            (step_of(rows, "sink.accepted"), "Believes the response waits for the email to be accepted"),
            (step_of(rows, "worker.finished"), "Believes the response waits for the thread to finish"),
            (step_of(rows, "worker.started"), "Believes starting a thread is the same as answering"),
        ]
        why = "The route started the worker and returned; it did not wait for the worker."
    return _question(
        "response_step",
        "At which step does the main app return a response to the user?",
        _Choice(f"Step {response.step}"),
        _step_choices(rows, response.step, tagged),
        f"Step {response.step} ({format_ms(response.t_ms)}) is where Flask hands over the HTTP response. {why}",
        response.step,
        rng,
    )


def _accept_step(rows: list[Row], rng: random.Random) -> Question | None:
    accepted = step_of(rows, "sink.accepted")
    if accepted is None:
        return None
    tagged = [
        (step_of(rows, "response.sent"), "Believes the email is delivered when the response is sent"),
        (step_of(rows, "smtp.data_sent"), "Believes sending the data is the same as the server accepting it"),
        (step_of(rows, "send.started"), "Believes calling mail.send() delivers the email instantly"),
        (step_of(rows, "worker.finished"), "Believes the email is accepted only when the thread ends"),
    ]
    return _question(
        "accept_step",
        "At which step does the SMTP sink accept the email?",
        _Choice(f"Step {accepted.step}"),
        _step_choices(rows, accepted.step, tagged),
        f"At step {accepted.step} ({format_ms(accepted.t_ms)}) the sink answered 250, once its own delay was over.",
        accepted.step,
        rng,
    )


def _send_thread(trace: Trace, rows: list[Row], rng: random.Random) -> Question | None:
    send = step_of(rows, "send.started")
    if send is None:
        return None
    request_thread = rows[0].thread
    worker = step_of(rows, "worker.started")
    labels = {
        request_thread: f"{request_thread} (the thread handling the request)",
        SINK_THREAD_NAME: f"{SINK_THREAD_NAME} (the SMTP sink's thread)",
    }
    if worker is not None:
        labels[worker.thread] = f"{worker.thread} (the worker thread the route started)"
    wrong = [
        _Choice(labels[request_thread], "Believes the route itself still sends the mail after handing it off"),
        _Choice(
            labels.get(worker.thread, "") if worker else "A background thread Flask-Mail starts by itself",
            "Believes Flask-Mail sends in the background on its own",
        ),
        _Choice(labels[SINK_THREAD_NAME], "Believes the SMTP server runs the app's code"),
        _Choice("A separate process", "Believes a thread is a separate process"),
    ]
    right = _Choice(labels.get(send.thread, send.thread))
    where = (
        "the request's own thread, so the request waited"
        if send.thread == request_thread
        else "the worker thread, with an app context it pushed itself"
    )
    return _question(
        "send_thread",
        "Which thread ran mail.send()?",
        right,
        wrong,
        f"Step {send.step} shows mail.send() called on {send.thread}: {where}.",
        send.step,
        rng,
    )


WAIT_BUCKETS = (
    (0, 10, "under 10 ms"),
    (10, 100, "10 to 100 ms"),
    (100, 1000, "0.1 to 1 s"),
    (1000, 3000, "1 to 3 s"),
    (3000, 10000, "3 to 10 s"),
    (10000, float("inf"), "over 10 s"),
)


def wait_bucket(ms: float) -> int:
    return next(i for i, (low, high, _) in enumerate(WAIT_BUCKETS) if low <= ms < high)


def _wait_time(trace: Trace, rows: list[Row], rng: random.Random) -> Question | None:
    response = step_of(rows, "response.sent")
    if response is None:
        return None
    right = wait_bucket(response.t_ms)
    wrong = []
    accepted = trace.accepted_ms
    if accepted is not None and wait_bucket(accepted) != right:
        wrong.append(_Choice(WAIT_BUCKETS[wait_bucket(accepted)][2], "Believes the response waits for the email"))
    if trace.mode == "sync" and right > 0:
        wrong.append(_Choice(WAIT_BUCKETS[0][2], "Believes a blocking send costs the user nothing"))
    for offset in (1, -1, 2, -2, 3):
        if 0 <= right + offset < len(WAIT_BUCKETS):
            wrong.append(_Choice(WAIT_BUCKETS[right + offset][2], "Misjudges how long the work took"))
    return _question(
        "wait_time",
        "About how long did the user wait for the response?",
        _Choice(WAIT_BUCKETS[right][2]),
        wrong,
        f"The response left at step {response.step}, {format_ms(response.t_ms)} after the request arrived"
        + (f"; the sink accepted the email at {format_ms(accepted)}." if accepted is not None else "."),
        response.step,
        rng,
    )


MAIN_APP_MISCONCEPTIONS = {
    BLOCKED: "Believes the request still waits for a send it handed to a thread",
    HANDLING: "Believes the request stays open until the email is sent",
    IDLE: "Believes a blocking send leaves the app free",
    RESPONDED: "Confuses the moment the answer leaves with what the app is doing",
}


def _main_app_at(trace: Trace, rows: list[Row], rng: random.Random) -> Question | None:
    # Ask about the most telling moment: the sink's wait, when the two modes differ most.
    candidates = [r for r in rows if r.kind in ("sink.delay_started", "sink.data_received", "smtp.data_sent")]
    if not candidates:
        return None
    row = rng.choice(candidates)
    wrong = [_Choice(state, MAIN_APP_MISCONCEPTIONS[state]) for state in MAIN_APP_STATES if state != row.main_app_state]
    return _question(
        "main_app_at",
        f"What was the main app (the request-handling side) doing at step {row.step}?",
        _Choice(row.main_app_state),
        wrong,
        f"At step {row.step} ({format_ms(row.t_ms)}), {row.action[0].lower() + row.action[1:]}; "
        f"the request-handling side was {row.main_app_state!r}.",
        row.step,
        rng,
    )


EVENT_LABELS = {
    "response.sent": "the HTTP response was handed to the server",
    "sink.accepted": "the sink accepted the email",
    "worker.finished": "the worker thread finished",
    "context.pushed": "the worker pushed the app context",
    "smtp.accepted": "mail.send() returned",
}
ORDER_MISCONCEPTIONS = {
    ("response.sent", "sink.accepted"): "Believes the response waits for the email",
    ("response.sent", "worker.finished"): "Believes the thread always finishes first",
    ("sink.accepted", "response.sent"): "Believes a thread makes the response leave before the email in every mode",
    ("smtp.accepted", "response.sent"): "Believes the response can leave while mail.send() still runs",
}


def _which_first(trace: Trace, rows: list[Row], rng: random.Random) -> Question | None:
    pairs = [
        (a, b)
        for a, b in (
            ("response.sent", "sink.accepted"),
            ("response.sent", "worker.finished"),
            ("context.pushed", "response.sent"),
            ("smtp.accepted", "response.sent"),
        )
        if step_of(rows, a) and step_of(rows, b)
    ]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    row_a, row_b = step_of(rows, a), step_of(rows, b)
    first, second = (row_a, row_b) if row_a.t_ms <= row_b.t_ms else (row_b, row_a)
    right = _Choice(_sentence(EVENT_LABELS[first.kind]))
    wrong = [
        _Choice(
            _sentence(EVENT_LABELS[second.kind]),
            ORDER_MISCONCEPTIONS.get((second.kind, first.kind), "Assumes an order the clock does not show"),
        ),
        _Choice("Both at the same moment", "Believes threads run in lockstep"),
    ]
    return _question(
        "which_first",
        f"In this run, which came first: {EVENT_LABELS[a]}, or {EVENT_LABELS[b]}?",
        right,
        wrong,
        f"Step {first.step} at {format_ms(first.t_ms)} came before step {second.step} at {format_ms(second.t_ms)}.",
        first.step,
        rng,
    )


def _sentence(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:]


def _thread_count(rows: list[Row], rng: random.Random) -> Question | None:
    if not rows:
        return None
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(row.thread, row)
    count = len(seen)
    names = ", ".join(seen)
    wrong = [
        _Choice("1", "Believes everything in a web app runs on one thread"),
        _Choice(str(count + 1), "Believes each SMTP command or template gets a thread of its own"),
        _Choice(str(count - 1), "Forgets that the SMTP sink runs on a thread of its own"),
        _Choice(str(count + 2), "Believes Flask starts threads for everything"),
    ]
    last_new = max(seen.values(), key=lambda r: r.step)
    return _question(
        "thread_count",
        "How many threads recorded events in this run?",
        _Choice(str(count)),
        [w for w in wrong if w.text != "0"],
        f"The table shows {count}: {names}. The last to appear did so at step {last_new.step}.",
        last_new.step,
        rng,
    )


def _other_mode(trace: Trace, other: Trace | None, rng: random.Random) -> Question | None:
    """Without the thread (answered from the sync trace), or with one (answered from a background mode's trace)."""
    if other is None or other.response_ms is None or trace.response_ms is None:
        return None
    if (trace.mode == "sync") == (other.mode == "sync"):
        return None  # the question compares a blocking send with a background one
    other_rows = execution_table(other)
    other_response = step_of(other_rows, "response.sent")
    bucket = WAIT_BUCKETS[wait_bucket(other.response_ms)][2]
    if trace.mode != "sync":
        text = (
            f"This {trace.mode} send answered in {format_ms(trace.response_ms)}. What happened when the same email "
            "went through the blocking route, without a thread?"
        )
        right = _Choice(f"The user waited {bucket}, until the sink had accepted the email")
        wrong = [
            _Choice("It answered just as fast", "Believes the thread makes no difference to the user"),
            _Choice("The email was never sent", "Believes the thread is what sends email"),
            _Choice("The server crashed", "Believes blocking is an error rather than a wait"),
        ]
    else:
        text = (
            f"This blocking send answered in {format_ms(trace.response_ms)}. What happened when the same email "
            f"went through the {other.mode} route?"
        )
        right = _Choice(f"The user waited {bucket}, and the email still arrived later")
        wrong = [
            _Choice("The user waited just as long", "Believes the thread cannot change the response time"),
            _Choice("The email arrived sooner", "Believes a thread makes the mail server faster"),
            _Choice("The email was lost", "Believes a worker thread cannot deliver mail"),
        ]
    return _question(
        "other_mode",
        text,
        right,
        wrong,
        f"The {other.mode} run's response left at step {other_response.step} of its own table, after "
        f"{format_ms(other.response_ms)}; its email was accepted at {format_ms(other.accepted_ms)}.",
        other_response.step,
        rng,
    )
