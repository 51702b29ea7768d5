"""The student's own small pool (``emails.render_pool``, a ``ThreadPoolExecutor``), watched.

The student's module makes the pool; the sandbox swaps it, once per process, for one that runs the same way and
reports to the trace of the code using it:

- a ``submit()`` from a route hands the send over, as the sandbox's own pool does: the email is accepted (so it is
  never lost silently), ``pool.queued`` is recorded, and the task runs as the send's worker (its start, its end or
  its failure recorded, its gates passed when scheduled by hand);
- a ``submit()`` from one of the pool's own threads is a follow-up task: recorded as queued, with the threads busy
  at that moment; and when it runs, as started and finished (unless the send it served has already ended);
- waiting for a follow-up's result is recorded with whether any thread could run it, and a wait that gives up is
  recorded before the ``TimeoutError`` goes on up. A send scheduled by hand lists its waiting worker as blocked.

Each desk gets pools of its own, as it gets its own sink port: one student's starved pool stalls only their sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sandbox.app import emails
from sandbox.strategies.workers import worker_outcome
from sandbox.trace.gates import BEFORE_ANSWER
from sandbox.trace.tracer import DEFAULT_DESK, Binding, bound, current_binding, finish_line, line_of, source_location


class WatchedPool:
    """A ``ThreadPoolExecutor`` of ``max_workers`` per desk, named ``name``, whose tasks are watched."""

    def __init__(self, name: str, max_workers: int) -> None:
        self.name, self.size = name, max_workers
        self._guard = threading.Lock()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._busy: dict[str, dict[str, str]] = {}  # desk -> {thread running a task: the task's function}
        self._sends: dict[str, int] = {}  # desk -> send tasks queued or running (follow-ups not counted)
        self._sending: set[str] = set()  # trace ids whose send task is running

    def _executor(self, desk: str) -> ThreadPoolExecutor:
        with self._guard:
            if desk not in self._executors:
                self._executors[desk] = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
            return self._executors[desk]

    def busy(self, desk: str) -> dict[str, str]:
        """The desk's threads running a task now, with the task's function."""
        with self._guard:
            return dict(self._busy.get(desk, {}))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        binding = current_binding()
        desk = binding.desk if binding is not None else DEFAULT_DESK
        executor = self._executor(desk)
        if binding is None:
            return executor.submit(fn, *args, **kwargs)
        busy = self.busy(desk)
        if threading.current_thread().name not in busy:  # a route hands its send over
            with self._guard:
                ahead = self._sends.get(desk, 0)
                self._sends[desk] = ahead + 1
            binding.log.accepted(binding.trace_id, binding.mode, desk=binding.desk)
            binding.record("pool.queued", at=source_location(), pool_size=self.size, ahead=ahead)
            future = executor.submit(self._send, binding.worker(), desk, fn, args, kwargs)
            binding.park(BEFORE_ANSWER)  # scheduled by hand: the route waits at its submit()
            return future
        binding.record(
            "follow_up.queued",
            at=source_location(),
            function=fn.__name__,
            pool=self.name,
            pool_size=self.size,
            busy=sorted(busy),
        )
        watched: Future[Any] = _FollowUp(binding, self, desk, fn.__name__)
        inner = executor.submit(self._follow_up, binding, desk, fn, args, kwargs)
        inner.add_done_callback(watched.take)  # type: ignore[attr-defined]
        return watched

    def _taken(self, desk: str, fn: Callable[..., Any]) -> None:
        with self._guard:
            self._busy.setdefault(desk, {})[threading.current_thread().name] = fn.__name__

    def _done(self, desk: str) -> None:
        with self._guard:
            self._busy.get(desk, {}).pop(threading.current_thread().name, None)

    def _send(self, binding: Binding, desk: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        self._taken(desk, fn)
        try:
            with worker_outcome(binding, fn):
                self._sending.add(binding.trace_id)
                try:
                    return fn(*args, **kwargs)
                finally:
                    self._sending.discard(binding.trace_id)
        finally:
            with self._guard:
                self._sends[desk] = max(0, self._sends.get(desk, 0) - 1)
            self._done(desk)

    def _follow_up(
        self, binding: Binding, desk: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        self._taken(desk, fn)
        try:
            if binding.trace_id not in self._sending:  # the send it served has ended: its trace is complete
                return fn(*args, **kwargs)
            with bound(binding):
                binding.record("follow_up.started", at=line_of(fn), function=fn.__name__)
                result = fn(*args, **kwargs)
                binding.record("follow_up.finished", at=finish_line(fn), function=fn.__name__)
                return result
        finally:
            self._done(desk)

    def forget_desk(self, desk: str) -> None:
        """The desk starts afresh: its pool lets its threads end once their tasks are done."""
        with self._guard:
            executor = self._executors.pop(desk, None)
            self._busy.pop(desk, None)
            self._sends.pop(desk, None)
        if executor is not None:
            executor.shutdown(wait=False)


class _FollowUp(Future):  # type: ignore[type-arg]
    """The future a task gets for its follow-up: the result of the task the pool runs, and a watched wait for it."""

    def __init__(self, binding: Binding, pool: WatchedPool, desk: str, function: str) -> None:
        super().__init__()
        self._binding, self._pool, self._desk, self._function = binding, pool, desk, function

    def take(self, inner: Future[Any]) -> None:
        if inner.cancelled():
            self.cancel()
        elif inner.exception() is not None:
            self.set_exception(inner.exception())
        else:
            self.set_result(inner.result())

    def result(self, timeout: float | None = None) -> Any:
        if self.done() or current_binding() is not self._binding:
            return super().result(timeout)
        binding, at = self._binding, source_location()
        busy = self._pool.busy(self._desk)
        me = threading.current_thread().name
        starved = len(busy) >= self._pool.size and me in busy
        binding.record(
            "follow_up.waiting",
            at=at,
            function=self._function,
            pool=self._pool.name,
            timeout_s=timeout,
            busy=sorted(busy),
            starved=starved,
        )
        since = time.perf_counter_ns()
        waits_for = f"the result of {self._function}()"
        if starved:
            holder = me
            why = (
                f"waits for {waits_for}, queued on {self._pool.name}, whose every thread is busy, this one included: "
                f"nothing can run {self._function}() before this wait gives up"
            )
        else:
            holder = self._pool.name
            why = f"waits for {waits_for}, which {self._pool.name} will run when a thread of it is free"
        try:
            if binding.schedule is not None:
                with binding.schedule.blocked_on(waits_for, holder, why, at):
                    return super().result(timeout)
            return super().result(timeout)
        except FutureTimeout:
            waited_ms = round((time.perf_counter_ns() - since) / 1e6, 3)
            binding.record("follow_up.timed_out", at=at, function=self._function, waited_ms=waited_ms, ran=self.done())
            raise


def watch_pools() -> None:
    """Swap the student's pool for a watched one of the same size (once per process)."""
    if not isinstance(emails.render_pool, WatchedPool):
        size = emails.render_pool._max_workers
        emails.render_pool.shutdown(wait=False)
        emails.render_pool = WatchedPool("render_pool", size)


def forget_desk(desk: str) -> None:
    if isinstance(emails.render_pool, WatchedPool):
        emails.render_pool.forget_desk(desk)
