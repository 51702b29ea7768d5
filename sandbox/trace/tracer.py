"""Record what really happened during a send, as facts: when, on which thread, what, and which line of the
student's code was running.

A :class:`Trace` belongs to one request. Its id is made when the request starts and bound to the request (a
:class:`Binding` in a context variable); the hooks that watch the student's code from outside carry that binding
to each worker (a thread started by the route, a pool worker, a queue consumer, an event loop's executor), and the
sink's events join through the ``X-Sandbox-Trace`` header. Everything else (table rows, states, quizzes) is
derived from these facts later, never stored beside them.

The line an event points at is the innermost frame in the student's files (``sandbox/app/``): the code a student
reads beside the trace is the code that ran. A hook that records after the student's function returned, or before
it was called, names the line itself (``at=``, see :func:`line_of`).

Recording is cheap: the clock, the thread and the source line are read before taking the lock, and the lock only
guards one dictionary lookup and one list append.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import platform
import re
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.trace.gates import Schedule
    from sandbox.trace.store import Header, TraceStore

TRACES_KEPT = 200  # the default desk's (scripts, the demo, curl)
DESK_TRACES_KEPT = 50  # each visitor's desk
# The desk of every client without a desk cookie (curl, scripts, run_demo.py), and of mail from outside the app.
DEFAULT_DESK = "default"
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
PROJECT_DIR = str(Path(PACKAGE_DIR).parent)
# The student's files: what the code panel shows, and the only files an event's line may point into.
STUDENT_DIR = str(Path(PACKAGE_DIR) / "app")
Location = tuple[str, int, str]  # file (relative to the project), line, function
# How a trace is joined across processes and threads: the app puts the trace id in this header of each email it
# sends, and the sink reads it back (ids are uuid4().hex; anything else is mail from elsewhere, so untraced). The
# sink's events come from the thread of this name.
TRACE_HEADER = "X-Sandbox-Trace"
# The ids the app puts in TRACE_HEADER are uuid4().hex; anything else is mail from elsewhere, so untraced.
TRACE_ID = re.compile(r"[0-9a-f]{32}")
SINK_THREAD_NAME = "smtp-sink"
# The policy a worker records on each attempt.failed when it retries whatever the error was.
BLIND = "blind"
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
    desk: str = DEFAULT_DESK  # whose send this is: only that desk may read it
    started_at: float = 0.0  # time.time() when the trace started: the wall clock, for a class-wide time axis
    # For the store: how many of ``raw`` were written, whether the header changed since, and whether this process
    # only adds events to a trace another process started (an external queue consumer).
    flushed: int = field(default=0, repr=False, compare=False)
    header_dirty: bool = field(default=True, repr=False, compare=False)
    adopted: bool = field(default=False, repr=False, compare=False)

    def header(self) -> Header:
        """What the store keeps of the trace besides its events."""
        return {
            "trace_id": self.trace_id,
            "mode": self.mode,
            "server": self.server,
            "delay_s": self.delay_s,
            "settings": dict(self.settings),
            "versions": dict(self.versions),
            "comparison": self.comparison,
            "desk": self.desk,
            "started_at": self.started_at,
        }

    @classmethod
    def stored(cls, header: Header, raw: list[tuple[Any, ...]]) -> Trace:
        """A trace read back from the store, its events in time order."""
        events = sorted((Event(*e) for e in raw), key=lambda e: e.t_ns)
        return cls(**header, events=events)

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
            desk=self.desk,
            started_at=self.started_at,
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
    """Thread-safe store of the newest traces of each desk; ``record`` appends one event under one short lock.

    Each desk keeps its own newest traces (``capacity`` for the default desk, ``desk_capacity`` for a visitor's), so
    one student sending in a loop cannot push another's traces out.
    """

    def __init__(
        self, capacity: int = TRACES_KEPT, enabled: bool = True, desk_capacity: int = DESK_TRACES_KEPT
    ) -> None:
        self.enabled = enabled
        self._capacity = capacity
        self._desk_capacity = desk_capacity
        self._traces: dict[str, Trace] = {}
        self._by_desk: dict[str, OrderedDict[str, None]] = {}  # desk -> its trace ids, oldest first
        self._lock = threading.Lock()
        self.store: TraceStore | None = None
        self.writer = uuid.uuid4().hex  # this process's name for its events in the store
        self.adopt = False  # record events for traces another process started (an external queue consumer)
        self.shared = False  # another process adds events to this one's traces (an external queue consumer does)
        self._dirty: set[str] = set()  # traces with something the store does not have yet
        self._store_failing = False

    def keep_in(self, store: TraceStore) -> None:
        """Copy every trace to ``store`` from now on, a few times a second, on the process's writer thread."""
        self.store = store
        write_in_background(self)

    def start(
        self,
        trace_id: str,
        mode: str,
        server: str,
        delay_s: float | None,
        settings: Mapping[str, Any],
        desk: str = DEFAULT_DESK,
    ) -> None:
        if not self.enabled:
            return
        trace = Trace(trace_id, mode, server, delay_s, settings, VERSIONS, desk=desk, started_at=time.time())
        capacity = self._capacity if desk == DEFAULT_DESK else self._desk_capacity
        with self._lock:
            self._keep(trace, desk, capacity)
            self._dirty.add(trace_id)

    def _keep(self, trace: Trace, desk: str, capacity: int) -> None:
        """Hold ``trace`` among ``desk``'s, dropping that desk's oldest beyond ``capacity`` (call with the lock)."""
        self._traces[trace.trace_id] = trace
        mine = self._by_desk.setdefault(desk, OrderedDict())
        mine[trace.trace_id] = None
        while len(mine) > capacity:
            self._traces.pop(mine.popitem(last=False)[0], None)

    def drop_desk(self, desk: str, stored: bool = False) -> int:
        """Forget every trace of ``desk`` held in memory (reset, or cleaned up after being idle), and with ``stored``
        delete them from the store too (a reset: the student asked for a fresh start); returns how many were in
        memory."""
        if not stored:
            self.flush()  # what the store does not have yet would be lost with the memory
        with self._lock:
            mine = self._by_desk.pop(desk, OrderedDict())
            for trace_id in mine:
                self._traces.pop(trace_id, None)
                self._dirty.discard(trace_id)
        if stored and self.store is not None:
            try:
                self.store.delete_desk(desk)
            except Exception:
                log.warning("could not delete the traces of a desk from the store", exc_info=True)
        return len(mine)

    def traces_of(self, desk: str) -> list[Trace]:
        """A copy of each trace ``desk`` keeps, oldest first."""
        with self._lock:
            return [self._traces[trace_id].snapshot() for trace_id in self._by_desk.get(desk, ())]

    def count(self, desk: str | None = None) -> int:
        """How many traces are kept, for one desk or for all."""
        with self._lock:
            return len(self._traces) if desk is None else len(self._by_desk.get(desk, ()))

    def record(self, trace_id: str | None, kind: str, /, at: Location | None = None, **details: Any) -> None:
        """Add an event to a known trace; unknown ids (mail from elsewhere, an evicted trace) are ignored.

        ``at`` names the student's line when the hook records from outside the student's code (before a function
        is called, after it returned); otherwise the line is the innermost frame in the student's files.
        """
        if not self.enabled or trace_id is None:
            return
        now = time.perf_counter_ns()
        thread_name, thread_id = thread_identity()
        file, line, function = at or source_location()
        with self._lock:
            trace = self._traces.get(trace_id) or self._adopted(trace_id)
            if trace is not None:
                trace.raw.append((now, thread_name, thread_id, kind, details, file, line, function))
                self._dirty.add(trace_id)

    def record_at(
        self, trace_id: str | None, kind: str, t_ns: int, thread: tuple[str, int], at: Location, **details: Any
    ) -> None:
        """Add an event that happened earlier, on another thread (the server accepting the connection)."""
        if not self.enabled or trace_id is None:
            return
        with self._lock:
            trace = self._traces.get(trace_id) or self._adopted(trace_id)
            if trace is not None:
                trace.raw.append((t_ns, thread[0], thread[1], kind, details, *at))
                self._dirty.add(trace_id)

    def _adopted(self, trace_id: str) -> Trace | None:
        """With ``adopt``, a trace started in another process, kept here only to carry this process's events to the
        store (call with the lock held)."""
        if not self.adopt:
            return None
        trace = Trace(trace_id, "", "", None, {}, VERSIONS, adopted=True)
        self._keep(trace, "", self._capacity)  # bounded like the default desk
        return trace

    def join_comparison(self, trace_id: str, comparison: str) -> None:
        """Mark the trace as one send of the comparison ``comparison``."""
        with self._lock:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.comparison = comparison
                trace.header_dirty = True
                self._dirty.add(trace_id)

    def partner(self, trace: Trace, modes: Collection[str]) -> Trace | None:
        """The newest other trace of the same comparison, sent by one of ``modes``."""
        if trace.comparison is None:
            return None
        with self._lock:
            mine = (self._traces[trace_id] for trace_id in reversed(self._by_desk.get(trace.desk, {})))
            found = next(
                (
                    t
                    for t in mine
                    if t.comparison == trace.comparison and t.trace_id != trace.trace_id and t.mode in modes
                ),
                None,
            )
            return None if found is None else found.snapshot()

    def get(self, trace_id: str, desk: str | None = None) -> Trace | None:
        """A consistent copy of the trace, or None if it is unknown, was evicted or (``desk`` given) is another
        visitor's desk's: the default desk's traces (scripts, curl, the demo) are anyone's to read."""
        with self._lock:
            trace = self._traces.get(trace_id)
            snapshot = None if trace is None or trace.adopted else trace.snapshot()
        if self.store is None:
            return snapshot if snapshot is not None and _readable(snapshot, desk) else None
        if snapshot is not None:
            if not _readable(snapshot, desk):
                return None
            if not self.shared:
                return snapshot
            # What other processes recorded for it (an external consumer's worker), written to the store.
            others = self._read(trace_id, skip_writer=self.writer)[1]
            if others:
                snapshot.events = sorted([*snapshot.events, *(Event(*e) for e in others)], key=lambda e: e.t_ns)
            return snapshot
        header, raw = self._read(trace_id)  # from before a restart, or started by another process
        if header is None:
            return None
        stored = Trace.stored(header, raw)
        return stored if _readable(stored, desk) else None

    def _read(self, trace_id: str, skip_writer: str | None = None) -> tuple[Header | None, list[tuple[Any, ...]]]:
        assert self.store is not None
        try:
            return self.store.read(trace_id, skip_writer)
        except Exception:  # a store out of reach costs the extra events, never the page
            log.warning("could not read trace %s from the store", trace_id, exc_info=True)
            return None, []

    def flush(self) -> None:
        """Write what the store does not have yet, in one batch; a failure is logged and retried next time."""
        store = self.store
        if store is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            headers, events, marks = [], [], []
            for trace_id in dirty:
                trace = self._traces.get(trace_id)
                if trace is None:
                    continue
                if trace.header_dirty and not trace.adopted:
                    headers.append(trace.header())
                    trace.header_dirty = False
                events.extend((trace_id, e) for e in trace.raw[trace.flushed :])
                marks.append((trace, trace.flushed))
                trace.flushed = len(trace.raw)
        if not headers and not events:
            return
        try:
            store.write(self.writer, headers, events)
        except Exception as err:
            if not self._store_failing:  # once per outage, not five times a second
                log.warning("could not write trace events to the store (%s); they stay in memory, trying again", err)
            self._store_failing = True
            with self._lock:
                for trace, flushed in marks:
                    trace.flushed = min(trace.flushed, flushed)
                    trace.header_dirty = trace.header_dirty or not trace.adopted
                self._dirty |= dirty
            return
        self._store_failing = False


def _readable(trace: Trace, desk: str | None) -> bool:
    """Whether ``desk`` may read ``trace``: its own, or the default desk's (``desk`` None: anyone)."""
    return desk is None or trace.desk in (desk, DEFAULT_DESK)


class _Writer:
    """The process's one thread that copies what is new to the stores (every tracer's events, the desks' records),
    a few times a second, and once more as the process exits. They are held weakly: an app that is gone stops being
    written."""

    EVERY_S = 0.2

    def __init__(self) -> None:
        self._followed: weakref.WeakSet[Any] = weakref.WeakSet()  # anything with a flush(): tracers, desks
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, flushable: Any) -> None:
        with self._lock:
            self._followed.add(flushable)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="trace-store-writer", daemon=True)
                self._thread.start()
                atexit.register(self.flush_all)

    def flush_all(self) -> None:
        for flushable in list(self._followed):
            flushable.flush()

    def _run(self) -> None:
        while True:
            time.sleep(self.EVERY_S)
            self.flush_all()


