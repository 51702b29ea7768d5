"""The lessons' predictions, judged by the run: each check reads the run's traces and says which option happened.

A lesson asks the student to predict before "Run it" (front matter ``predict:``); once the run is over, the page
asks ``GET /api/lessons/<slug>/verdict?traces=...`` which option the run shows, with the evidence in numbers. No
option is right by decree: a run on another server, or with a dead sink, can make another option the true one, and
a run that cannot decide (the event the check needs never happened) says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from sandbox.clock import shown_gap, shown_ms
from sandbox.facts import Facts, ServerView

Check = Callable[[Sequence[Facts]], "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The option the run shows (None: the run cannot decide), and why, in a sentence with this run's numbers."""

    answer: str | None
    evidence: str

    def to_dict(self) -> dict[str, str | None]:
        return {"answer": self.answer, "evidence": self.evidence}


def _first(runs: Sequence[Facts], mode: str) -> Facts | None:
    return next((f for f in runs if f.trace.mode == mode), None)


def ping_during_send(runs: Sequence[Facts]) -> Verdict:
    """Lesson 1: was the ping answered while the blocking send still waited, or only after its answer left?"""
    sync = _first(runs, "sync")
    if sync is None or sync.send is None or sync.response is None:
        return Verdict(None, "The run has no blocking send to judge by.")
    server: ServerView = sync.server
    pings = [r for r in server.requests if r.path == "/api/ping" and r.finished_ms is not None]
    if not server.observed or not pings:
        return Verdict(None, "The run has no answered ping to judge by (the server's log did not show one).")
    ping = pings[0]
    sent_ms = sync.ms(sync.response)
    if ping.finished_ms < sent_ms:
        early, _ = shown_gap(sent_ms - ping.finished_ms)
        return Verdict(
            "during",
            f"The ping was answered {early} before the blocking send's answer left: the {sync.server_kind} server "
            "gave it a thread of its own while the send waited.",
        )
    late, _ = shown_gap(ping.finished_ms - sent_ms)
    waited, _ = shown_ms(ping.finished_ms - ping.arrived_ms)
    return Verdict(
        "after",
        f"The ping was answered {late} after the blocking send's answer left; it waited {waited} in all: the "
        f"{sync.server_kind} server handled the send's request first.",
    )


def visitors_in_turn(runs: Sequence[Facts]) -> Verdict:
    """Lesson 1: visitors press the blocking button together on the one-at-a-time server: are they answered
    together, or one after another?"""
    single = _burst(runs, "single")
    if len(single) < 2:
        return Verdict(None, "The run has no two blocking sends that reached the single server together.")
    numbers = f"On {_answers(single)}"
    threaded = _burst(runs, "threaded")
    contrast = f" For contrast, on {_answers(threaded)}" if len(threaded) > 1 else ""
    by_start = sorted(single, key=lambda f: f.received.t_ns)  # type: ignore[union-attr]
    if all(b.received.t_ns >= a.response.t_ns for a, b in pairwise(by_start)):  # type: ignore[union-attr]
        waits = [shown_ms(f.queue_wait_ms or 0.0)[0] for f in by_start[1:]]
        return Verdict(
            "in_turn",
            f"{numbers} The server's only thread took each request after the one before had its answer; the later "
            f"requests waited {', '.join(waits)} for it.{contrast}",
        )
    if max(f.received.t_ns for f in single) < min(f.response.t_ns for f in single):  # type: ignore[union-attr]
        return Verdict("together", f"{numbers} All of them were being handled at the same moment.{contrast}")
    return Verdict(None, f"{numbers} Some were handled at the same time, others after one another.{contrast}")


def _burst(runs: Sequence[Facts], kind: str) -> list[Facts]:
    """The first burst of blocking sends that a ``kind`` server had and answered: the first of them, and those that
    reached the server before it was answered (as visitors pressing together do)."""
    sends = sorted(
        (
            f
            for f in runs
            if f.trace.mode == "sync" and f.server_kind == kind and f.received is not None and f.response is not None
        ),
        key=lambda f: f.arrived.t_ns,  # type: ignore[union-attr]
    )
    return [f for f in sends if f.arrived.t_ns <= sends[0].response.t_ns] if sends else []  # type: ignore[union-attr]


def _answers(sends: Sequence[Facts]) -> str:
    """When each of a burst's visitors had an answer, from the moment the first of them reached the server."""
    first = sends[0].arrived.t_ns  # type: ignore[union-attr]
    shown = [shown_ms((t - first) / 1e6)[0] for t in sorted(f.response.t_ns for f in sends)]  # type: ignore[union-attr]
    return (
        f"the {sends[0].server_kind} server, the {len(sends)} visitors were answered {', '.join(shown[:-1])} and "
        f"{shown[-1]} after the first of their requests arrived."
    )


def answer_before_acceptance(runs: Sequence[Facts]) -> Verdict:
    """Lesson 2: which came first, the route's 202 or the sink's 250?"""
    thread = _first(runs, "thread")
    if thread is None or thread.response is None:
        return Verdict(None, "The run has no thread send to judge by.")
    accepted = thread.accepted
    if accepted is None:
        return Verdict(None, "The email was not accepted in this run, so there is no 250 to compare the answer with.")
    gap, _ = shown_gap(abs(thread.gap_ms(thread.response, accepted)))
    if thread.position(thread.response) < thread.position(accepted):
        return Verdict("answer_first", f"The HTTP {thread.status} left {gap} before the sink's 250.")
    return Verdict("email_first", f"The sink's 250 came {gap} before the HTTP {thread.status} left.")


