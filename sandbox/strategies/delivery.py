"""The fate of every email the app accepted, so that none is lost silently and none is misreported.

The textbook threaded send prints a worker's exception to stderr and forgets the email. Here every send is
registered when the route accepts it and leaves the pending set with one of three fates: ``delivered`` (the server
answered 250), ``failed`` (it certainly did not arrive) or ``unknown`` (the whole message went out and the connection
died before the answer, or the sandbox stopped mid-send: it may have arrived). A send retried after a crash that may
already have delivered it is delivered "possibly twice", and listed as such.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.trace.clock import utc_timestamp
from sandbox.trace.tracer import DEFAULT_DESK

DELIVERED, FAILED, UNKNOWN = "delivered", "failed", "unknown"
log = logging.getLogger(__name__)
FAILURES_KEPT = 500


@dataclass(frozen=True)
class Failure:
    """A send that did not certainly deliver, as ``GET /api/failures`` lists it; ``id`` counts up at each desk, for
    paging."""

    id: int
    trace_id: str
    mode: str
    error: str
    at: str
    outcome: str = FAILED  # FAILED or UNKNOWN
    desk: str = field(default=DEFAULT_DESK, repr=False)  # whose send: listed to that desk only

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "desk"}


@dataclass(frozen=True)
class Duplicate:
    """A send delivered again after a crash cut its earlier attempt, which may have delivered it already."""

    trace_id: str
    mode: str
    reason: str
    at: str
    desk: str = field(default=DEFAULT_DESK, repr=False)

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if k != "desk"}


@dataclass(frozen=True)
class StopReport:
    """What a stopped run says about its emails: those that did not certainly arrive, those sent again after a
    crash, what still waits in the queue (None: its store could not be reached), and, with an embedded sink, the
    copies of each reported email in its mailbox."""

    undelivered: list[Failure]
    duplicates: list[Duplicate]
    still_queued: int | None = 0
    queue_problem: str | None = None
    in_mailbox: dict[str, int] | None = None


class DeliveryLog:
    """Thread-safe counts, pending sends and failures for one app, each also counted for the desk that sent it."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: dict[str, str] = {}
        self._maybe_sent: dict[str, str] = {}  # trace id -> why an earlier attempt may have delivered it
        self._workers: dict[str, threading.Thread] = {}
        self._failures: list[Failure] = []
        self._duplicates: list[Duplicate] = []
        self._last_ids: Counter[str] = Counter()  # desk -> the id of its newest failure
        self._desk_of: dict[str, str] = {}  # trace id -> desk, while the send is pending
        self._counts: dict[str, Counter[str]] = {}  # desk -> "sent" and each outcome
        # Told every fate reported here, pending or not: an external consumer publishes them for the web process.
        self.on_settled: Callable[[tuple[str, str, str, str]], None] | None = None

    def accepted(
        self, trace_id: str, mode: str, maybe_sent_before: str | None = None, desk: str = DEFAULT_DESK
    ) -> None:
        """The app took responsibility for this email, sent from ``desk``. ``maybe_sent_before`` says why an earlier
        attempt, cut by a crash, may already have delivered it (a send taken back from the queue's outbox after a
        restart)."""
        with self._lock:
            self._pending[trace_id] = mode
            self._desk_of[trace_id] = desk
            if maybe_sent_before:
                self._maybe_sent[trace_id] = maybe_sent_before
            self._counts.setdefault(desk, Counter())["sent"] += 1

    def may_have_arrived(self, trace_id: str, reason: str) -> None:
        """An attempt of this pending send ended without an answer after its whole message went out, and another
        attempt follows: if a later one delivers it, the email may be in the mailbox twice, and is listed so."""
        with self._lock:
            if trace_id in self._pending:
                self._maybe_sent.setdefault(trace_id, reason)

    def worker_started(self, trace_id: str, thread: threading.Thread) -> None:
        with self._lock:
            self._workers[trace_id] = thread

    def delivered(self, trace_id: str) -> None:
        self._publish(trace_id, "", DELIVERED, "")
        with self._lock:
            desk = self._desk_of.get(trace_id, DEFAULT_DESK)
            mode = self._settle(trace_id)
            if mode is None:
                return
            self._counts.setdefault(desk, Counter())[DELIVERED] += 1
            earlier = self._maybe_sent.pop(trace_id, None)
            if earlier:
                self._duplicates.append(Duplicate(trace_id, mode, earlier, utc_timestamp(), desk))
                self._duplicates = _newest_of_each_desk(self._duplicates, desk)

    def failed(self, trace_id: str, mode: str, error: str, outcome: str = FAILED) -> None:
        """Record a send that ended without a 250; ``outcome`` is FAILED, or UNKNOWN when it may have arrived."""
        self._publish(trace_id, mode, outcome, error)
        with self._lock:
            desk = self._desk_of.get(trace_id, DEFAULT_DESK)
            if self._settle(trace_id) is None:
                return
            earlier = self._maybe_sent.pop(trace_id, None)
            if earlier:  # this attempt failed, but the one a crash cut may have delivered it
                outcome, error = UNKNOWN, f"{error}; {earlier}"
            self._record_failure(trace_id, mode, error, outcome, desk)

    def _publish(self, trace_id: str, mode: str, outcome: str, error: str) -> None:
        if self.on_settled is not None:
            try:
                self.on_settled((trace_id, mode, outcome, error))
            except Exception:  # the store out of reach: the web process will show the send as pending
                log.warning("could not publish the fate of %s", trace_id, exc_info=True)

    def _settle(self, trace_id: str) -> str | None:
        """Take the send out of the pending set; None if it was not pending (already settled or abandoned)."""
        mode = self._pending.pop(trace_id, None)
        self._desk_of.pop(trace_id, None)
        self._workers.pop(trace_id, None)
        self._lock.notify_all()
        return mode

    def _record_failure(self, trace_id: str, mode: str, error: str, outcome: str, desk: str) -> Failure:
        self._last_ids[desk] += 1
        failure = Failure(self._last_ids[desk], trace_id, mode, error, utc_timestamp(), outcome, desk)
        self._counts.setdefault(desk, Counter())[outcome] += 1
        self._failures.append(failure)
        self._failures = _newest_of_each_desk(self._failures, desk)
        return failure

    def failures(self, desk: str | None = None) -> list[Failure]:
        """The newest failures (of ``desk``, or of every desk), oldest first."""
        with self._lock:
            return [f for f in self._failures if desk is None or f.desk == desk]

    def duplicates(self, desk: str | None = None) -> list[Duplicate]:
        with self._lock:
            return [d for d in self._duplicates if desk is None or d.desk == desk]

    def pending(self) -> dict[str, str]:
        """trace id -> mode of the sends not yet settled."""
        with self._lock:
            return dict(self._pending)

    def stats(self, desk: str | None = None) -> dict[str, Any]:
        """The counts of ``desk``'s sends, or of every desk's."""
        with self._lock:
            mine = [desk] if desk is not None else list(self._counts)
            counts = sum((self._counts.get(d, Counter()) for d in mine), Counter())
            pending = [t for t in self._pending if desk is None or self._desk_of.get(t) == desk]
            return {
                "threads_alive": sum(self._workers[t].is_alive() for t in pending if t in self._workers),
                "sent": counts["sent"],
                **{outcome: counts[outcome] for outcome in (DELIVERED, FAILED, UNKNOWN)},
                "pending": len(pending),
                "possibly_duplicated": sum(desk is None or d.desk == desk for d in self._duplicates),
            }

    def forget_desk(self, desk: str) -> None:
        """Drop a desk's counts and settled records (reset, or cleaned up); its sends still pending stay pending."""
        with self._lock:
            self._counts.pop(desk, None)
            self._last_ids.pop(desk, None)
            self._failures = [f for f in self._failures if f.desk != desk]
            self._duplicates = [d for d in self._duplicates if d.desk != desk]

    def wait_settled(self, timeout: float, ignore: frozenset[str] = frozenset()) -> bool:
        """Block until no send is pending, except in the modes in ``ignore``; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: all(m in ignore for m in self._pending.values()), timeout)

    def abandon_pending(self, reason: str, keep: frozenset[str] = frozenset()) -> list[Failure]:
        """Record every send still pending (the process is stopping mid-send) as of unknown fate, except in the
        durable modes in ``keep``, which outlive the process; return the new records. A late outcome of an
        abandoned send is ignored: what was reported stays what was known."""
        with self._lock:
            abandoned = [
                (trace_id, mode, self._desk_of.get(trace_id, DEFAULT_DESK))
                for trace_id, mode in self._pending.items()
                if mode not in keep
            ]
            for trace_id, _, _ in abandoned:
                self._settle(trace_id)
                self._maybe_sent.pop(trace_id, None)
            return [self._record_failure(trace_id, mode, reason, UNKNOWN, desk) for trace_id, mode, desk in abandoned]


def _newest_of_each_desk(records: list[Any], desk: str) -> list[Any]:
    """``records`` with at most FAILURES_KEPT of ``desk``'s (its oldest dropped): one desk's flood of failures never
    pushes another desk's out."""
    mine = sum(r.desk == desk for r in records)
    if mine <= FAILURES_KEPT:
        return records
    extra = mine - FAILURES_KEPT
    kept = []
    for record in records:
        if extra and record.desk == desk:
            extra -= 1
            continue
        kept.append(record)
    return kept
