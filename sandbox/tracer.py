"""Record what really happened during a send, as facts: when, on which thread, what, and which line did it.

A :class:`Trace` belongs to one request. Its id is made when the request starts and handed explicitly to any
worker; the SMTP client's traffic is tied to it through a thread-local binding around ``mail.send()``, and the
sink's events through the ``X-Sandbox-Trace`` header. Everything else (table rows, states,
quizzes) is derived from these facts later, never stored beside them.

Recording is cheap: the clock, the thread and the source line are read before taking the lock, and the lock only
guards one dictionary lookup and one list append.
"""

from __future__ import annotations

import platform
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import CodeType
from typing import Any, TypeVar

TRACES_KEPT = 200
PACKAGE_DIR = str(Path(__file__).resolve().parent)
PROJECT_DIR = str(Path(PACKAGE_DIR).parent)
_THIS_FILE = str(Path(__file__).resolve())
F = TypeVar("F", bound=Callable[..., Any])
# How a route hands a send on and answers without waiting: it started a thread, queued it for a pool, stored a task.
HANDOFF_KINDS = ("worker.spawned", "pool.queued", "queue.stored")


@dataclass(frozen=True, slots=True)
class Event:
    """One fact: ``kind`` happened at ``t_ns`` (``time.perf_counter_ns()``) on a thread, produced by a source line."""

    t_ns: int
    thread: str
    thread_id: int
    kind: str
    details: Mapping[str, Any]
    file: str
    line: int
    function: str


@dataclass
class Trace:
    """The events of one request, with what is needed to read them later (mode, server, delay, versions).

    While recording, the tracer appends plain tuples to ``raw`` (cheap); :meth:`snapshot` turns them into
    :class:`Event` objects sorted by time, which is what every reader works with.
    """

    trace_id: str
    mode: str
    server: str
    delay_s: float | None
    settings: Mapping[str, Any]
    versions: Mapping[str, str]
    events: list[Event] = field(default_factory=list)
    raw: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    comparison: str | None = None  # shared by the sends of one comparison ("Send both", the demo)

    def snapshot(self) -> Trace:
        """A copy with every event recorded so far, as Events in time order; no other thread changes it."""
        events = sorted([*self.events, *(Event(*raw) for raw in self.raw)], key=lambda e: e.t_ns)
        return Trace(
            self.trace_id,
            self.mode,
            self.server,
            self.delay_s,
            dict(self.settings),
            dict(self.versions),
            events,
            comparison=self.comparison,
        )

    @property
    def started_ns(self) -> int:
        return self.events[0].t_ns if self.events else 0

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.kind == kind), None)

    def events_of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def ms_until(self, kind: str) -> float | None:
        """Milliseconds from the request's start to the first event of ``kind``, or None if it never happened."""
        event = self.first(kind)
        return None if event is None else (event.t_ns - self.started_ns) / 1e6

    @property
    def complete(self) -> bool:
        """True once nothing more will be recorded here: the answer left, and any background send has ended.

        A send handed to a worker (thread, pool, queue) is complete only when that worker finished or failed; an
        error answer, or a send the route waited for (``sync``, or awaited by an ``async def`` view), is complete
        with the answer. Read from the events: the route records its hand-off before it answers.
        """
        response = self.first("response.sent")
        if response is None:
            return False
        handed_off = any(self.first(kind) is not None for kind in HANDOFF_KINDS)
        if not handed_off or int(response.details.get("status", 200)) >= 400:
            return True
        return self.first("worker.finished") is not None or self.first("worker.failed") is not None

    @property
    def response_ms(self) -> float | None:
        return self.ms_until("response.sent")

    @property
    def accepted_ms(self) -> float | None:
        """When the sink answered 250; without a sink lane, when the client saw the acceptance."""
        accepted = self.ms_until("sink.accepted")
        return accepted if accepted is not None else self.ms_until("smtp.accepted")


