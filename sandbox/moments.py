"""Key moments: a few short explanations, each pinned to a step of this run and quoting this run's numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sandbox.clock import format_ms
from sandbox.steps import Row, execution_table
from sandbox.tracer import Trace

SLOWER_SINK_S = 5.0


@dataclass(frozen=True)
class Moment:
    title: str
    text: str
    step: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def key_moments(trace: Trace) -> list[Moment]:
    """Three to five moments for a trace with a sink lane; fewer when the run failed early."""
    rows = execution_table(trace)
    found = Found({row.kind: row for row in reversed(rows)})  # the first row of each kind
    moments = [
        m
        for m in (
            _who_waited(trace, found),
            _blocked(trace, found),
            _retries(trace, rows),
            _pool_wait(found),
            _failure(trace, found),
            _slower_sink(trace, found),
            _arrival(trace, found),
        )
        if m is not None
    ]
    return moments[:5]


class Found(dict[str, Row]):
    """The first row of each event kind; a kind that never happened reads as None."""

    def __missing__(self, kind: str) -> None:
        return None


def _who_waited(trace: Trace, found: Found) -> Moment | None:
    response = found["response.sent"]
    if response is None:
        return None
    if trace.mode == "sync":
        accepted = found["sink.accepted"] or found["smtp.accepted"]
        waited = f" The sink's answer came at {format_ms(accepted.t_ms)}, at step {accepted.step}." if accepted else ""
        return Moment(
            "What did the user wait for?",
            f"The browser had its answer only at step {response.step}, after {format_ms(response.t_ms)}, "
            f"because mail.send() ran on the request's own thread and the response could not leave "
            f"before it returned.{waited}",
            response.step,
        )
    return Moment(
        "Why didn't the main app wait?",
        f"At step {response.step}, {format_ms(response.t_ms)} after the request arrived, Flask sent the "
        f"response while the worker thread's state was \u201c{response.thread_state}\u201d. "
        "The route only started the thread; nothing in it waits for the thread to finish.",
        response.step,
    )


def _blocked(trace: Trace, found: Found) -> Moment | None:
    send = found["send.started"]
    if trace.mode != "sync" or send is None:
        return None
    if trace.server == "single":
        scope = (
            "This server handles one request at a time, so every other visitor, even a simple ping, "
            "waited in line until this send finished."
        )
    else:
        scope = (
            "This server gives each request its own thread, so only this visitor waited: other requests "
            "were still answered. On a one-request-at-a-time server everyone would have waited."
        )
    return Moment(
        "What does 'blocked' mean here?",
        f"From step {send.step} the request's thread sat inside mail.send(). {scope}",
        send.step,
    )


def _retries(trace: Trace, rows: list[Row]) -> Moment | None:
    failed = [row for row in rows if row.kind == "attempt.failed"]
    retried = [row for row in failed if row.thread_state == "Waiting to retry"]
    if not retried:
        return None
    first = retried[0]
    wait_s = trace.events_of("attempt.failed")[0].details.get("retry_in_s", 0)
    ending = "and the email went through" if trace.first("worker.finished") else "and still could not deliver it"
    return Moment(
        "What did the retry do?",
        f"At step {first.step} the attempt failed with an answer worth retrying (a 4xx code or a broken "
        f"connection means 'try later'). The send waited {wait_s:g} s and was tried again, "
        f"{ending}. The user, answered long before, saw none of this.",
        first.step,
    )


def _pool_wait(found: Found) -> Moment | None:
    stored, started = found["queue.stored"], found["worker.started"]
    if stored is not None and started is not None:
        return Moment(
            "Who picks the send up?",
            f"At step {stored.step} the route wrote the send into the queue's store and answered; a consumer worker "
            f"took it at step {started.step}, {format_ms(started.t_ms - stored.t_ms)} later. Between the two, the "
            "email existed only as a stored task: had the process stopped, the next start would have sent it.",
            stored.step,
        )
    queued = found["pool.queued"]
    if queued is None or started is None:
        return None
    return Moment(
        "Who picks the send up?",
        f"At step {queued.step} the route put the send in the pool's queue instead of starting a thread of "
        f"its own. A pool worker took it at step {started.step}, {format_ms(started.t_ms - queued.t_ms)} "
        "later. However many sends arrive, the pool never runs more threads than its size; the rest wait.",
        queued.step,
    )


def _slower_sink(trace: Trace, found: Found) -> Moment | None:
    delay, accepted = found["sink.delay_started"], found["sink.accepted"]
    response = found["response.sent"]
    if delay is None or accepted is None or response is None or trace.delay_s is None:
        return None
    extra_ms = (SLOWER_SINK_S - trace.delay_s) * 1000
    later = format_ms(accepted.t_ms + extra_ms)
    if trace.mode == "sync":
        effect = f"the user would wait until about {later}, since the response leaves only after the 250."
    else:
        effect = (
            f"the 250 would come at about {later}, yet the response would still leave at about "
            f"{format_ms(response.t_ms)}: only the worker would wait longer."
        )
    return Moment(
        "What would a slower sink change?",
        f"At step {delay.step} the sink held the email for {trace.delay_s:g} s. "
        f"With a {SLOWER_SINK_S:g} s delay, {effect}",
        delay.step,
    )


def _arrival(trace: Trace, found: Found) -> Moment | None:
    accepted, dispatched = found["sink.accepted"], found["smtp.accepted"]
    if accepted is None:
        return None
    confirm = (
        f" On the sending side, Flask-Mail's email_dispatched signal confirmed it at step {dispatched.step}."
        if dispatched
        else ""
    )
    order = ""
    response = found["response.sent"]
    if trace.mode != "sync" and response is not None:
        order = f" That was {format_ms(accepted.t_ms - response.t_ms)} after the browser already had its answer."
    return Moment(
        "How do we know the email arrived?",
        f"At step {accepted.step} the sink answered 250 and stored the message with this trace's id in "
        f"its X-Sandbox-Trace header.{confirm}{order}",
        accepted.step,
    )


def _failure(trace: Trace, found: Found) -> Moment | None:
    failed = found["worker.failed"]
    if failed is None and trace.mode == "sync":
        failed = found["smtp.failed"]
    if failed is None:
        return None
    error = failed_event_error(trace, failed.kind).rstrip(".")
    why = ""
    if "application context" in error:
        why = (
            " The worker reached for current_app, which exists only inside an application context, and this thread "
            "had none: either it never pushed one, or it was handed the current_app proxy instead of the real app."
        )
    codes = [e.details.get("code") for e in trace.events_of("smtp.failed")]
    if (trace.first("pool.queued") or trace.first("queue.stored")) and codes and codes[-1] and codes[-1] >= 500:
        why += f" A {codes[-1]} answer is permanent, so it was not tried again."
    where = (
        "The worker caught it and recorded it in /api/failures; in the textbook version it would only be "
        "printed to the server's stderr, and the user, already answered, would never know."
        if failed.kind == "worker.failed"
        else "The route turned it into an error response for the user."
    )
    return Moment(
        "Where did the error go?", f"At step {failed.step} the send failed: {error}.{why} {where}", failed.step
    )


def failed_event_error(trace: Trace, kind: str) -> str:
    event = trace.first(kind)
    return str(event.details.get("error", "")) if event else ""
