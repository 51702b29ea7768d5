"""The interleaving explorer: every order of gate releases a scenario allows, each run for real, and how often the
operating system chose each when nobody held the threads.

A scenario is one send by one route. Run with ``?schedule=manual`` (see :mod:`sandbox.gates`), its threads wait at
the gates; the explorer waits until every thread of the send is held at a gate, finished, or waiting for the sink's
answer while the sink is held, and then releases one of the held threads. Which ones it may release there is what the
program allows: each thread's own order, and causality (the sink has nothing to answer before the message came). It
walks every choice depth first, running the send again from the start for each ordering, so the orderings counted
are the ones that ran. Then it sends the same way ``runs`` times with ``?schedule=observe``: no thread is held, each
only notes the gates it passes, and the orderings the operating system chose are counted. An ordering that can
happen but never did in those runs is where a rare bug would hide.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.client import call
from sandbox.strategies.modes import NO_CONTEXT
from sandbox.trace.facts import SINK_ENDS
from sandbox.trace.gates import MANUAL, OBSERVE, PASSED, Parked, Schedule
from sandbox.trace.steps import counted
from sandbox.trace.tracer import DEFAULT_DESK, Trace

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

# A scenario's name, the route it sends by, and what it asks of the orderings.
SCENARIOS = {
    "thread": ("thread", "A thread per email: can the email be accepted before the answer leaves?"),
    "thread-no-context": (NO_CONTEXT, "The worker without an app context: does it fail before the answer leaves?"),
    "sync": ("sync", "The blocking route: is there any order in which the answer leaves before the 250?"),
}
ORDERINGS, FREE_RUNS = "orderings run, held at the gates", "runs nobody held"
SETTLE_S = 10.0  # how long one step of a run may take to come to rest before the explorer gives up
POLL_S = 0.002
ENDS = {"request": ("response.sent",), "worker": ("worker.finished", "worker.failed"), "sink": SINK_ENDS}


class ExplorerError(RuntimeError):
    """A run that did not come to rest, or did not repeat the choices that led to it."""


@dataclass(frozen=True, order=True)
class Step:
    """One release: the thread's part in the send and the gate it went on from."""

    role: str
    gate: str

    @property
    def label(self) -> str:
        return f"{self.role}: {self.gate}"


@dataclass(frozen=True)
class Outcome:
    """What one run did, read from its trace."""

    accepted_before_answer: bool | None  # None: no 250 came
    request_sent: bool  # the request's own thread ran mail.send(), so its answer waited for the mail server
    failed: bool  # a worker failed, or the send raised in the route

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted_before_answer": self.accepted_before_answer,
            "request_sent": self.request_sent,
            "failed": self.failed,
        }


@dataclass
class Ordering:
    steps: tuple[Step, ...]
    outcome: Outcome
    trace_id: str
    observed: int = 0  # how many of the runs nobody held took this order

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [{"role": s.role, "gate": s.gate} for s in self.steps],
            "outcome": self.outcome.to_dict(),
            "trace_id": self.trace_id,
            "observed": self.observed,
        }


@dataclass
class Exploration:
    scenario: str
    mode: str
    question: str
    orderings: list[Ordering]
    free_runs: int = 0
    # Orders seen in the runs nobody held that the enumeration did not produce (none, if the explorer is right).
    unexplained: Counter[tuple[Step, ...]] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "question": self.question,
            "enumerated": len(self.orderings),
            "orderings": [o.to_dict() for o in self.orderings],
            "free_runs": self.free_runs,
            "never_observed": sum(1 for o in self.orderings if o.observed == 0),
            "unexplained": [
                {"steps": [{"role": s.role, "gate": s.gate} for s in steps], "observed": n}
                for steps, n in self.unexplained.items()
            ],
        }


Progress = Callable[[str, int, int | None], None]  # (phase, done, total or None while unknown)


def explore(sandbox: Sandbox, scenario: str, runs: int, progress: Progress = lambda *_: None) -> Exploration:
    """Every ordering of ``scenario``, run for real, then ``runs`` sends nobody holds, counted by ordering."""
    mode, question = SCENARIOS[scenario]
    exploration = Exploration(scenario, mode, question, enumerate_orderings(sandbox, mode, progress))
    by_steps = {o.steps: o for o in exploration.orderings}
    for n in range(runs):
        progress(FREE_RUNS, n, runs)
        steps = observed_order(sandbox, mode)
        if steps in by_steps:
            by_steps[steps].observed += 1
        else:
            exploration.unexplained[steps] += 1
    progress(FREE_RUNS, runs, runs)
    exploration.free_runs = runs
    return exploration


