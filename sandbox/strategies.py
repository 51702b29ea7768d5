"""Every send mode the routes serve: the strategies that work, and the variants broken on purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_mail import Message

from sandbox.async_view import MODE as ASYNC_MODE
from sandbox.async_view import send_from_async_view
from sandbox.broken import BROKEN_VARIANTS
from sandbox.cpu_bound import MODE as CPU_MODE
from sandbox.cpu_bound import send_after_cpu_work
from sandbox.mailer import send_in_thread, send_sync
from sandbox.pool import send_in_pool
from sandbox.retrying import MODE as RETRY_MODE
from sandbox.retrying import send_with_blind_retries
from sandbox.task_queue import send_in_queue

Strategy = Callable[[Message, str], Any]

STRATEGIES: dict[str, Strategy] = {
    "sync": send_sync,
    "thread": send_in_thread,
    "pool": send_in_pool,
    "queue": send_in_queue,
}
# Sends in these modes are stored outside the process: stopping the sandbox does not lose them.
DURABLE_MODES = frozenset({"queue"})
# Variants for the lessons: they work, but teach something the strategies above do not (CPU-bound work, the
# duplicates a blind retry makes when a reply is lost, and an async def view that still answers after its send).
VARIANTS: dict[str, Strategy] = {
    CPU_MODE: send_after_cpu_work,
    RETRY_MODE: send_with_blind_retries,
    ASYNC_MODE: send_from_async_view,
}
# The modes whose route answers only after the send has ended (200 once the server accepted it), so the send is
# settled before the answer leaves; every other mode answers 202 with the send still pending or queued.
ANSWERS_AFTER_SEND = frozenset({"sync", ASYNC_MODE})
SEND_MODES: dict[str, Strategy] = {**STRATEGIES, **BROKEN_VARIANTS, **VARIANTS}
