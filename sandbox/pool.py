"""The ``pool`` strategy: a bounded pool of worker threads that retries what is worth retrying.

Where the ``thread`` strategy starts one thread per email (so a burst of sends makes a burst of threads), the pool
keeps at most ``SANDBOX_POOL_SIZE`` threads and queues the rest. Each send gets up to ``SANDBOX_POOL_ATTEMPTS``
attempts: a 4xx answer or a connection error is retried after a backoff that doubles each time; a 5xx is final.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app
from flask_mail import Message

from sandbox.delivery import DeliveryLog
from sandbox.mailer import SendError, delivery_log, traced_send, tracer, worker_outcome
from sandbox.send_request import BadInput

MODE = "pool"


class MailPool:
    """One executor per app, created on first use so an app that never uses the pool starts no threads."""

    def __init__(self, size: int, backlog: int | None = None) -> None:
        self.size = size
        self.backlog = backlog
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queued: dict[str, Future[None]] = {}  # trace id -> its send, waiting for a worker or being sent
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def threads_alive(self) -> int:
        """The pool's worker threads (idle ones included): at most ``size``, however many sends wait."""
        with self._lock:
            return sum(thread.is_alive() for thread in self._threads)

    def submit(self, app: Flask, msg: Message, trace_id: str, accepted: Callable[[int], None]) -> None:
        """Queue the send, first calling ``accepted(ahead)`` (sends already queued or running), so the email is
        registered before any worker can take it; PoolFull, with nothing accepted, if the backlog is full."""
        with self._lock:
            waiting = max(0, len(self._queued) - self.size)
            if self.backlog is not None and waiting >= self.backlog:
                raise PoolFull(waiting, self.size)
            accepted(len(self._queued))
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix="pool", initializer=self._worker_started
                )
            self._queued[trace_id] = self._executor.submit(self._run, app, msg, trace_id)

    def _worker_started(self) -> None:
        with self._lock:
            self._threads.append(threading.current_thread())

    def _run(self, app: Flask, msg: Message, trace_id: str) -> None:
        try:
            send_with_retries(app, msg, trace_id)
        finally:
            with self._lock:
                self._queued.pop(trace_id, None)

    def wait_before_retry(self, seconds: float) -> bool:
        """Sleep before the next attempt; False (at once) if the sandbox is stopping."""
        return not self._stopping.wait(seconds)

    def stop(self, log: DeliveryLog) -> list[str]:
        """No new attempts; sends no worker has taken yet are cancelled and recorded as failed (they never left).
        Sends being sent carry on to their end, which ``DeliveryLog.wait_settled`` can wait for. Returns the trace
        ids cancelled."""
        self._stopping.set()
        with self._lock:
            executor, self._executor = self._executor, None
            queued = dict(self._queued)
        if executor is None:
            return []
        executor.shutdown(wait=False, cancel_futures=True)
        cancelled = [trace_id for trace_id, future in queued.items() if future.cancelled()]
        for trace_id in cancelled:
            log.failed(trace_id, MODE, NEVER_SENT)
        with self._lock:
            for trace_id in cancelled:
                self._queued.pop(trace_id, None)
        return cancelled


NEVER_SENT = "not sent: the sandbox stopped before a pool worker took this email"
RETRY_AFTER_S = 1


class PoolFull(BadInput):
    """Back-pressure: the pool's bounded backlog is full, so the email is refused (not accepted): 503, try later."""

    def __init__(self, waiting: int, size: int) -> None:
        super().__init__(
            f"not accepted: the pool's queue is full ({waiting} sends wait for its {size} threads); "
            f"try again in {RETRY_AFTER_S} s",
            503,
        )

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Retry-After", str(RETRY_AFTER_S))]


def send_in_pool(msg: Message, trace_id: str) -> None:
    """Queue the send for the pool and return at once."""
    app = current_app._get_current_object()
    pool: MailPool = app.extensions["sandbox.pool"]
    log, trace = delivery_log(), tracer()

    def accepted(ahead: int) -> None:
        log.accepted(trace_id, MODE)
        trace.record(trace_id, "pool.queued", pool_size=pool.size, ahead=ahead)

    try:
        pool.submit(app, msg, trace_id, accepted)
    except PoolFull as full:
        trace.record(trace_id, "pool.full", error=full.description, pool_size=pool.size, backlog=pool.backlog)
        raise


def send_with_retries(app: Flask, msg: Message, trace_id: str) -> None:
    """A pool worker: push an app context, then try, wait, and try again while the failure is worth it."""
    trace = app.extensions["sandbox.tracer"]
    pool: MailPool = app.extensions["sandbox.pool"]
    attempts = int(app.config["SANDBOX_POOL_ATTEMPTS"])
    backoff = float(app.config["SANDBOX_RETRY_BACKOFF"])
    with worker_outcome(trace, app.extensions["sandbox.delivery"], trace_id, MODE):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            if pool.stopping:
                raise SendError("not sent: the sandbox stopped before this email's first attempt", timed_out=False)
            for attempt in range(1, attempts + 1):
                trace.record(trace_id, "attempt.started", attempt=attempt, attempts=attempts)
                try:
                    traced_send(msg, trace_id, trace)
                    return
                except SendError as err:
                    if not err.retryable or attempt == attempts:
                        trace.record(
                            trace_id, "attempt.failed", attempt=attempt, error=str(err), final=True, outcome=err.outcome
                        )
                        raise
                    wait_s = backoff * 2 ** (attempt - 1)
                    trace.record(
                        trace_id, "attempt.failed", attempt=attempt, error=str(err), final=False, retry_in_s=wait_s
                    )
                    if not pool.wait_before_retry(wait_s):
                        stopped = f"{err}; not tried again: the sandbox stopped before the next attempt"
                        raise SendError(stopped, timed_out=False) from err
