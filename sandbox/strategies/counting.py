"""The student's shared count of sent emails (``emails.stats``) and its lock (``emails.stats_lock``), watched.

Both are globals of the student's module, as in real code. The sandbox swaps them, once per process, for versions
that behave the same and report to the trace of the thread using them:

- each read of the count, with the value read; a send scheduled by hand then stops at the gate ``COUNT_READ``,
  between its read and its write, so another worker can be let in there;
- each write, with the value it replaced: a write that replaces a value other than the one its thread read erases
  the updates made in between (a lost update);
- each wait for the lock, with the thread holding it, and each take and release.

Each desk has its own count and its own lock, as it has its own sink port: one student's held lock never stalls
another student's sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from sandbox.app import emails
from sandbox.trace.gates import COUNT_READ
from sandbox.trace.tracer import DEFAULT_DESK, Binding, current_binding, source_location


def _desk() -> str:
    binding = current_binding()
    return binding.desk if binding is not None else DEFAULT_DESK


class WatchedCounts(MutableMapping[str, int]):
    """A dict of counts, one per desk, whose reads and writes are events of the reading thread's trace."""

    def __init__(self, initial: dict[str, int]) -> None:
        self._initial = dict(initial)
        self._desks: dict[str, dict[str, int]] = {}
        self._guard = threading.Lock()  # keeps the desks' dicts whole; the student's read-then-write is not guarded
        self._read = threading.local()  # what this thread read last, by key

    def _counts(self) -> dict[str, int]:
        with self._guard:
            return self._desks.setdefault(_desk(), dict(self._initial))

    def __getitem__(self, key: str) -> int:
        value = self._counts()[key]
        binding = current_binding()
        if binding is not None:
            at = source_location()
            self._read.__dict__[key] = value
            binding.record("count.read", at=at, key=key, value=value)
            binding.park(COUNT_READ, at)
        return value

    def __setitem__(self, key: str, value: int) -> None:
        counts = self._counts()
        found = counts.get(key)
        counts[key] = value
        binding = current_binding()
        if binding is not None:
            read = self._read.__dict__.pop(key, None)
            binding.record("count.written", at=source_location(), key=key, value=value, read=read, found=found)

    def __delitem__(self, key: str) -> None:
        del self._counts()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts())

    def __len__(self) -> int:
        return len(self._counts())

    def forget_desk(self, desk: str) -> None:
        """The desk starts afresh: its counts go back to the start."""
        with self._guard:
            self._desks.pop(desk, None)


class WatchedLock:
    """A ``threading.Lock`` per desk whose waits, takes and releases are events of the trace of the thread at it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._holders: dict[str, str] = {}  # desk -> the thread holding its lock

    def _lock(self, desk: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(desk, threading.Lock())

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        binding, desk = current_binding(), _desk()
        lock = self._lock(desk)
        if binding is None:
            got = lock.acquire(blocking, timeout)
        else:
            got = self._acquire_watched(binding, desk, lock, blocking, timeout)
        if got:
            self._holders[desk] = threading.current_thread().name
        return got

    def _acquire_watched(
        self, binding: Binding, desk: str, lock: threading.Lock, blocking: bool, timeout: float
    ) -> bool:
        at = source_location()
        if lock.acquire(blocking=False):
            binding.record("lock.acquired", at=at, lock=self.name, waited_ms=0.0)
            return True
        if not blocking:
            return False
        holder = self._holders.get(desk, "another thread")
        binding.record("lock.waiting", at=at, lock=self.name, holder=holder)
        since = time.perf_counter_ns()
        if binding.schedule is not None:
            why = f"waits for {self.name}, which {holder} holds: only {holder} can let it go"
            with binding.schedule.blocked_on(self.name, holder, why, at):
                got = lock.acquire(True, timeout)
        else:
            got = lock.acquire(True, timeout)
        if got:
            waited_ms = round((time.perf_counter_ns() - since) / 1e6, 3)
            binding.record("lock.acquired", at=at, lock=self.name, waited_ms=waited_ms)
        return got

    def release(self) -> None:
        desk = _desk()
        binding = current_binding()
        if binding is not None:
            binding.record("lock.released", at=source_location(), lock=self.name)
        self._holders.pop(desk, None)
        self._lock(desk).release()

    def locked(self) -> bool:
        return self._lock(_desk()).locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def forget_desk(self, desk: str) -> None:
        """The desk starts afresh: its lock is dropped, unless a thread holds it (that thread will release it)."""
        with self._guard:
            lock = self._locks.get(desk)
            if lock is not None and not lock.locked():
                del self._locks[desk]


def watch_counting() -> None:
    """Swap the student's count and lock for the watched ones (once per process; each keeps the other's value)."""
    if not isinstance(emails.stats, WatchedCounts):
        emails.stats = WatchedCounts(emails.stats)
    if not isinstance(emails.stats_lock, WatchedLock):
        emails.stats_lock = WatchedLock("stats_lock")


def forget_desk(desk: str) -> None:
    """A desk reset or cleaned up: its count starts again from 0."""
    for watched in (emails.stats, emails.stats_lock):
        if isinstance(watched, WatchedCounts | WatchedLock):
            watched.forget_desk(desk)
