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

from sandbox.strategies.modes import COUNT_MODE, FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK
from sandbox.trace.clock import shown_gap, shown_ms
from sandbox.trace.facts import Facts, count_writes, lost_update
from sandbox.trace.steps import counted

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


def _last(runs: Sequence[Facts], mode: str) -> Facts | None:
    return next((f for f in reversed(runs) if f.trace.mode == mode), None)


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


def slow_server_answer(runs: Sequence[Facts]) -> Verdict:
    """Lesson 4: the mail server takes longer to greet than the app will wait: what does the blocking route answer?
    Judged by the run's last blocking send (the lesson's slow-server step is its last)."""
    sync = _last(runs, "sync")
    if sync is None or sync.response is None or sync.status is None:
        return Verdict(None, "The run has no answered blocking send to judge by.")
    took, _ = shown_ms(sync.ms(sync.response))
    numbers = f"The blocking route answered HTTP {sync.status} after {took}"
    timeout = sync.trace.settings.get("smtp_timeout_s")
    limit = f" (the app's SMTP timeout was {timeout:g} s)" if isinstance(timeout, (int, float)) else ""
    thread = _last(runs, "thread")
    worker = ""
    if thread is not None and thread.response is not None and thread.final_failure is not None:
        gap, _ = shown_gap(abs(thread.gap_ms(thread.response, thread.final_failure)))
        when = "after" if thread.position(thread.response) < thread.position(thread.final_failure) else "before"
        worker = (
            f" The thread route answered HTTP {thread.status}; its worker recorded the failure {gap} {when} that "
            f"answer left: {thread.failure_error()}."
        )
    if sync.status == 504:
        return Verdict("gives_up", f"{numbers}{limit}: {sync.failure_error()}.{worker}")
    if 200 <= sync.status < 300:
        return Verdict("waits", f"{numbers}{limit}: the mail server answered in time.{worker}")
    return Verdict(None, f"{numbers}{limit}, which neither option names: {sync.failure_error()}.{worker}")


def pool_pushes_back(runs: Sequence[Facts]) -> Verdict:
    """Lesson 5: a burst larger than the pool's threads and its waiting room: are the extra sends refused or queued?
    The evidence also counts how many the pool sent at the same time (its bound on concurrency)."""
    pool = _pool_burst([f for f in runs if f.trace.mode == "pool" and f.status is not None])
    if len(pool) < 2:
        return Verdict(None, "The run has no burst of answered pool sends to judge by.")
    refused = [f for f in pool if f.first("pool.full") is not None]
    taken = [f for f in pool if f.first("pool.queued") is not None]
    size = (taken or refused)[0].first("pool.queued", "pool.full").details.get("pool_size")  # type: ignore[union-attr]
    sent = f" It sent at most {_most_at_once(taken)} at the same time (it has {size} threads)." if taken else ""
    if refused:
        backlog = refused[0].first("pool.full").details.get("backlog")  # type: ignore[union-attr]
        statuses = ", ".join(str(status) for status in sorted({f.status for f in refused}))
        return Verdict(
            "refused",
            f"Of {len(pool)} sends made together, the pool took {len(taken)} and refused {len(refused)} at once with "
            f"HTTP {statuses}: its threads were busy and {backlog} send{'' if backlog == 1 else 's'} already waited, "
            "the most it lets wait. "
            f"The refused emails were never accepted, so their visitors can try again.{sent}",
        )
    waits = [f.gap_ms(f.first("pool.queued"), f.worker) for f in taken if f.worker is not None]  # type: ignore[arg-type]
    longest, _ = shown_ms(max(waits, default=0.0))
    return Verdict(
        "queued",
        f"The pool took all {len(pool)} sends and refused none; the longest wait for a free thread was "
        f"{longest}.{sent}",
    )


def _pool_burst(sends: list[Facts]) -> list[Facts]:
    """The first burst of pool sends: those that reached the server before any of them had been sent."""
    ends = [f.worker_end.t_ns for f in sends if f.worker_end is not None]
    cutoff = min(ends, default=None)
    return [f for f in sends if cutoff is None or f.trace.started_ns <= cutoff]


