"""How each send mode is named to people: on buttons, in page titles and in terminal tables."""

from __future__ import annotations

from sandbox.strategies.modes import (
    ASYNC_BLOCKING,
    ASYNC_MODE,
    COUNT_MODE,
    FORGOTTEN_TASK,
    FORGOTTEN_THREAD_TASK,
    LOCKED_COUNT_MODE,
    RETRY_ATTEMPTS,
    STARVED,
)

BUTTON_LABELS = {
    "sync": "Send (blocking)",
    "thread": "Send (thread)",
    "pool": "Send (pool)",
    "queue": "Send (queue)",
    "thread-no-context": "Send (thread, no app context)",
    "thread-proxy": "Send (thread, proxy instead of app)",
    "thread-cpu": "Send (thread that computes first)",
    "thread-retry": "Send (thread that retries blindly)",
    ASYNC_MODE: "Send (async def view, awaiting the send)",
    ASYNC_BLOCKING: "Send (async def view, calling mail.send itself)",
    COUNT_MODE: "Send (thread that counts it, without a lock)",
    LOCKED_COUNT_MODE: "Send (thread that counts it, under a lock)",
    STARVED: "Send (pool of one thread whose task waits for another task)",
    FORGOTTEN_TASK: "Send (async def view, leaving the send to a task)",
    FORGOTTEN_THREAD_TASK: "Send (async def view, leaving the send to a task in a thread)",
}
TITLES = {
    "sync": "Blocking send (sync)",
    "thread": "Threaded send (thread)",
    "pool": "Send by a bounded pool with retries (pool)",
    "queue": "Send through a durable task queue (queue)",
    "thread-no-context": "Threaded send without an app context (broken on purpose)",
    "thread-proxy": "Threaded send given the current_app proxy (broken on purpose)",
    "thread-cpu": "Threaded send whose worker computes first (CPU-bound work and the GIL)",
    "thread-retry": (f"Threaded send that retries blindly, up to {RETRY_ATTEMPTS} attempts of the same message"),
    ASYNC_MODE: (
        "Send from an async def view that awaits it (Flask runs the view to its end before answering, so the answer "
        "still waits)"
    ),
    ASYNC_BLOCKING: (
        "Send from an async def view that calls mail.send itself, with no await (the event loop's thread sends, and "
        "the answer waits)"
    ),
    COUNT_MODE: (
        "Threaded send whose worker counts it in a shared dict, reading then writing without a lock (racy on purpose)"
    ),
    LOCKED_COUNT_MODE: "Threaded send whose worker counts it in a shared dict, reading and writing under a lock",
    STARVED: (
        "Send by a pool of one thread whose task waits for a follow-up task on the same pool (starved on purpose)"
    ),
    FORGOTTEN_TASK: "Send left to a task the async view does not await (broken on purpose)",
    FORGOTTEN_THREAD_TASK: "Send left to a task that hands it to a thread (broken on purpose)",
}
SHORT_LABELS = {"sync": "sync (blocking)"}


# The sends a trace may be compared with in the "what if" quiz question, within one comparison: a background mode
# against the blocking one, and the blocking one against a background one.
COMPARED_WITH = {"sync": ("thread", "pool", "queue"), "thread": ("sync",), "pool": ("sync",), "queue": ("sync",)}


def title(mode: str) -> str:
    return TITLES.get(mode, f"{mode} send")


def short_label(mode: str) -> str:
    return SHORT_LABELS.get(mode, mode)


# What each working mode promises, by construction (see the strategies' code): shown beside the measured figures.
PROMISE_COLUMNS = ("user waits for the mail server", "survives a restart", "retries", "worker threads")
SETTLED = "nothing pending: the send has ended, delivered or not, before the answer"
PROMISES = {
    "sync": ("yes", SETTLED, "no", "none"),
    "thread": ("no", "no: a pending email dies with the process", "no", "one per email, unbounded"),
    "pool": ("no", "no: the queue is in memory", "yes: 4xx and connection errors", "at most the pool size"),
    "queue": (
        "no",
        "yes, even a kill: tasks and an outbox are stored in SQLite or Redis",
        "yes: 4xx and connection errors",
        "the consumer's workers, here or in another process",
    ),
    # An async def view runs on an event loop that asgiref starts on a thread of its own for each request.
    ASYNC_MODE: (
        "yes: Flask runs the view to its end",
        SETTLED,
        "no",
        "the request's loop thread, an executor thread",
    ),
    ASYNC_BLOCKING: ("yes: the loop's own thread sends", SETTLED, "no", "the request's loop thread"),
    FORGOTTEN_TASK: (
        "no, and there is nothing to wait for: the task is cancelled before its send",
        "nothing pending: the email is never sent",
        "no",
        "the request's loop thread",
    ),
    FORGOTTEN_THREAD_TASK: (
        "yes: the view's loop waits for the task's thread before it closes",
        SETTLED,
        "no",
        "the request's loop thread, an executor thread",
    ),
}