_writer = _Writer()


def write_in_background(flushable: Any) -> None:
    """Have the process's writer thread call ``flushable.flush()`` a few times a second and at exit."""
    _writer.follow(flushable)


log = logging.getLogger(__name__)


@dataclass
class Binding:
    """Which trace the code running here belongs to, and what a send made here is part of.

    Set in a context variable: by the request's start for the route, by the hooks for each worker. ``log`` is the
    app's delivery log. ``blocking`` marks a send the answer waits for (settled before it leaves). ``attempts``
    and ``retry_in`` make each ``mail.send()`` an attempt of a retrying worker (``retry_in(attempt, error)``: the
    pause before the next, or None when this one is final; ``policy`` names a retry rule worth showing). ``here``
    and ``via`` name the student's line and the mechanism when a send runs on a thread with no line of theirs
    (an event loop's executor); ``coroutine`` is the async view a send may serve; ``desk`` is whose send it is.
    """

    tracer: Tracer
    log: Any
    trace_id: str
    mode: str
    blocking: bool = False
    attempts: int = 0
    attempt: int = 0
    retry_in: Callable[[int, BaseException], float | None] | None = None
    policy: str | None = None
    coroutine: Any = None
    here: Location | None = None
    via: str | None = None
    unanswered: int | None = None  # the first attempt that sent everything and heard no answer
    desk: str = DEFAULT_DESK  # whose send: the sink listens for each desk on a port of its own
    port: int | None = None  # the desk's port, when the process sending has no sink to ask (an external consumer)
    schedule: Schedule | None = None  # a send scheduled by hand: its threads wait at the gates (sandbox.gates)
    # One entry per mail.send() begun for this binding, shared with its copies (dataclasses.replace): how a task
    # that ended knows whether its send had started.
    sends_begun: list[str] = field(default_factory=list, repr=False)

    def record(self, kind: str, /, at: Location | None = None, **details: Any) -> None:
        self.tracer.record(self.trace_id, kind, at=at or self.here, **details)

    def park(self, gate: str, at: Location | None = None) -> None:
        """Wait at ``gate`` until released, if this send is scheduled by hand (the line: ``at``, else the student's
        innermost)."""
        if self.schedule is not None:
            self.schedule.park(gate, self.record, at or self.here or source_location())

    def next_attempt(self) -> int:
        """The number of the send about to start, if this binding counts attempts; 0 if it does not."""
        if not self.attempts:
            return 0
        self.attempt += 1
        return self.attempt

    def worker(self, **changes: Any) -> Binding:
        """A fresh binding of the same trace for a worker: not the answer's send, its own attempt count."""
        return Binding(
            self.tracer, self.log, self.trace_id, self.mode, desk=self.desk, schedule=self.schedule, **changes
        )


