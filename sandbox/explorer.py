"""The interleaving explorer: every order of gate releases a scenario allows, each run for real, and how often the
operating system chose each when nobody held the threads.

A scenario is one send by one route, or two sends at once (two workers counting into one shared count), held at
every gate or only at some. Run with ``?schedule=manual`` (see :mod:`sandbox.gates`), their threads wait at the
gates; the explorer waits until every thread of the sends is held at a gate, finished, or waiting for the sink's
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
from sandbox.strategies.modes import COUNT_MODE, NO_CONTEXT
from sandbox.trace.facts import SINK_ENDS, lost_update
from sandbox.trace.gates import AFTER_250, COUNT_READ, GATE_IDS, MANUAL, OBSERVE, PASSED, Parked, Schedule
from sandbox.trace.steps import counted
from sandbox.trace.tracer import DEFAULT_DESK, Trace

if TYPE_CHECKING:
    from flask import Flask

    from sandbox.runtime import Sandbox
    from sandbox.trace.tracer import Tracer

# What an ordering's outcome can say, as its table's columns name it.
OUTCOME_COLUMNS = {
    "accepted_before_answer": "Accepted before the answer",
    "request_sent": "The answer waited in mail.send()",
    "failed": "Failed",
    "lost_update": "An update lost",
}


@dataclass(frozen=True)
class Scenario:
    """A route, how many sends of it run at once, the gates that hold their threads (None: every gate), and what
    the orderings are asked."""

    mode: str
    question: str
    sends: int = 1
    holds: tuple[str, ...] | None = None
    asks: tuple[str, ...] = ("accepted_before_answer", "request_sent", "failed")


SCENARIOS = {
    "thread": Scenario("thread", "A thread per email: can the email be accepted before the answer leaves?"),
    "thread-no-context": Scenario(
        NO_CONTEXT, "The worker without an app context: does it fail before the answer leaves?"
    ),
    "sync": Scenario("sync", "The blocking route: is there any order in which the answer leaves before the 250?"),
    "thread-count": Scenario(
        COUNT_MODE,
        "Two workers count their emails in one shared dict, each reading the count and then writing it back one "
        "higher: in which orders is an update lost?",
        sends=2,
        holds=(AFTER_250, COUNT_READ),
        asks=("lost_update", "failed"),
    ),
}
ORDERINGS, FREE_RUNS = "orderings run, held at the gates", "runs nobody held"
SETTLE_S = 10.0  # how long one step of a run may take to come to rest before the explorer gives up
POLL_S = 0.002
ENDS = {"request": ("response.sent",), "worker": ("worker.finished", "worker.failed"), "sink": SINK_ENDS}


@dataclass(frozen=True)
class Target:
    """The running app the explorer sends to (at ``url``) and whose scheduler and tracer it reads, as one desk:
    ``headers`` carry that desk's cookie when it is not the default desk."""

    url: str
    app: Flask
    desk: str = DEFAULT_DESK
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, sandbox: Sandbox | Target) -> Target:
        return sandbox if isinstance(sandbox, Target) else cls(sandbox.url, sandbox.app)

    @property
    def tracer(self) -> Tracer:
        return self.app.extensions["sandbox.tracer"]

    @property
    def scheduler(self) -> Any:
        return self.app.extensions["sandbox.scheduler"]

    def send(self, plan: Scenario, how: str, timeout: float) -> Any:
        hold = f"&hold={','.join(_gate_id(gate) for gate in plan.holds)}" if plan.holds and how == MANUAL else ""
        url = f"{self.url}send-email/{plan.mode}?schedule={how}{hold}"
        return call(url, "POST", {}, timeout, dict(self.headers))


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
    """What one run did, read from its traces; None where the scenario does not ask (or, for the 250, none came)."""

    accepted_before_answer: bool | None = None  # the sink's 250 came before the answer left
    request_sent: bool | None = None  # the request's own thread ran mail.send(), so its answer waited for it
    failed: bool | None = None  # a worker failed, or the send raised in the route
    lost_update: bool | None = None  # a write of the shared count replaced a value its worker had not read

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in OUTCOME_COLUMNS}