def enumerate_orderings(sandbox: Sandbox, mode: str, progress: Progress) -> list[Ordering]:
    """Depth first: each run replays a prefix of choices, then takes the first choice at every later step and
    leaves the others to later runs."""
    pending: list[tuple[Step, ...]] = [()]
    orderings = []
    while pending:
        prefix = pending.pop()
        progress(ORDERINGS, len(orderings), None)
        taken, trace = _held_run(sandbox, mode, prefix, pending)
        orderings.append(Ordering(taken, outcome_of(trace), trace.trace_id))
    progress(ORDERINGS, len(orderings), len(orderings))
    return sorted(orderings, key=lambda o: o.steps)


def _held_run(
    sandbox: Sandbox, mode: str, prefix: tuple[Step, ...], pending: list[tuple[Step, ...]]
) -> tuple[tuple[Step, ...], Trace]:
    scheduler = sandbox.app.extensions["sandbox.scheduler"]
    known = {s.trace_id for s in scheduler.of_desk(DEFAULT_DESK)}
    taken: list[Step] = []
    with ThreadPoolExecutor(1) as client:
        answer = client.submit(call, f"{sandbox.url}send-email/{mode}?schedule={MANUAL}", "POST", {}, 120)
        schedule = _new_schedule(scheduler, known)
        while held := _at_rest(sandbox, schedule):
            enabled = sorted({Step(p.role, p.gate) for p in held})
            if len(taken) < len(prefix):
                step = prefix[len(taken)]
                if step not in enabled:
                    raise ExplorerError(f"the run did not repeat: {step.label} is not held after {taken}")
            else:
                step = enabled[0]
                pending.extend((*taken, other) for other in reversed(enabled[1:]))
            chosen = next(p for p in held if Step(p.role, p.gate) == step)
            if schedule.release(chosen.thread) is None:
                raise ExplorerError(f"{chosen.thread} was held at {chosen.gate} and then was not")
            taken.append(step)
        answer.result()
    return tuple(taken), _settled_trace(sandbox, schedule.trace_id)


def _new_schedule(scheduler: Any, known: set[str]) -> Schedule:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        fresh = [s for s in scheduler.of_desk(DEFAULT_DESK) if s.trace_id not in known]
        if fresh:
            return fresh[0]
        time.sleep(POLL_S)
    raise ExplorerError("the send never started")