def broken_variant_status(runs: Sequence[Facts]) -> Verdict:
    """Lesson 3: what does the route whose worker forgets the app context answer?"""
    broken = _first(runs, "thread-no-context")
    if broken is None or broken.status is None:
        return Verdict(None, "The run has no answer from the no-context variant to judge by.")
    failure = broken.final_failure
    ended = (
        f" Its worker failed afterwards, on its own thread: {failure.details.get('error', '')}"
        if failure is not None and broken.position(broken.response) < broken.position(failure)
        else ""
    )
    answer = "accepted" if broken.status == 202 else "error" if broken.status >= 500 else None
    if answer is None:
        return Verdict(None, f"The variant answered HTTP {broken.status}, which neither option names.")
    return Verdict(answer, f"The variant answered HTTP {broken.status}.{ended}")


def thread_answers_sooner(runs: Sequence[Facts]) -> Verdict:
    """Lesson 4: does the thread route answer sooner than the blocking one, by about the sink's wait?"""
    sync, thread = _first(runs, "sync"), _first(runs, "thread")
    if sync is None or thread is None or sync.response is None or thread.response is None:
        return Verdict(None, "The run needs a blocking send and a thread send to compare.")
    blocking_ms, thread_ms = sync.ms(sync.response), thread.ms(thread.response)
    shown_blocking, _ = shown_ms(blocking_ms)
    shown_thread, _ = shown_ms(thread_ms)
    numbers = f"The blocking route answered after {shown_blocking}, the thread route after {shown_thread}"
    hold = sync.first("sink.delay_started")
    hold_end = sync.sink_hold_end(hold) if hold is not None else None
    held_ms = sync.gap_ms(hold, hold_end) if hold is not None and hold_end is not None else None
    if held_ms is None:
        return Verdict(None, f"{numbers}; the sink's wait is not in the trace to compare with.")
    shown_held, _ = shown_ms(held_ms)
    if blocking_ms - thread_ms >= held_ms / 2:
        return Verdict("sooner", f"{numbers}: sooner by more than half of the sink's {shown_held} wait.")
    return Verdict("same", f"{numbers}: the difference is less than half of the sink's {shown_held} wait.")


def pool_retries_a_451(runs: Sequence[Facts]) -> Verdict:
    """Lesson 5: when the sink says "try again later", how many attempts does the pool make?"""
    pool = _first(runs, "pool")
    if pool is None:
        return Verdict(None, "The run has no pool send to judge by.")
    attempts = len(pool.all("attempt.started"))
    if attempts == 0:
        return Verdict(None, "The pool's send made no attempt in this run.")
    code = pool.failure_code()
    reply = f" (the sink's reply: {code})" if code else ""
    if attempts == 1:
        return Verdict("one", f"The pool made 1 attempt{reply}.")
    return Verdict("several", f"The pool made {attempts} attempts{reply}, waiting longer before each new one.")


def pool_bounds_concurrency(runs: Sequence[Facts]) -> Verdict:
    """Lesson 6: a burst of sends to the pool: were they all sent at once, or at most the pool's size at a time?"""
    pool = [f for f in runs if f.trace.mode == "pool" and f.worker is not None and f.worker_end is not None]
    queued = pool[0].first("pool.queued") if pool else None
    if len(pool) < 2 or queued is None:
        return Verdict(None, "The run has no burst of finished pool sends to judge by.")
    size = int(queued.details.get("pool_size", 0))
    # A pool thread is busy with an email from the moment it takes it to the moment it is done with it.
    edges = sorted(
        [(f.worker.t_ns, 1) for f in pool] + [(f.worker_end.t_ns, -1) for f in pool], key=lambda e: (e[0], e[1])
    )
    busy = most = 0
    for _, change in edges:
        busy += change
        most = max(most, busy)
    longest, _ = shown_ms(max(f.gap_ms(f.first("pool.queued"), f.worker) for f in pool))
    numbers = (
        f"{len(pool)} sends reached the pool together; at most {most} were being sent at the same time (the pool "
        f"has {size} threads), and the longest wait for a free thread was {longest}."
    )
    return Verdict("all_at_once" if most == len(pool) else "bounded", numbers)


CHECKS: dict[str, tuple[Check, tuple[str, ...]]] = {
    "ping_during_send": (ping_during_send, ("during", "after")),
    "visitors_in_turn": (visitors_in_turn, ("in_turn", "together")),
    "answer_before_acceptance": (answer_before_acceptance, ("answer_first", "email_first")),
    "broken_variant_status": (broken_variant_status, ("accepted", "error")),
    "thread_answers_sooner": (thread_answers_sooner, ("sooner", "same")),
    "pool_retries_a_451": (pool_retries_a_451, ("one", "several")),
    "pool_bounds_concurrency": (pool_bounds_concurrency, ("bounded", "all_at_once")),
}