_binding: ContextVar[Binding | None] = ContextVar("sandbox_trace_binding", default=None)


def current_binding() -> Binding | None:
    """The trace the code running here belongs to, if any."""
    return _binding.get()


@contextmanager
def bound(binding: Binding | None) -> Iterator[Binding | None]:
    """Run the block as part of ``binding``'s trace (in this context only)."""
    token = _binding.set(binding)
    try:
        yield binding
    finally:
        _binding.reset(token)


def bind(binding: Binding | None) -> None:
    """Bind this context for the rest of its life (a request's context ends with the request)."""
    _binding.set(binding)


@functools.cache
def finish_line(function: Callable[..., Any]) -> Location:
    """Where one of the student's functions is when it has run to its end: its ``return``, or its last line."""
    function = inspect.unwrap(function)
    try:
        return line_of(function, "return")
    except ValueError:
        pass
    lines, first = inspect.getsourcelines(function)
    code_lines = [i for i, line in enumerate(lines) if line.strip() and not line.strip().startswith("#")]
    return line_of(function)[0], first + code_lines[-1], function.__code__.co_name


# id(code) -> (code, path relative to the project or "" when not the student's). Keyed by id because hashing a
# code object hashes its bytecode; the entry holds the code object, so its id cannot be reused meanwhile.
_student_files: dict[int, tuple[CodeType, str]] = {}


