"""Every send mode the routes serve, by name: the strategies that work, and the variants broken on purpose.

The code of each is the student's (``sandbox/app/emails.py``: a route per mode, ``/send-email/<mode>``); here is
only what the sandbox needs to know about them from outside: which answer waits for its send, which keeps its
emails across a restart, and how a worker that retries counts and spaces its attempts.
"""

from __future__ import annotations

from typing import Any

from sandbox.app import emails
from sandbox.trace.tracer import BLIND

STRATEGIES = ("sync", "thread", "pool", "queue")
# Variants broken on purpose: they fail the way the real mistake fails.
NO_CONTEXT = "thread-no-context"
PROXY = "thread-proxy"
STARVED = "pool-starved"
FORGOTTEN_TASK = "async-fire-and-forget"
FORGOTTEN_THREAD_TASK = "async-to-thread-and-forget"
BROKEN_VARIANTS = (NO_CONTEXT, PROXY, FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK)
# The async def views whose send is a task they create and do not await.
TASK_MODES = (FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK)
# Variants for the lessons: they work, but teach something the strategies above do not (CPU-bound work, the
# duplicates a blind retry makes when a reply is lost, two async def views that still answer after their send, a
# shared count of sends updated without a lock, then with one, and a pool of one thread whose task waits for another
# task of the same pool).
CPU_MODE = "thread-cpu"
RETRY_MODE = "thread-retry"
ASYNC_MODE = "async-await"
ASYNC_BLOCKING = "async-blocking"
COUNT_MODE = "thread-count"
LOCKED_COUNT_MODE = "thread-count-locked"
VARIANTS = (CPU_MODE, RETRY_MODE, ASYNC_MODE, ASYNC_BLOCKING, COUNT_MODE, LOCKED_COUNT_MODE, STARVED)
SEND_MODES = (*STRATEGIES, *BROKEN_VARIANTS, *VARIANTS)
# The student's route for each mode (its Flask endpoint).
ENDPOINTS = {
    f"emails.{view.__name__}": mode
    for mode, view in {
        "sync": emails.send_sync,
        "thread": emails.send_thread,
        "pool": emails.send_pool,
        "queue": emails.send_queue,
        NO_CONTEXT: emails.send_thread_no_context,
        PROXY: emails.send_thread_proxy,
        FORGOTTEN_TASK: emails.send_async_fire_and_forget,
        FORGOTTEN_THREAD_TASK: emails.send_async_to_thread_and_forget,
        CPU_MODE: emails.send_thread_cpu,
        RETRY_MODE: emails.send_thread_retry,
        ASYNC_MODE: emails.send_async_await,
        ASYNC_BLOCKING: emails.send_async_blocking,
        COUNT_MODE: emails.send_thread_count,
        LOCKED_COUNT_MODE: emails.send_thread_count_locked,
        STARVED: emails.send_pool_starved,
    }.items()
}
# The modes a send may be scheduled by hand in (?schedule=manual): every thread of theirs passes the gates of
# sandbox.gates (a queue's consumer only when it runs in this process). A retrying or computing worker and an event
# loop have none yet.
SCHEDULABLE_MODES = ("sync", "thread", "pool", "queue", NO_CONTEXT, PROXY, COUNT_MODE, LOCKED_COUNT_MODE, STARVED)
# Sends in these modes are stored outside the process: stopping the sandbox does not lose them.
DURABLE_MODES = frozenset({"queue"})
# The modes whose route answers only after the send has ended (200 once the server accepted it), so the send is
# settled before the answer leaves; every other mode answers 202 with the send still pending or queued.
ANSWERS_AFTER_SEND = frozenset({"sync", ASYNC_MODE, ASYNC_BLOCKING})
# The blind retry's rule, read from the student's loop: any error, the same pause, ``emails.ATTEMPTS`` in all.
RETRY_ATTEMPTS = emails.ATTEMPTS


def _blind_retry_in(attempt: int, err: BaseException) -> float | None:
    return emails.PAUSE_S if attempt < emails.ATTEMPTS else None


# How a worker of each mode counts its sends: the fields of its Binding (see sandbox.tracer).
WORKER_RULES: dict[str, dict[str, Any]] = {
    RETRY_MODE: {"attempts": emails.ATTEMPTS, "retry_in": _blind_retry_in, "policy": BLIND},
}