class Tracer:
    """Thread-safe store of the newest traces; ``record`` appends one event under one short lock."""

    def __init__(self, capacity: int = TRACES_KEPT, enabled: bool = True) -> None:
        self.enabled = enabled
        self._capacity = capacity
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, trace_id: str, mode: str, server: str, delay_s: float | None, settings: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        trace = Trace(trace_id, mode, server, delay_s, settings, VERSIONS)
        with self._lock:
            self._traces[trace_id] = trace
            while len(self._traces) > self._capacity:
                self._traces.popitem(last=False)

    def record(self, trace_id: str | None, kind: str, **details: Any) -> None:
        """Add an event to a known trace; unknown ids (mail from elsewhere, an evicted trace) are ignored."""
        if not self.enabled or trace_id is None:
            return
        now = time.perf_counter_ns()
        thread_name, thread_id = thread_identity()
        file, line, function = source_location()
        with self._lock:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.raw.append((now, thread_name, thread_id, kind, details, file, line, function))

    def record_at(self, trace_id: str | None, kind: str, t_ns: int, thread: tuple[str, int], **details: Any) -> None:
        """Add an event that happened earlier, on another thread (the server accepting the connection)."""
        if not self.enabled or trace_id is None:
            return
        with self._lock:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.raw.append((t_ns, thread[0], thread[1], kind, details, "", 0, ""))

    def join_comparison(self, trace_id: str, comparison: str) -> None:
        """Mark the trace as one send of the comparison ``comparison``."""
        with self._lock:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.comparison = comparison

    def partner(self, trace: Trace, modes: Collection[str]) -> Trace | None:
        """The newest other trace of the same comparison, sent by one of ``modes``."""
        if trace.comparison is None:
            return None
        with self._lock:
            found = next(
                (
                    t
                    for t in reversed(self._traces.values())
                    if t.comparison == trace.comparison and t.trace_id != trace.trace_id and t.mode in modes
                ),
                None,
            )
            return None if found is None else found.snapshot()

    def get(self, trace_id: str) -> Trace | None:
        """A consistent copy of the trace, or None if it is unknown or was evicted."""
        with self._lock:
            trace = self._traces.get(trace_id)
            return None if trace is None else trace.snapshot()

    @contextmanager
    def bound(self, trace_id: str) -> Iterator[None]:
        """Tie the SMTP traffic of this thread to ``trace_id`` while the block runs."""
        previous = current_binding()
        _binding.current = (self, trace_id)
        try:
            yield
        finally:
            _binding.current = previous


_RELAYS: set[CodeType] = set()


def relay(function: F) -> F:
    """Mark a function that only passes events on, so the source location names its caller instead."""
    _RELAYS.add(function.__code__)
    return function


# id(code) -> (code, path relative to the project or "" when not the sandbox's own). Keyed by id because hashing
# a code object hashes its bytecode; the entry holds the code object, so its id cannot be reused meanwhile.
_own_files: dict[int, tuple[CodeType, str]] = {}


def source_location() -> tuple[str, int, str]:
    """The innermost frame in the sandbox's own code (not this module, not a relay): the line to look at.

    Whether a code object is the sandbox's own is decided once and cached, so the walk costs a dict lookup a frame.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        cached = _own_files.get(id(code))
        if cached is None:
            filename = code.co_filename
            mine = filename.startswith(PACKAGE_DIR) and filename != _THIS_FILE and code not in _RELAYS
            cached = _own_files[id(code)] = (code, filename[len(PROJECT_DIR) + 1 :] if mine else "")
        if cached[1]:
            return cached[1], frame.f_lineno, code.co_name
        frame = frame.f_back
    return "", 0, ""


def thread_identity() -> tuple[str, int]:
    """This thread's name and OS id, read once per thread (threads are named before they record anything)."""
    try:
        return _identity.value
    except AttributeError:
        _identity.value = (threading.current_thread().name, threading.get_native_id())
        return _identity.value


_identity = threading.local()


VERSIONS = {
    "python": platform.python_version(),
    "flask": version("flask"),
    "flask_mail": version("flask-mail"),
    "aiosmtpd": version("aiosmtpd"),
}


_binding = threading.local()


def current_binding() -> tuple[Tracer, str] | None:
    """The (tracer, trace id) this thread's SMTP traffic belongs to, set by :meth:`Tracer.bound`."""
    return getattr(_binding, "current", None)