def _student_file(code: CodeType) -> str:
    cached = _student_files.get(id(code))
    if cached is None:
        filename = code.co_filename
        mine = filename.startswith(STUDENT_DIR)
        cached = _student_files[id(code)] = (code, filename[len(PROJECT_DIR) + 1 :] if mine else "")
    return cached[1]


def source_location() -> Location:
    """The innermost frame in the student's files: the line of the lesson's code that was running.

    Whether a code object is the student's is decided once and cached, so the walk costs a dict lookup a frame.
    """
    frame = sys._getframe(1)
    known = _student_files.get
    while frame is not None:
        code = frame.f_code
        cached = known(id(code))
        if cached is None:
            cached = (code, _student_file(code))
        if cached[1]:
            return cached[1], frame.f_lineno, code.co_name
        frame = frame.f_back
    return "", 0, ""


def raised_at(tb: TracebackType | None) -> Location | None:
    """The innermost line of the student's code in a traceback: where their code raised, or called what raised."""
    found = None
    while tb is not None:
        file = _student_file(tb.tb_frame.f_code)
        if file:
            found = (file, tb.tb_lineno, tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return found


def suspended_at(coroutine: Any) -> Location | None:
    """Where a coroutine of the student's waits (its ``await`` line), or None once it has ended."""
    frame = getattr(coroutine, "cr_frame", None)
    if frame is None or not _student_file(frame.f_code):
        return None
    return _student_file(frame.f_code), frame.f_lineno, frame.f_code.co_name


@functools.cache
def line_of(function: Callable[..., Any], text: str | None = None) -> Location:
    """A line of one of the student's functions: the first whose code contains ``text``, or the ``def`` line.

    For a hook that records from outside the function: "the worker starts" points at its ``def``, "the route
    answers" at its ``return``. Decorators are skipped; a text the function lacks is a bug, so it raises.
    """
    function = inspect.unwrap(function)
    code = function.__code__
    file = _student_file(code)
    if not file:
        raise ValueError(f"{function.__qualname__} is not in the student's files")
    lines, first = inspect.getsourcelines(function)
    def_line = first + next(i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def ")))
    if text is None:
        return file, def_line, code.co_name
    for offset, line in enumerate(lines):
        number = first + offset
        if number > def_line and text in line.split("#")[0]:
            return file, number, code.co_name
    raise ValueError(f"no line of {function.__qualname__} contains {text!r}")


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
