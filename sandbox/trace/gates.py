"""Gates: the points on a send's path where, when you schedule it by hand, each of its threads waits for you.

A send started with ``?schedule=manual`` gets a :class:`Schedule`. Its threads stop at each gate they reach and go
on only when released (``POST /api/schedule/<trace_id>/release``), so you, not the operating system, choose the
order. Each stop and each release is an event of the trace, on the thread that waited, so the execution table shows
who ran when and why. No gate holds a thread forever: after ``bound_s`` (60 s unless set) it lets the thread go by
itself, and the send ends like any other. With ``?schedule=observe`` no gate holds anyone: each thread only
records that it passed (``gate.passed``), so the explorer can tell which order the operating system chose. With
``&hold=`` naming some gates (their ids in ``GATE_IDS``), only those hold a thread; the others are noted as passed.

The gates sit where the sandbox already watches the student's code from outside (their files hold no gate):

- the request's thread, once it has handed the send on (``thr.start()``, the pool's ``submit()`` or the queue's
  ``enqueue()`` has returned): before the route returns its answer;
- a worker (a thread the route started, a pool's thread, or a queue consumer's thread in this process), as it
  starts (before its first line, so before any ``app.app_context()``), then before ``mail.send()``
  talks to the server, then after the server's 250, as ``mail.send()`` returns (its conversation over);
- a worker that counts its email in the shared ``stats`` (``sandbox.strategies.counting``), between its read of the
  count and its write;
- the sink, once the whole message has arrived, before it handles it (its wait, its store and its 250 all come
  after). The sink's thread runs an event loop, so it does not block there: it awaits its release, and every other
  session goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import linecache
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.trace.tracer import PROJECT_DIR, SINK_THREAD_NAME, Location

GATE_BOUND_S = 60.0
SCHEDULES_KEPT = 200  # the newest scheduled sends the API still lists (more while threads of older ones are held)

BEFORE_ANSWER = "before the route returns its answer"
WORKER_START = "before the worker's first line"
BEFORE_SEND = "before mail.send() talks to the mail server"
AFTER_250 = "after the 250, as mail.send() returns"
SINK_BEFORE_250 = "before the sink answers 250"
COUNT_READ = "after reading the count, before writing it back"
# Short names for the gates, for ``?schedule=manual&hold=after-250,count-read`` (hold only these).
GATE_IDS = {
    "before-answer": BEFORE_ANSWER,
    "worker-start": WORKER_START,
    "before-send": BEFORE_SEND,
    "sink-before-250": SINK_BEFORE_250,
    "after-250": AFTER_250,
    "count-read": COUNT_READ,
}
BY_YOU, BY_BOUND = "you", "the bound"
GATE_KINDS = ("gate.parked", "gate.released")  # the events of a thread stopping at a gate and going on
PASSED = "gate.passed"  # a thread of an observed send went through a gate without stopping
MANUAL, OBSERVE = "manual", "observe"  # the ways to schedule a send: ?schedule=manual or ?schedule=observe

Record = Callable[..., None]  # record(kind, at=..., **details) on the waiting thread's trace


@dataclass
class Parked:
    """A thread waiting at a gate; ``released`` gets who let it go."""

    gate: str
    thread: str
    role: str  # "request", "worker" or "sink"
    at: Location
    since_ns: int
    released: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "thread": self.thread, "role": self.role, **_line(self.at)}


@dataclass(frozen=True)
class Blocked:
    """A thread of a scheduled send that waits at no gate, for something another thread must do first (let a lock
    go, run a task): no release of yours frees it. ``why`` says so in a sentence."""

    thread: str
    role: str
    waits_for: str
    holder: str
    why: str
    at: Location

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread": self.thread,
            "role": self.role,
            "waits_for": self.waits_for,
            "holder": self.holder,
            "why": self.why,
            **_line(self.at),
        }


def _line(at: Location) -> dict[str, Any]:
    """Where a thread waits: the file, the line and its code."""
    file, line = at[0], at[1]
    code = linecache.getline(str(Path(PROJECT_DIR) / file), line).strip() if file else ""
    return {"file": file, "line": line, "code": code}


class Schedule:
    """One send scheduled by hand: which of its threads wait at which gate."""

    def __init__(
        self,
        trace_id: str,
        desk: str,
        mode: str,
        bound_s: float,
        how: str = MANUAL,
        holds: frozenset[str] | None = None,
    ) -> None:
        self.trace_id, self.desk, self.mode, self.bound_s, self.how = trace_id, desk, mode, bound_s, how
        self.holds = holds  # the gates that hold a thread (None: every gate); the others are only noted as passed
        self.request_thread = threading.current_thread().name  # made as the request starts, on its thread
        self._lock = threading.Lock()
        self._parked: dict[str, Parked] = {}  # by thread name
        self._blocked: dict[str, Blocked] = {}  # by thread name

    def park(self, gate: str, record: Record, at: Location) -> None:
        """Hold the calling thread at ``gate`` until it is released or the bound passes."""
        parked = self._stop(gate, threading.current_thread().name, at, record)
        if parked is None:
            return
        try:
            by = parked.released.result(timeout=self.bound_s)
        except concurrent.futures.TimeoutError:
            by = BY_BOUND
        self._go(parked, by, record)

    async def park_async(self, gate: str, thread: str, record: Record, at: Location) -> None:
        """The same for a task on an event loop: it awaits, and the loop's other tasks go on."""
        parked = self._stop(gate, thread, at, record)
        if parked is None:
            return
        try:
            by = await asyncio.wait_for(asyncio.wrap_future(parked.released), self.bound_s)
        except TimeoutError:
            by = BY_BOUND
        self._go(parked, by, record)

    def release(self, thread: str) -> str | None:
        """Let ``thread`` go on; the gate it waited at, or None if it waits at none."""
        with self._lock:
            parked = self._parked.get(thread)
            if parked is None or parked.released.done():
                return None
            parked.released.set_result(BY_YOU)
            return parked.gate

    def parked(self) -> list[Parked]:
        """The threads waiting now, the longest-waiting first."""
        with self._lock:
            return sorted((p for p in self._parked.values() if not p.released.done()), key=lambda p: p.since_ns)

    @contextmanager
    def blocked_on(self, waits_for: str, holder: str, why: str, at: Location) -> Iterator[None]:
        """The calling thread waits, for the block's length, for ``waits_for``, in ``holder``'s hands."""
        thread = threading.current_thread().name
        with self._lock:
            self._blocked[thread] = Blocked(thread, self.role(thread), waits_for, holder, why, at)
        try:
            yield
        finally:
            with self._lock:
                del self._blocked[thread]

    def blocked(self) -> list[Blocked]:
        with self._lock:
            return list(self._blocked.values())

    def role(self, thread: str) -> str:
        """What a thread is to this send: its request's, the sink's, or a worker."""
        return "request" if thread == self.request_thread else "sink" if thread == SINK_THREAD_NAME else "worker"

    def _stop(self, gate: str, thread: str, at: Location, record: Record) -> Parked | None:
        """The thread stops at ``gate``; None for an observed send or a gate this send does not hold, where the thread
        only notes that it passed."""
        if self.how == OBSERVE or (self.holds is not None and gate not in self.holds):
            record(PASSED, at=at, gate=gate, observed=self.how == OBSERVE)
            return None
        record("gate.parked", at=at, gate=gate, bound_s=self.bound_s)
        parked = Parked(gate, thread, self.role(thread), at, time.perf_counter_ns())
        with self._lock:
            self._parked[thread] = parked
        return parked

    def _go(self, parked: Parked, by: str, record: Record) -> None:
        with self._lock:
            if self._parked.get(parked.thread) is parked:
                del self._parked[parked.thread]
        waited_ms = round((time.perf_counter_ns() - parked.since_ns) / 1e6, 3)
        record("gate.released", at=parked.at, gate=parked.gate, by=by, waited_ms=waited_ms)