@dataclass
class Ordering:
    steps: tuple[Step, ...]
    outcome: Outcome
    trace_ids: tuple[str, ...]  # one per send, in the order the sends started
    observed: int = 0  # how many of the runs nobody held took this order

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [{"role": s.role, "gate": s.gate} for s in self.steps],
            "outcome": self.outcome.to_dict(),
            "trace_id": self.trace_ids[0],
            "trace_ids": list(self.trace_ids),
            "observed": self.observed,
        }


@dataclass
class Exploration:
    scenario: str
    plan: Scenario
    orderings: list[Ordering]
    free_runs: int = 0
    # Orders seen in the runs nobody held that the enumeration did not produce (none, if the explorer is right).
    unexplained: Counter[tuple[Step, ...]] = field(default_factory=Counter)

    @property
    def what_ran(self) -> str:
        """How each ordering was run, in a sentence."""
        plan = self.plan
        sends = "One send" if plan.sends == 1 else f"{counted(plan.sends, 'send')} at once"
        named = [f"“{gate}”" for gate in plan.holds or ()]
        if len(named) > 1:
            named = [", ".join(named[:-1]) + " and " + named[-1]]
        where = f"only at the gates {named[0]}" if named else "at every gate"
        numbered = " (send 1 is the first to reach the server, and worker 1 is its worker)" if plan.sends > 1 else ""
        return (
            f"{sends} by POST /send-email/{plan.mode}{numbered}, the threads held {where}, then released in every "
            f"order the program allows, each order run for real; then {counted(self.free_runs, 'run')} nobody held, "
            "each placed in the table by the order in which its threads passed the same gates."
        )

    @property
    def columns(self) -> list[tuple[str, str]]:
        """The outcome columns of this scenario's table: (the Outcome field, its heading)."""
        return [(name, OUTCOME_COLUMNS[name]) for name in self.plan.asks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "mode": self.plan.mode,
            "question": self.plan.question,
            "sends": self.plan.sends,
            "asks": list(self.plan.asks),
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


def explore(sandbox: Sandbox | Target, scenario: str, runs: int, progress: Progress = lambda *_: None) -> Exploration:
    """Every ordering of ``scenario``, run for real, then ``runs`` sends nobody holds, counted by ordering."""
    target = Target.of(sandbox)
    plan = SCENARIOS[scenario]
    orderings = enumerate_orderings(target, plan, progress)
    exploration = Exploration(scenario, plan, orderings)
    by_steps = {o.steps: o for o in exploration.orderings}
    for n in range(runs):
        progress(FREE_RUNS, n, runs)
        steps = observed_order(target, plan)
        if steps in by_steps:
            by_steps[steps].observed += 1
        else:
            exploration.unexplained[steps] += 1
    progress(FREE_RUNS, runs, runs)
    exploration.free_runs = runs
    return exploration


def enumerate_orderings(target: Target, plan: Scenario, progress: Progress) -> list[Ordering]:
    """Depth first: each run replays a prefix of choices, then takes the first choice at every later step and
    leaves the others to later runs."""
    pending: list[tuple[Step, ...]] = [()]
    orderings = []
    while pending:
        prefix = pending.pop()
        progress(ORDERINGS, len(orderings), None)
        taken, traces = _held_run(target, plan, prefix, pending)
        orderings.append(Ordering(taken, outcome_of(traces, plan.asks), tuple(t.trace_id for t in traces)))
    progress(ORDERINGS, len(orderings), len(orderings))
    return sorted(orderings, key=lambda o: o.steps)


def _gate_id(gate: str) -> str:
    return next(name for name, named in GATE_IDS.items() if named == gate)


def _label(schedule: Schedule, thread: str, n: int, sends: int) -> str:
    """A thread's part in the run: its role, numbered by send when the run has several."""
    role = schedule.role(thread)
    return f"{role} {n}" if sends > 1 else role


def _held_run(
    target: Target, plan: Scenario, prefix: tuple[Step, ...], pending: list[tuple[Step, ...]]
) -> tuple[tuple[Step, ...], list[Trace]]:
    known = {s.trace_id for s in target.scheduler.of_desk(target.desk)}
    taken: list[Step] = []
    with ThreadPoolExecutor(plan.sends) as clients:
        answers, schedules = [], []
        for _ in range(plan.sends):  # one after the other, so that send n is the n-th to start
            answers.append(clients.submit(target.send, plan, MANUAL, 120))
            schedules.append(_new_schedule(target, known))
            known.add(schedules[-1].trace_id)
        while held := _all_at_rest(target, schedules):
            choices = {
                Step(_label(schedule, p.thread, n, plan.sends), p.gate): (schedule, p)
                for n, schedule in enumerate(schedules, 1)
                for p in held[n - 1]
            }
            enabled = sorted(choices)
            if len(taken) < len(prefix):
                step = prefix[len(taken)]
                if step not in choices:
                    raise ExplorerError(f"the run did not repeat: {step.label} is not held after {taken}")
            else:
                step = enabled[0]
                pending.extend((*taken, other) for other in reversed(enabled[1:]))
            schedule, chosen = choices[step]
            if schedule.release(chosen.thread) is None:
                raise ExplorerError(f"{chosen.thread} was held at {chosen.gate} and then was not")
            taken.append(step)
        for answer in answers:
            answer.result()
    return tuple(taken), [_settled_trace(target, schedule.trace_id) for schedule in schedules]


def _new_schedule(target: Target, known: set[str]) -> Schedule:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        fresh = [s for s in target.scheduler.of_desk(target.desk) if s.trace_id not in known]
        if fresh:
            return fresh[0]
        time.sleep(POLL_S)
    raise ExplorerError("the send never started")


def _all_at_rest(target: Target, schedules: list[Schedule]) -> list[list[Parked]]:
    """Once no thread of the sends is running: those held at a gate, send by send (all empty once they are over)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        held = [schedule.parked() for schedule in schedules]
        traces = [target.tracer.get(schedule.trace_id) for schedule in schedules]
        if all(
            trace is not None and _resting(trace, schedule, {p.role for p in parked})
            for trace, schedule, parked in zip(traces, schedules, held, strict=True)
        ):
            return held if any(held) else []
        time.sleep(POLL_S)
    raise ExplorerError(f"the sends did not come to rest within {SETTLE_S:g} s")


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


def observed_order(target: Target, plan: Scenario) -> tuple[Step, ...]:
    """The scenario's sends at once, nobody holding: the gates their threads passed (those the scenario holds at),
    in the order they passed them; send n is the n-th to reach the server."""
    with ThreadPoolExecutor(plan.sends) as clients:
        replies = list(clients.map(lambda _: target.send(plan, OBSERVE, 60), range(plan.sends)))
    runs = []
    for reply in replies:
        trace_id = reply.body.get("trace_id")
        schedule = target.scheduler.get(trace_id, target.desk) if trace_id else None
        if schedule is None:
            raise ExplorerError(f"the observed send got no schedule: {reply.status} {reply.body}")
        runs.append((_settled_trace(target, trace_id), schedule))
    runs.sort(key=lambda run: run[0].started_ns)
    passed = [
        (event.t_ns, Step(_label(schedule, event.thread, n, plan.sends), str(event.details.get("gate"))))
        for n, (trace, schedule) in enumerate(runs, 1)
        for event in trace.events
        if event.kind == PASSED and (plan.holds is None or event.details.get("gate") in plan.holds)
    ]
    return tuple(step for _, step in sorted(passed, key=lambda p: p[0]))


def _settled_trace(target: Target, trace_id: str) -> Trace:
    """The trace once its send has ended (the sink's answer included)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        trace = target.tracer.get(trace_id)
        if trace is not None and trace.complete and _sink_done(trace):
            return trace
        time.sleep(POLL_S)
    raise ExplorerError(f"trace {trace_id} did not end within {SETTLE_S:g} s")


def _sink_done(trace: Trace) -> bool:
    received = trace.first("sink.data_received") is not None
    return not received or any(trace.first(kind) for kind in SINK_ENDS)


def outcome_of(traces: list[Trace], asks: tuple[str, ...]) -> Outcome:
    """What the run's sends did, for the questions its scenario asks (the first three read the first send)."""
    trace = traces[0]
    kinds = [e.kind for e in trace.events]
    request_thread = trace.first("request.received")
    accepted = "sink.accepted" in kinds
    found = {
        "accepted_before_answer": (kinds.index("sink.accepted") < kinds.index("response.sent") if accepted else None),
        "request_sent": any(
            e.kind == "send.started" and request_thread is not None and e.thread_id == request_thread.thread_id
            for e in trace.events
        ),
        "failed": any(e.kind in ("worker.failed", "smtp.failed") for t in traces for e in t.events),
        "lost_update": any(lost_update(e) for t in traces for e in t.events if e.kind == "count.written"),
    }
    return Outcome(**{name: found[name] for name in asks})


def yes_no(value: bool | None) -> str:
    return "no 250" if value is None else "yes" if value else "no"


def summary(exploration: Exploration) -> Sequence[str]:
    """The counts a reader wants first, as sentences true of this exploration."""
    orderings = exploration.orderings
    n = len(orderings)
    lines = [
        f"{counted(n, 'ordering')} of the gates can happen; each was run for real, its threads held and released "
        "in that order."
    ]
    asks = exploration.plan.asks
    if "accepted_before_answer" in asks:
        lines.append(
            f"In {_of(orderings, lambda o: o.outcome.accepted_before_answer, n)} the sink accepted the email before "
            "the answer left."
        )
    if "request_sent" in asks:
        lines.append(
            f"In {_of(orderings, lambda o: o.outcome.request_sent, n)} the answer waited inside mail.send() on the "
            "request's own thread."
        )
    if "lost_update" in asks:
        lines.append(
            f"In {_of(orderings, lambda o: o.outcome.lost_update, n)} a worker wrote the count back over a value it "
            "had not read: an update was lost."
        )
    if any(o.outcome.failed for o in orderings):
        lines.append(f"In {_of(orderings, lambda o: o.outcome.failed, n)} the send failed.")
    runs = exploration.free_runs
    if runs:
        seen = [f"ordering {i} came up {counted(o.observed, 'time')}" for i, o in enumerate(orderings, 1) if o.observed]
        nobody = f"In {counted(runs, 'run')} nobody held"
        if exploration.plan.sends > 1:
            nobody += f" (each {exploration.plan.sends} sends at once)"
        lines.append(f"{nobody}: " + (", ".join(seen) or "no ordering came up") + ".")
        lines += _never_seen(orderings, exploration.plan.asks)
    unexplained = sum(exploration.unexplained.values())
    if unexplained:
        lines.append(f"{counted(unexplained, 'run')} nobody held took an order the enumeration did not produce.")
    return lines


def _never_seen(orderings: list[Ordering], asks: tuple[str, ...]) -> list[str]:
    """Which orderings never came up, and whether any of them ends in a way no ordering that came up did."""
    unseen = [(i, o) for i, o in enumerate(orderings, 1) if not o.observed]
    if not unseen:
        return []
    seen_outcomes = {o.outcome for o in orderings if o.observed}
    lines = [f"{_numbered([i for i, _ in unseen])} never came up, though {'it' if len(unseen) == 1 else 'each'} can."]
    different: dict[str, list[int]] = {}
    for i, o in unseen:
        if o.outcome not in seen_outcomes:
            different.setdefault(outcome_words(o.outcome, asks), []).append(i)
    for words, numbers in different.items():
        ends = "ends" if len(numbers) == 1 else "end"
        lines.append(f"{_numbered(numbers)} {ends} in a way no ordering that came up did: {words}.")
    if different:
        lines.append("An outcome only a rare ordering gives is where a rare bug hides.")
    else:
        lines.append("Each ends as an ordering that came up did, so the runs nobody held missed no outcome.")
    return lines


def outcome_words(outcome: Outcome, asks: tuple[str, ...]) -> str:
    accepted = {None: "no 250 came", True: "the 250 came before the answer", False: "the answer left before the 250"}
    words = [accepted[outcome.accepted_before_answer]] if "accepted_before_answer" in asks else []
    if outcome.request_sent:
        words.append("the answer waited in mail.send()")
    if outcome.lost_update:
        words.append("an update was lost")
    elif "lost_update" in asks:
        words.append("every update was kept")
    if outcome.failed:
        words.append("the send failed")
    return ", ".join(words)


def _of(orderings: list[Ordering], test: Callable[[Ordering], bool | None], n: int) -> str:
    return f"{sum(1 for o in orderings if test(o))} of {'it' if n == 1 else 'them'}"


def _numbered(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"Ordering {numbers[0]}"
    return f"Orderings {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"