def _most_at_once(sends: Sequence[Facts]) -> int:
    """The most of ``sends`` a worker was busy with at one moment (from taking the email to being done with it)."""
    busy_spans = [(f.worker.t_ns, f.worker_end.t_ns) for f in sends if f.worker and f.worker_end]
    edges = sorted([(start, 1) for start, _ in busy_spans] + [(end, -1) for _, end in busy_spans])
    busy = most = 0
    for _, change in edges:
        busy += change
        most = max(most, busy)
    return most


def queue_worker_sends(runs: Sequence[Facts]) -> Verdict:
    """Lesson 6: the route stores a task and answers: which thread sends the email?"""
    queued = _first(runs, "queue")
    if queued is None or queued.handoff is None or queued.worker is None:
        return Verdict(None, "The run has no queued send that a worker took to judge by.")
    waited, _ = shown_gap(queued.gap_ms(queued.handoff, queued.worker))
    numbers = (
        f"The route stored the task and answered HTTP {queued.status}; {waited} after the task was stored, "
        f"{queued.worker.thread} took it"
    )
    thread = _first(runs, "thread")
    contrast = (
        f" The thread route's email went by {thread.spawned_worker_name}, a thread that route started itself."
        if thread is not None and thread.spawned_worker_name
        else ""
    )
    if queued.worker_origin == "consumer":
        return Verdict("consumer", f"{numbers}: a worker of the queue's consumer.{contrast}")
    return Verdict("route", f"{numbers}.{contrast}")


def copies_delivered(runs: Sequence[Facts]) -> Verdict:
    """Lesson 7: the sink stores each email but its 250 is lost, and the worker retries blindly: how many copies
    does the mailbox get? Counted from the sink's own events for the run's first ``thread-retry`` send."""
    retried = _first(runs, "thread-retry")
    if retried is None or not retried.sink_lane_ended:
        return Verdict(None, "The run has no blind-retry send whose sink's side was watched, to count copies by.")
    attempts, stored = len(retried.attempts), len(retried.stored_copies)
    repeats = len(retried.recognised_copies)
    numbers = (
        f"The worker made {attempts} attempt{'' if attempts == 1 else 's'} with the same Message-ID, and the sink "
        f"stored {stored} cop{'y' if stored == 1 else 'ies'}"
    )
    if repeats:
        numbers += f", recognising {repeats} repeat{'' if repeats == 1 else 's'} by its Message-ID"
    known = {"delivered": "a 250 reached it", "failed": "a refusal", "unknown": "it could not tell whether any arrived"}
    numbers += f". What the app itself knew at the end: {known.get(retried.sender_outcome, retried.sender_outcome)}."
    if stored == 0:
        return Verdict(None, numbers)
    return Verdict("one" if stored == 1 else "several", numbers)


def only_blocking_waits(runs: Sequence[Facts]) -> Verdict:
    """Summary: in which routes did the answer have to wait for the mail server? Decided by whether the route
    handed the send on (a thread, the pool, the queue): if not, the answer could only leave after the send."""
    modes = dict.fromkeys(f.trace.mode for f in runs)  # each route once, in the run's order
    firsts = [f for mode in modes if (f := _first(runs, mode)) is not None]
    judged = [f for f in firsts if f.send is not None and f.response is not None]
    if len(judged) < 2:
        return Verdict(None, "The run has too few sends that reached mail.send() to compare the routes.")
    waited = [f for f in judged if f.handoff is None]
    lines = []
    for f in judged:
        answered, _ = shown_ms(f.ms(f.response))  # type: ignore[arg-type]
        where = "on the request's thread" if f.on_request(f.send) else f"on {f.send.thread}"  # type: ignore[arg-type,union-attr]
        accepted = f", the email accepted after {shown_ms(f.ms(f.accepted))[0]}" if f.accepted else ""
        lines.append(f"{f.trace.mode}: mail.send() ran {where}; answered after {answered}{accepted}")
    numbers = "; ".join(lines) + "."
    if [f.trace.mode for f in waited] == ["sync"]:
        return Verdict("only_blocking", numbers)
    if len(waited) == len(judged):
        return Verdict("all", numbers)
    return Verdict(None, numbers)