class Scheduler:
    """The app's sends scheduled by hand, by trace id (the newest ``SCHEDULES_KEPT``)."""

    def __init__(self, bound_s: float = GATE_BOUND_S) -> None:
        self.bound_s = bound_s
        self._lock = threading.Lock()
        self._schedules: dict[str, Schedule] = {}

    def start(
        self, trace_id: str, desk: str, mode: str, how: str = MANUAL, holds: frozenset[str] | None = None
    ) -> Schedule:
        """A schedule for the send starting on this thread (its request's), holding its threads at ``holds`` (at
        every gate if None)."""
        schedule = Schedule(trace_id, desk, mode, self.bound_s, how, holds)
        with self._lock:
            self._schedules[trace_id] = schedule
            # The oldest go first, but never one with a thread held: it would wait, unseen, until the bound.
            over = len(self._schedules) - SCHEDULES_KEPT
            for old in [s for s in self._schedules.values() if not s.parked() and not s.blocked()][: max(over, 0)]:
                del self._schedules[old.trace_id]
        return schedule

    def get(self, trace_id: str, desk: str) -> Schedule | None:
        with self._lock:
            schedule = self._schedules.get(trace_id)
        return schedule if schedule is not None and schedule.desk == desk else None

    def of_desk(self, desk: str) -> list[Schedule]:
        """The desk's schedules, newest first."""
        with self._lock:
            return [s for s in reversed(self._schedules.values()) if s.desk == desk]

    def sink_gate(self, tracer: Any) -> Callable[[str, Location], Any]:
        """The sink's hook before its 250: an awaitable for a send scheduled by hand, else None."""

        def before_answer(trace_id: str, at: Location) -> Any:
            with self._lock:
                schedule = self._schedules.get(trace_id)
            if schedule is None:
                return None

            record = functools.partial(tracer.record, trace_id)
            return schedule.park_async(SINK_BEFORE_250, threading.current_thread().name, record, at)

        return before_answer