def _at_rest(sandbox: Sandbox, schedule: Schedule) -> list[Parked]:
    """Once no thread of the send is running: those held at a gate (none once the send is over)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        held = schedule.parked()
        trace = sandbox.tracer.get(schedule.trace_id)
        if trace is not None and _resting(trace, schedule, {p.role for p in held}):
            return held
        time.sleep(POLL_S)
    raise ExplorerError(f"the send did not come to rest within {SETTLE_S:g} s")


def _resting(trace: Trace, schedule: Schedule, held: set[str]) -> bool:
    """Every thread that has a part in the send is held, done, or waiting for the sink's answer while the sink is
    held; and no thread is about to begin (a worker started, a message on its way to the sink)."""
    last: dict[str, str] = {}
    for event in trace.events:
        if event.kind != "request.arrived":  # recorded for the server's accepting thread, which has no part
            last[schedule.role(event.thread)] = event.kind
    kinds = {e.kind for e in trace.events}
    if "request" not in last or ("worker.spawned" in kinds and "worker" not in last):
        return False  # the route, or a worker it started, has not begun yet
    for role, kind in last.items():
        done = kind in ENDS.get(role, ())
        waiting_for_sink = kind == "smtp.data_sent" and "sink" in held
        if not (done or role in held or waiting_for_sink):
            return False
    return True


def observed_order(sandbox: Sandbox, mode: str) -> tuple[Step, ...]:
    """One send nobody holds: the gates its threads passed, in the order they passed them."""
    reply = call(f"{sandbox.url}send-email/{mode}?schedule={OBSERVE}", "POST", {}, 60)
    trace_id = reply.body.get("trace_id")
    schedule = sandbox.app.extensions["sandbox.scheduler"].get(trace_id, DEFAULT_DESK) if trace_id else None
    if schedule is None:
        raise ExplorerError(f"the observed send got no schedule: {reply.status} {reply.body}")
    trace = _settled_trace(sandbox, trace_id)
    return tuple(Step(schedule.role(e.thread), str(e.details.get("gate"))) for e in trace.events if e.kind == PASSED)


def _settled_trace(sandbox: Sandbox, trace_id: str) -> Trace:
    """The trace once its send has ended (the sink's answer included)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        trace = sandbox.tracer.get(trace_id)
        if trace is not None and trace.complete and _sink_done(trace):
            return trace
        time.sleep(POLL_S)
    raise ExplorerError(f"trace {trace_id} did not end within {SETTLE_S:g} s")


def _sink_done(trace: Trace) -> bool:
    received = trace.first("sink.data_received") is not None
    return not received or any(trace.first(kind) for kind in SINK_ENDS)


def outcome_of(trace: Trace) -> Outcome:
    kinds = [e.kind for e in trace.events]
    request_thread = trace.first("request.received")
    accepted = "sink.accepted" in kinds
    return Outcome(
        accepted_before_answer=kinds.index("sink.accepted") < kinds.index("response.sent") if accepted else None,
        request_sent=any(
            e.kind == "send.started" and request_thread is not None and e.thread_id == request_thread.thread_id
            for e in trace.events
        ),
        failed="worker.failed" in kinds or "smtp.failed" in kinds,
    )


def yes_no(value: bool | None) -> str:
    return "no 250" if value is None else "yes" if value else "no"


def summary(exploration: Exploration) -> Sequence[str]:
    """The counts a reader wants first, as sentences true of this exploration."""
    orderings = exploration.orderings
    n = len(orderings)
    lines = [
        f"{counted(n, 'ordering')} of the gates can happen; each was run for real, its threads held and released "
        "in that order.",
        f"In {_of(orderings, lambda o: o.outcome.accepted_before_answer, n)} the sink accepted the email before "
        "the answer left.",
        f"In {_of(orderings, lambda o: o.outcome.request_sent, n)} the answer waited inside mail.send() on the "
        "request's own thread.",
    ]
    if any(o.outcome.failed for o in orderings):
        lines.append(f"In {_of(orderings, lambda o: o.outcome.failed, n)} the send failed.")
    runs = exploration.free_runs
    if runs:
        seen = [f"ordering {i} came up {counted(o.observed, 'time')}" for i, o in enumerate(orderings, 1) if o.observed]
        lines.append(f"In {counted(runs, 'run')} nobody held: " + ", ".join(seen) + ".")
        lines += _never_seen(orderings)
    unexplained = sum(exploration.unexplained.values())
    if unexplained:
        lines.append(f"{counted(unexplained, 'run')} nobody held took an order the enumeration did not produce.")
    return lines


def _never_seen(orderings: list[Ordering]) -> list[str]:
    """Which orderings never came up, and whether any of them ends in a way no ordering that came up did."""
    unseen = [(i, o) for i, o in enumerate(orderings, 1) if not o.observed]
    if not unseen:
        return []
    seen_outcomes = {o.outcome for o in orderings if o.observed}
    lines = [f"{_numbered([i for i, _ in unseen])} never came up, though {'it' if len(unseen) == 1 else 'each'} can."]
    different: dict[str, list[int]] = {}
    for i, o in unseen:
        if o.outcome not in seen_outcomes:
            different.setdefault(outcome_words(o.outcome), []).append(i)
    for words, numbers in different.items():
        ends = "ends" if len(numbers) == 1 else "end"
        lines.append(f"{_numbered(numbers)} {ends} as no ordering that came up did: {words}.")
    if different:
        lines.append("An outcome only a rare ordering gives is where a rare bug hides.")
    else:
        lines.append("Each ends as an ordering that came up did, so the runs nobody held missed no outcome.")
    return lines


def outcome_words(outcome: Outcome) -> str:
    accepted = {None: "no 250 came", True: "the 250 came before the answer", False: "the answer left before the 250"}
    words = [accepted[outcome.accepted_before_answer]]
    if outcome.request_sent:
        words.append("the answer waited in mail.send()")
    if outcome.failed:
        words.append("the send failed")
    return ", ".join(words)


def _of(orderings: list[Ordering], test: Callable[[Ordering], bool | None], n: int) -> str:
    return f"{sum(1 for o in orderings if test(o))} of {'it' if n == 1 else 'them'}"


def _numbered(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"Ordering {numbers[0]}"
    return f"Orderings {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"
