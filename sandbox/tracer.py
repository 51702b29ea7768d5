"""Record what really happened during a send, as facts: when, on which thread, what, and which line did it.

A :class:`Trace` belongs to one request. Its id is made when the request starts and handed explicitly to any
worker; the SMTP client's traffic is tied to it through a thread-local binding around ``mail.send()`` and Python's
audit events, and the sink's events through the ``X-Sandbox-Trace`` header. Everything else (table rows, states,
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
from collections.abc import Callable, Iterator, Mapping
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
    """The events of one request, with what is needed to read them later (mode, server, delay, versions)."""

    trace_id: str
    mode: str
    server: str
    delay_s: float | None
    settings: Mapping[str, Any]
    versions: Mapping[str, str]
    events: list[Event] = field(default_factory=list)

    def snapshot(self) -> Trace:
        """A copy whose event list no other thread appends to (events sorted by time)."""
        return Trace(
            self.trace_id,
            self.mode,
            self.server,
            self.delay_s,
            dict(self.settings),
            dict(self.versions),
            sorted(self.events, key=lambda e: e.t_ns),
        )

    @property
    def started_ns(self) -> int:
        return self.events[0].t_ns if self.events else 0

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.kind == kind), None)

    def ms_until(self, kind: str) -> float | None:
        """Milliseconds from the request's start to the first event of ``kind``, or None if it never happened."""
        event = self.first(kind)
        return None if event is None else (event.t_ns - self.started_ns) / 1e6

    @property
    def complete(self) -> bool:
        """True once nothing more will be recorded: the response left and any worker has ended."""
        if self.first("response.sent") is None:
            return False
        if self.first("worker.started") is None:
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
        install_smtp_audit_hook()

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
        thread = threading.current_thread()
        file, line, function = source_location()
        event = Event(now, thread.name, threading.get_native_id(), kind, details, file, line, function)
        with self._lock:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.events.append(event)

    def get(self, trace_id: str) -> Trace | None:
        """A consistent copy of the trace, or None if it is unknown or was evicted."""
        with self._lock:
            trace = self._traces.get(trace_id)
            return None if trace is None else trace.snapshot()

    def latest(self, mode: str) -> Trace | None:
        """A copy of the newest trace of ``mode``, if any is kept."""
        with self._lock:
            trace = next((t for t in reversed(self._traces.values()) if t.mode == mode), None)
            return None if trace is None else trace.snapshot()

    @contextmanager
    def bound(self, trace_id: str) -> Iterator[None]:
        """Tie the SMTP traffic of this thread to ``trace_id`` while the block runs."""
        previous = getattr(_binding, "current", None)
        _binding.current = _Binding(self, trace_id)
        try:
            yield
        finally:
            _binding.current = previous


_RELAYS: set[CodeType] = set()


def relay(function: F) -> F:
    """Mark a function that only passes events on, so the source location names its caller instead."""
    _RELAYS.add(function.__code__)
    return function


def source_location() -> tuple[str, int, str]:
    """The innermost frame in the sandbox's own code (not this module, not a relay): the line to look at."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(PACKAGE_DIR) and code.co_filename != _THIS_FILE and code not in _RELAYS:
            return code.co_filename[len(PROJECT_DIR) + 1 :], frame.f_lineno, code.co_name
        frame = frame.f_back
    return "", 0, ""


VERSIONS = {
    "python": platform.python_version(),
    "flask": version("flask"),
    "flask_mail": version("flask-mail"),
    "aiosmtpd": version("aiosmtpd"),
}


@dataclass
class _Binding:
    tracer: Tracer
    trace_id: str
    server: str = ""


_binding = threading.local()
_hook_installed = False
_hook_lock = threading.Lock()


def install_smtp_audit_hook() -> None:
    """Install, once per process, the audit hook that turns smtplib's own audit events into trace events.

    Audit hooks cannot be removed, so the hook does nothing unless the current thread is bound to a trace.
    """
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_smtp_audit_hook)
            _hook_installed = True


SMTP_VERBS = {b"mail": "MAIL FROM", b"rcpt": "RCPT TO", b"data": "DATA", b"quit": "QUIT", b"rset": "RSET"}


def _smtp_audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("smtplib."):
        return
    binding = getattr(_binding, "current", None)
    if binding is None:
        return
    if event == "smtplib.connect":
        binding.server = f"{args[1]}:{args[2]}"
        binding.tracer.record(binding.trace_id, "smtp.connecting", server=binding.server)
        return
    if event != "smtplib.send":
        return
    data = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
    verb = data[:4].lower()
    if data.endswith(b"\r\n.\r\n"):
        binding.tracer.record(binding.trace_id, "smtp.data_sent", size=len(data))
    elif verb in (b"ehlo", b"helo"):
        binding.tracer.record(binding.trace_id, "smtp.connected", server=binding.server)
    elif verb in SMTP_VERBS:
        binding.tracer.record(binding.trace_id, "smtp.command", command=SMTP_VERBS[verb])