def every_email_counted(runs: Sequence[Facts]) -> Verdict:
    """Lesson 9: workers count their emails at once in a shared dict, reading then writing with no lock: does the
    count go up by one for each email? Read from each write's value and the value it replaced."""
    counting = [f for f in runs if f.trace.mode == COUNT_MODE]
    writes = count_writes(counting)
    if len(writes) < 2:
        return Verdict(None, f"Only {counted(len(writes), 'worker')} of the run's sends counted, too few to lose one.")
    lost = [write for _, _, write in writes if lost_update(write)]
    first, last = writes[0][2].details.get("read"), writes[-1][2].details.get("value")
    numbers = (
        f"{counted(len(counting), 'send')}, {counted(len(writes), 'worker')} counted, and the count went from "
        f"{first} to {last}"
    )
    if lost:
        numbers += (
            f": {counted(len(lost), 'write')} replaced a number other than the one its worker had read, erasing "
            "another worker's update."
        )
        return Verdict("lost", numbers)
    return Verdict("all_counted", numbers + ": every write found the number its worker had read.")


def forgotten_task_sends(runs: Sequence[Facts]) -> Verdict:
    """Lesson 10: a view creates a task for the send and returns without awaiting it: does the email arrive? Read
    from the task's fate and the sink's lane; a run of the task that hands its send to a thread is told beside it."""
    forgotten = _last(runs, FORGOTTEN_TASK)
    if forgotten is None or forgotten.task_end is None or forgotten.response is None:
        return Verdict(None, f"The run has no finished send by {FORGOTTEN_TASK} to judge by.")
    end, answered = forgotten.task_end, shown_ms(forgotten.ms(forgotten.response))[0]
    how = end.kind.removeprefix("task.")
    contrast = _thread_task_contrast(runs)
    if forgotten.unsent is not None:
        return Verdict(
            "never",
            f"{FORGOTTEN_TASK}: its task was {how} before any mail.send() began, the answer (HTTP "
            f"{forgotten.status}) left after {answered}, and the sink received nothing.{contrast}",
        )
    if forgotten.in_mailbox is not None:
        stored = shown_ms(forgotten.ms(forgotten.in_mailbox))[0]
        return Verdict(
            "sent",
            f"{FORGOTTEN_TASK}: its task's email reached the mailbox after {stored}; the answer left after "
            f"{answered}.{contrast}",
        )
    return Verdict(None, f"{FORGOTTEN_TASK}: its task was {how}, and its email's fate is not known.{contrast}")


def _thread_task_contrast(runs: Sequence[Facts]) -> str:
    """What the task that handed its send to a thread did in the same run, if the run has one that ended."""
    other = _last(runs, FORGOTTEN_THREAD_TASK)
    send = other.task_send if other is not None else None
    if other is None or send is None or other.response is None or other.loop_closed is None:
        return ""
    end = other.task_send_end
    if end is None or other.task_end is None or other.position(end) > other.position(other.response):
        return ""
    how = "returned" if end.kind == "smtp.accepted" else "raised"
    return (
        f" For contrast, {FORGOTTEN_THREAD_TASK}: its task was {other.task_end.kind.removeprefix('task.')} too, but "
        f"the mail.send() it had handed to {send.thread} {how} after {shown_ms(other.ms(end))[0]}, and its answer "
        f"left only after that, after {shown_ms(other.ms(other.response))[0]}."
    )


CHECKS: dict[str, tuple[Check, tuple[str, ...]]] = {
    "visitors_in_turn": (visitors_in_turn, ("in_turn", "together")),
    "answer_before_acceptance": (answer_before_acceptance, ("answer_first", "email_first")),
    "broken_variant_status": (broken_variant_status, ("accepted", "error")),
    "slow_server_answer": (slow_server_answer, ("gives_up", "waits")),
    "pool_pushes_back": (pool_pushes_back, ("refused", "queued")),
    "queue_worker_sends": (queue_worker_sends, ("consumer", "route")),
    "only_blocking_waits": (only_blocking_waits, ("only_blocking", "all")),
    "copies_delivered": (copies_delivered, ("one", "several")),
    "every_email_counted": (every_email_counted, ("all_counted", "lost")),
    "forgotten_task_sends": (forgotten_task_sends, ("sent", "never")),
}
