"""The fate of every email the app accepted: pending, delivered or failed, so that none is lost silently.

The textbook threaded send prints a worker's exception to stderr and forgets the email. Here every send is
registered when the route accepts it and leaves the pending set only as delivered or as a recorded failure.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.clock import utc_timestamp

FAILURES_KEPT = 500


@dataclass(frozen=True)
class Failure:
    """A send that did not deliver, as ``GET /api/failures`` lists it."""

    trace_id: str
    mode: str
    error: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class DeliveryLog:
    """Thread-safe counts, pending sends and failures for one app."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: dict[str, str] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._failures: list[Failure] = []
        self._sent = 0
        self._delivered = 0
        self._failed = 0

    def accepted(self, trace_id: str, mode: str) -> None:
        """The app took responsibility for this email."""
        with self._lock:
            self._pending[trace_id] = mode
            self._sent += 1

    def worker_started(self, trace_id: str, thread: threading.Thread) -> None:
        with self._lock:
            self._workers[trace_id] = thread

    def delivered(self, trace_id: str) -> None:
        with self._lock:
            self._settle(trace_id)
            self._delivered += 1

    def failed(self, trace_id: str, mode: str, error: str) -> None:
        with self._lock:
            self._settle(trace_id)
            self._record_failure(Failure(trace_id, mode, error, utc_timestamp()))

    def _settle(self, trace_id: str) -> None:
        self._pending.pop(trace_id, None)
        self._workers.pop(trace_id, None)
        self._lock.notify_all()

    def _record_failure(self, failure: Failure) -> None:
        self._failed += 1
        self._failures.append(failure)
        del self._failures[:-FAILURES_KEPT]

    def failures(self) -> list[Failure]:
        with self._lock:
            return list(self._failures)

    def pending(self) -> dict[str, str]:
        """trace id -> mode of the sends not yet delivered or failed."""
        with self._lock:
            return dict(self._pending)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "threads_alive": sum(t.is_alive() for t in self._workers.values()),
                "sent": self._sent,
                "delivered": self._delivered,
                "failed": self._failed,
                "pending": len(self._pending),
            }

    def wait_settled(self, timeout: float, ignore: frozenset[str] = frozenset()) -> bool:
        """Block until no send is pending, except in the modes in ``ignore``; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: all(m in ignore for m in self._pending.values()), timeout)

    def abandon_pending(self, reason: str, keep: frozenset[str] = frozenset()) -> list[Failure]:
        """Record every send still pending as failed (the process is stopping), except in the durable modes in
        ``keep``, which outlive the process; return the new failures."""
        with self._lock:
            abandoned = [
                Failure(trace_id, mode, reason, utc_timestamp())
                for trace_id, mode in self._pending.items()
                if mode not in keep
            ]
            for failure in abandoned:
                self._settle(failure.trace_id)
                self._record_failure(failure)
        return abandoned
