"""The ``pool`` strategy: a bounded pool of worker threads that retries what is worth retrying.

Where the ``thread`` strategy starts one thread per email (so a burst of sends makes a burst of threads), the pool
keeps at most ``SANDBOX_POOL_SIZE`` threads and queues the rest. Each send gets up to ``SANDBOX_POOL_ATTEMPTS``
attempts: a 4xx answer or a connection error is retried after a backoff that doubles each time; a 5xx is final.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, current_app
from flask_mail import Message

from sandbox.mailer import SendError, delivery_log, traced_send, tracer, worker_outcome

MODE = "pool"


class MailPool:
    """One executor per app, created on first use so an app that never uses the pool starts no threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._queued = 0
        self.stopping = False

    @property
    def busy(self) -> int:
        """Sends waiting for a worker or being sent right now."""
        return self._queued

    def submit(self, app: Flask, msg: Message, trace_id: str) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="pool")
            self._queued += 1
            self._executor.submit(self._run, app, msg, trace_id)

    def _run(self, app: Flask, msg: Message, trace_id: str) -> None:
        try:
            send_with_retries(app, msg, trace_id)
        finally:
            with self._lock:
                self._queued -= 1

    def shutdown(self) -> None:
        """Stop the workers: no new attempts, queued sends cancelled (the delivery log has reported them)."""
        self.stopping = True
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def send_in_pool(msg: Message, trace_id: str) -> None:
    """Queue the send for the pool and return at once."""
    app = current_app._get_current_object()
    pool: MailPool = app.extensions["sandbox.pool"]
    delivery_log().accepted(trace_id, MODE)
    tracer().record(trace_id, "pool.queued", pool_size=pool.size, ahead=pool.busy)
    pool.submit(app, msg, trace_id)


def send_with_retries(app: Flask, msg: Message, trace_id: str) -> None:
    """A pool worker: push an app context, then try, wait, and try again while the failure is worth it."""
    trace = app.extensions["sandbox.tracer"]
    pool: MailPool = app.extensions["sandbox.pool"]
    attempts = int(app.config["SANDBOX_POOL_ATTEMPTS"])
    backoff = float(app.config["SANDBOX_RETRY_BACKOFF"])
    with worker_outcome(trace, app.extensions["sandbox.delivery"], trace_id, MODE):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            for attempt in range(1, attempts + 1):
                if pool.stopping:
                    raise SendError("the sandbox stopped before this email could be sent", timed_out=False)
                trace.record(trace_id, "attempt.started", attempt=attempt, attempts=attempts)
                try:
                    traced_send(msg, trace_id, trace)
                    return
                except SendError as err:
                    if not err.retryable or attempt == attempts:
                        trace.record(trace_id, "attempt.failed", attempt=attempt, error=str(err), final=True)
                        raise
                    wait_s = backoff * 2 ** (attempt - 1)
                    trace.record(
                        trace_id, "attempt.failed", attempt=attempt, error=str(err), final=False, retry_in_s=wait_s
                    )
                    time.sleep(wait_s)
