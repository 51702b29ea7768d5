"""Every HTTP request the server handled, with its times, so a trace can say what else the server did meanwhile.

Times are ``time.perf_counter_ns()``, the clock the traces use. A request *arrives* when the server has it (the
``accept()`` of its connection, or its request line on a kept-alive connection), *starts* when a handler thread
begins handling it and *finishes* when its response has been written: on a one-request-at-a-time server the gap
between arriving and starting is the time it queued behind other requests.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

KEPT = 5_000


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One request as the server saw it; ``started_ns`` and ``finished_ns`` stay None until they happen."""

    id: int
    arrived_ns: int
    started_ns: int | None
    finished_ns: int | None
    path: str
    method: str
    status: int | None
    server: str = ""  # the kind of server that had it, when one sandbox runs two


class RequestsLog:
    """Thread-safe and bounded (the newest ``kept`` requests); each call holds one short lock."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, ServedRequest] = OrderedDict()

    def arrived(self, arrived_ns: int, server: str = "") -> int:
        """Add a request the ``server`` (its kind) has just got; returns its id."""
        with self._lock:
            request_id = next(self._ids)
            self._entries[request_id] = ServedRequest(request_id, arrived_ns, None, None, "", "", None, server)
            if len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return request_id

    def started(self, request_id: int, method: str, path: str, started_ns: int | None = None) -> None:
        """A handler thread began handling the request (now, unless ``started_ns`` says when)."""
        started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        self._update(request_id, started_ns=started_ns, method=method, path=path)

    def finished(self, request_id: int, status: int | None, finished_ns: int | None = None) -> None:
        """The response was written (``status`` None: the request ended without a complete answer)."""
        finished_ns = time.perf_counter_ns() if finished_ns is None else finished_ns
        self._update(request_id, finished_ns=finished_ns, status=status)

    def wait_answered(self, timeout: float, server: str | None = None) -> bool:
        """Wait until every request a handler has begun (on the ``server`` kind, if given) has been answered (or
        ended without an answer); False if ``timeout`` passed first. At shutdown: a send that has just settled still
        has its answer to write."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = any(
                    e.started_ns is not None and e.finished_ns is None and server in (None, e.server)
                    for e in self._entries.values()
                )
            if not running:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def between(
        self,
        start_ns: int,
        end_ns: int,
        exclude: int | None = None,
        server: str | None = None,
        as_of_ns: int | None = None,
    ) -> list[ServedRequest]:
        """Requests under way at some moment of ``[start_ns, end_ns]`` (unfinished ones count as running until
        now), except ``exclude``, in arrival order; only those the ``server`` kind had, if it is given. With
        ``as_of_ns``, as the log stood then: what started or finished later had not yet."""
        now = time.perf_counter_ns() if as_of_ns is None else as_of_ns
        with self._lock:
            entries = list(self._entries.values())
        if as_of_ns is not None:
            entries = [_as_of(entry, as_of_ns) for entry in entries if entry.arrived_ns <= as_of_ns]
        overlapping = [
            entry
            for entry in entries
            if entry.id != exclude
            and (server is None or entry.server == server)
            and entry.arrived_ns <= end_ns
            and (now if entry.finished_ns is None else entry.finished_ns) >= start_ns
        ]
        return sorted(overlapping, key=lambda entry: (entry.arrived_ns, entry.id))

    def holds(self, request_id: int | None, arrived_ns: int) -> bool:
        """Whether this log still has that request (same id, same arrival): a trace from another process, or from
        before a restart, was served by a server whose log is gone."""
        with self._lock:
            entry = self._entries.get(request_id) if request_id is not None else None
        return entry is not None and entry.arrived_ns == arrived_ns

    def _update(self, request_id: int, **changes: object) -> None:
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is not None:  # None: dropped, older than the newest ``kept``
                self._entries[request_id] = replace(entry, **changes)


def _as_of(entry: ServedRequest, t_ns: int) -> ServedRequest:
    """The entry as it stood at ``t_ns``: a start or an end after that had not happened yet."""
    if entry.finished_ns is not None and entry.finished_ns > t_ns:
        entry = replace(entry, finished_ns=None, status=None)
    if entry.started_ns is not None and entry.started_ns > t_ns:
        entry = replace(entry, started_ns=None)
    return entry
