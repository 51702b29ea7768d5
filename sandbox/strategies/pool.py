"""The ``pool`` strategy: a bounded pool of worker threads that retries what is worth retrying.

Where the ``thread`` strategy starts one thread per email (so a burst of sends makes a burst of threads), the pool
keeps at most ``SANDBOX_POOL_SIZE`` threads and queues the rest. The student's route calls
``mail_pool(app).submit(send_async_email, app, msg)``, as with an ``Executor``; each call of the student's function
is one attempt, up to ``SANDBOX_POOL_ATTEMPTS``: a 4xx answer or a connection error is tried again after a backoff
that doubles each time; a 5xx is final.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import Flask

from sandbox.smtp.failures import SendError
from sandbox.strategies.delivery import DeliveryLog
from sandbox.strategies.workers import worker_outcome
from sandbox.trace.gates import BEFORE_ANSWER
from sandbox.trace.tracer import Binding, current_binding
from sandbox.web.send_request import BadInput

MODE = "pool"


class MailPool:
    """One executor per app, created on first use so an app that never uses the pool starts no threads."""

    def __init__(self, size: int, backlog: int | None = None, attempts: int = 1, backoff_s: float = 1.0) -> None:
        self.size = size
        self.backlog = backlog
        self.attempts = attempts
        self.backoff_s = backoff_s
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

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue ``fn(*args)`` (one of the student's functions) for the route's trace, registered as pending before
        any worker can take it; PoolFull, with nothing accepted, if the backlog is full."""
        binding = current_binding()
        if binding is None:
            raise RuntimeError("the pool sends for a traced request only")
        with self._lock:
            waiting = max(0, len(self._queued) - self.size)
            if self.backlog is not None and waiting >= self.backlog:
                full = PoolFull(waiting, self.size)
                binding.record("pool.full", error=full.description, pool_size=self.size, backlog=self.backlog)
                raise full
            binding.log.accepted(binding.trace_id, MODE, desk=binding.desk)
            binding.record("pool.queued", pool_size=self.size, ahead=len(self._queued))
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix="pool", initializer=self._worker_started
                )
            worker = binding.worker(attempts=self.attempts, retry_in=self.retry_in)
            self._queued[binding.trace_id] = self._executor.submit(self._run, worker, fn, args)
        binding.park(BEFORE_ANSWER)  # scheduled by hand: the route waits at its submit() while the pool works

    def retry_in(self, attempt: int, err: BaseException) -> float | None:
        """The backoff before the next attempt (doubling each time), or None: the error is final, or it was the last."""
        if not (isinstance(err, SendError) and err.retryable) or attempt == self.attempts:
            return None
        return self.backoff_s * 2 ** (attempt - 1)

    def _worker_started(self) -> None:
        with self._lock:
            self._threads.append(threading.current_thread())

    def _run(self, binding: Binding, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        """A pool worker: call ``fn`` once per attempt, waiting the backoff between them."""
        try:
            with worker_outcome(binding, fn):
                if self.stopping:
                    raise SendError("not sent: the sandbox stopped before this email's first attempt", timed_out=False)
                while True:
                    try:
                        fn(*args)
                        return
                    except SendError as err:
                        wait_s = self.retry_in(binding.attempt, err)
                        if wait_s is None:
                            raise
                        if not self.wait_before_retry(wait_s):
                            stopped = f"{err}; not tried again: the sandbox stopped before the next attempt"
                            raise SendError(stopped, timed_out=False) from err
        finally:
            with self._lock:
                self._queued.pop(binding.trace_id, None)

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


def mail_pool(app: Flask) -> MailPool:
    """The app's pool of mail threads."""
    return app.extensions["sandbox.pool"]
