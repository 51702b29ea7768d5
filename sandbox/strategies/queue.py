"""The ``queue`` strategy: the send becomes a task in a durable Huey queue, run by a consumer.

A thread lives and dies with the web process; a queued task is stored first (in SQLite by default, in Redis with
``SANDBOX_QUEUE_URL=redis://...``) and answered with 202 only once it is stored. A consumer, embedded in the sandbox
as worker threads or run as its own process (``huey_consumer sandbox.queue_worker.huey``), picks tasks up. A 4xx
answer or a connection error makes Huey store the task again for a later try, with a doubling delay; a 5xx is final.
A task still waiting when the sandbox stops is still in the store when it starts again, and the outbox
(``sandbox.outbox``) brings back a task a killed worker had taken: every queued email is delivered at least once.
"""

from __future__ import annotations

import os
import pkgutil
import sqlite3
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_mail import Message
from huey import RedisHuey, SqliteHuey
from huey.api import Huey, Task, TaskWrapper
from huey.consumer import Consumer
from huey.exceptions import CancelExecution
from redis.exceptions import RedisError

from sandbox.config import REDIS_URL_PREFIXES, check_queue_url
from sandbox.smtp.client import Message as FoldedMessage
from sandbox.smtp.failures import SendError, describe_error, error_and_outcome
from sandbox.strategies.delivery import DELIVERED, FAILED, DeliveryLog
from sandbox.strategies.outbox import SENDING, Outbox
from sandbox.trace.gates import BEFORE_ANSWER, WORKER_START
from sandbox.trace.store import TraceStore
from sandbox.trace.tracer import DEFAULT_DESK, Binding, bound, current_binding, finish_line, line_of, raised_at

MODE = "queue"
TASK_NAME = "sandbox.deliver"
# What a queue store that cannot be reached raises: Redis down, or an SQLite file that cannot be written.
STORE_ERRORS = (RedisError, sqlite3.Error, OSError)
MAYBE_SENT = (
    "a worker was sending it when the process stopped without finishing (killed?), so it was sent again; whether "
    "that cut attempt had reached the server, the app cannot tell"
)


class QueueUnavailable(SendError):
    """The queue's store could not be reached, so the email was not accepted: 503, try again later."""

    http_status = 503

    def __init__(self, err: BaseException) -> None:
        super().__init__(f"not queued: the queue's store could not be reached ({describe_error(err)})", timed_out=False)


def open_huey(url: str | None, instance_path: str) -> Huey:
    """``redis://...`` for Redis, ``sqlite:///path`` for a given SQLite file, nothing for ``instance/queue.db``."""
    check_queue_url(url)
    if url and url.startswith(REDIS_URL_PREFIXES):
        return RedisHuey("sandbox", url=url, results=False)
    path = urlsplit(url).path if url else os.path.join(instance_path, "queue.db")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return SqliteHuey("sandbox", filename=path, results=False)


def message_data(msg: Message) -> dict[str, Any]:
    """What a task stores: plain values only, so it survives pickling, a restart and another process. The
    Message-ID is kept too, so every attempt (a retry, a resend after a crash) carries the same one: a receiver
    that ignores a Message-ID it has seen makes a second copy harmless."""
    return {
        "msg_id": msg.msgId,
        "subject": msg.subject,
        "recipients": list(msg.recipients),
        "sender": msg.sender,
        "body": msg.body,
        "html": msg.html,
        "extra_headers": dict(msg.extra_headers or {}),
    }


class EmbeddedConsumer(Consumer):
    """Huey's consumer, running inside the sandbox's process: the sandbox, not the consumer, owns the signals."""

    def _set_signal_handlers(self) -> None:
        pass


class MailQueue:
    """The app's Huey instance (opened on first use), its delivery task, and the embedded consumer if any."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._huey: Huey | None = None
        self._consumer: EmbeddedConsumer | None = None
        self._follower: OutcomeFollower | None = None
        self._lock = threading.Lock()

    def _open(self) -> tuple[Huey, TaskWrapper]:
        """The store and the registered task, created on first use."""
        with self._lock:
            if self._huey is None:
                self._huey = open_huey(self.app.config["SANDBOX_QUEUE_URL"], self.app.instance_path)
                self._deliver = self._huey.task(
                    retries=int(self.app.config["SANDBOX_POOL_ATTEMPTS"]) - 1,
                    retry_delay=float(self.app.config["SANDBOX_RETRY_BACKOFF"]),
                    retry_backoff=2,
                    context=True,
                    name=TASK_NAME,
                )(self._run)
            return self._huey, self._deliver

    @property
    def huey(self) -> Huey:
        return self._open()[0]

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.huey)

    @property
    def opened(self) -> bool:
        return self._huey is not None

    def enqueue(self, worker: Callable[[Flask, Message], None], msg: Message) -> str:
        """Store the email for the route's trace: written into the outbox, then its task into Huey's queue; returns
        the task's id once the store has it. A consumer will call ``worker(app, msg)`` (one of the student's
        functions, stored by name). The 202 that follows means "stored", not "sent". Raises QueueUnavailable (and
        keeps nothing) if the store cannot be reached."""
        binding = current_binding()
        if binding is None:
            raise RuntimeError("the queue stores emails for a traced request only")
        trace_id = binding.trace_id
        binding.log.accepted(trace_id, MODE, desk=binding.desk)
        data = message_data(msg) | {"worker": f"{worker.__module__}:{worker.__qualname__}"} | self._desk(binding)
        try:
            huey, deliver = self._open()
            outbox = Outbox(huey)
            outbox.add(trace_id, data)
            task = deliver.s(data, trace_id)
            try:
                huey.enqueue(task)
            except STORE_ERRORS:
                outbox.settle(trace_id)  # refused with a 503: it must not be sent after a restart either
                raise
        except STORE_ERRORS as err:
            unavailable = QueueUnavailable(err)
            binding.record("queue.unavailable", error=str(unavailable))
            binding.log.failed(trace_id, MODE, str(unavailable))
            raise unavailable from err
        binding.record("queue.stored", task_id=task.id, backend=type(huey).__name__)
        binding.park(BEFORE_ANSWER)  # scheduled by hand: the route waits at its enqueue() while a consumer works
        return task.id

    def _desk(self, binding: Binding) -> dict[str, Any]:
        """Whose email it is, and where the sink listens for that desk: a consumer in another process has no sink
        to ask, and sends there when it sends to the same sink (``sink`` is its main address)."""
        sink = self.app.extensions.get("sandbox.sink")
        if sink is None or binding.desk == DEFAULT_DESK:
            return {"desk": binding.desk}
        return {"desk": binding.desk, "sink": sink.address, "desk_port": sink.port_for(binding.desk)}

    def follow_outcomes(self, store: TraceStore, log: DeliveryLog) -> None:
        """With an external consumer: settle this process's queued sends as the consumer reports them in the trace
        store, so ``/api/stats`` and ``/api/failures`` count what another process did."""
        if self._follower is None:
            self._follower = OutcomeFollower(store, log)
            self._follower.start()

    def stop_following(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            self._follower = None

    def recover(self, log: DeliveryLog) -> list[str]:
        """On start: count every unsettled email in the outbox as pending, and queue again those that are in
        neither Huey's queue nor its schedule (a killed worker had taken them). Returns the trace ids queued again.
        Run it only where the consumer runs, before it starts: a live worker's email must not be taken back."""
        huey, deliver = self._open()
        waiting = {task.args[1] for task in [*huey.pending(), *huey.scheduled()] if task.name == TASK_NAME}
        again = []
        for entry in Outbox(huey).entries():
            lost = entry.trace_id not in waiting
            maybe_sent = MAYBE_SENT if lost and entry.state == SENDING else None
            log.accepted(entry.trace_id, MODE, maybe_sent_before=maybe_sent, desk=entry.data.get("desk", DEFAULT_DESK))
            if lost:
                huey.enqueue(deliver.s(entry.data, entry.trace_id))
                again.append(entry.trace_id)
        return again

    def start_consumer(self, workers: int) -> None:
        if self._consumer is None:
            self._consumer = EmbeddedConsumer(
                self.huey,
                workers=workers,
                worker_type="thread",
                periodic=False,
                check_worker_health=False,
                initial_delay=0.05,
                max_delay=0.5,
            )
            self._consumer.start()

    def threads_alive(self) -> int:
        """The embedded consumer's worker threads (0 when the consumer runs in another process)."""
        consumer = self._consumer
        return sum(thread.is_alive() for _, thread in consumer.worker_threads) if consumer is not None else 0

    def stop_consumer(self, timeout: float) -> None:
        """Let tasks being sent finish (up to ``timeout``); tasks still waiting stay in the store."""
        if self._consumer is not None:
            self._consumer.shutdown_timeout = timeout
            self._consumer.stop(graceful=True)
            self._consumer = None

    def unsettled(self) -> int:
        """Emails in the outbox: stored and not yet delivered or finally failed (they go out after a restart)."""
        return len(self.outbox.entries())

    def _run(self, data: dict[str, Any], trace_id: str, task: Task | None = None) -> None:
        deliver_task(self.app, data, trace_id, task)


def message_from_data(data: dict[str, Any]) -> FoldedMessage:
    """The message a task stored, rebuilt for one attempt with its original Message-ID."""
    fields = dict(data)
    for key in ("worker", "desk", "sink", "desk_port"):
        fields.pop(key, None)
    msg_id = fields.pop("msg_id", None)  # absent from tasks stored before it was kept
    msg = FoldedMessage(**fields)
    if msg_id:
        msg.msgId = msg_id
    return msg


def stored_worker(data: dict[str, Any]) -> Callable[[Flask, Message], None]:
    """The student's function a task was stored with (``module:name``), imported where the consumer runs."""
    name = data.get("worker")
    if not name:
        raise LookupError("this task was stored by an older sandbox, without the name of the function that sends it")
    return pkgutil.resolve_name(name)


def mail_queue(app: Flask) -> MailQueue:
    """The app's durable mail queue."""
    return app.extensions["sandbox.queue"]


def desk_port(app: Flask, data: dict[str, Any]) -> int | None:
    """The desk's own port of the web process's sink, when this consumer sends to that sink and has none of its own
    (a consumer in another process); None otherwise, and the send goes where the app is configured to send."""
    if app.extensions.get("sandbox.sink") is not None or "desk_port" not in data:
        return None
    return data["desk_port"] if f"{app.config['MAIL_SERVER']}:{app.config['MAIL_PORT']}" == data.get("sink") else None


class OutcomeFollower(threading.Thread):
    """Reads the fates an external consumer wrote to the trace store and settles them in this process's log."""

    EVERY_S = 0.25

    def __init__(self, store: TraceStore, log: DeliveryLog) -> None:
        super().__init__(name="queue-outcomes", daemon=True)
        self.store, self.log = store, log
        self._stop_event = threading.Event()
        self.cursor = store.outcomes_end()  # only what happens from now on: this process's sends

    def run(self) -> None:
        while not self._stop_event.wait(self.EVERY_S):
            self.catch_up()

    def catch_up(self) -> None:
        try:
            outcomes, self.cursor = self.store.outcomes_after(self.cursor)
        except Exception:  # the store out of reach: the sends stay pending until it is back
            return
        for trace_id, mode, outcome, error in outcomes:
            if outcome == DELIVERED:
                self.log.delivered(trace_id)
            else:
                self.log.failed(trace_id, mode or MODE, error, outcome)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.catch_up()


def deliver_task(app: Flask, data: dict[str, Any], trace_id: str, task: Task | None) -> None:
    """One attempt by a consumer worker: the student's function the route named, with the stored message. A failure
    worth retrying goes back to Huey; a final one is recorded.

    The outbox hears of each step first, so a worker killed at any point leaves the email there to be sent again.
    """
    outbox = app.extensions["sandbox.queue"].outbox
    attempts = int(app.config["SANDBOX_POOL_ATTEMPTS"])
    retries_left = task.retries if task is not None else 0
    attempt = attempts - retries_left
    retry_delay = task.retry_delay if task is not None else 0

    def retry_in(number: int, err: BaseException) -> float | None:
        retryable = isinstance(err, SendError) and err.retryable
        return retry_delay if retryable and retries_left > 0 else None

    desk = data.get("desk", DEFAULT_DESK)
    binding = Binding(
        app.extensions["sandbox.tracer"],
        app.extensions["sandbox.delivery"],
        trace_id,
        MODE,
        attempts=attempts,
        attempt=attempt - 1,
        retry_in=retry_in,
        desk=desk,
        port=desk_port(app, data),
        # Scheduled by hand in this process: the consumer's thread waits at the gates too (one in another process
        # has no schedule to find, and runs freely).
        schedule=app.extensions["sandbox.scheduler"].get(trace_id, desk),
    )
    try:
        worker = stored_worker(data)
    except (LookupError, ImportError, AttributeError) as err:  # no student's function to run: a visible failure
        outbox.settle(trace_id)
        binding.record("worker.failed", error=describe_error(err), outcome=FAILED)
        binding.log.failed(trace_id, MODE, describe_error(err), FAILED)
        return
    with bound(binding):
        if attempt == 1:
            binding.record("worker.started", at=line_of(worker), worker=threading.current_thread().name)
            binding.park(WORKER_START, at=line_of(worker))
        outbox.sending(trace_id, data)
        try:
            worker(app, message_from_data(data))
        except Exception as err:  # noqa: BLE001 - a bug here must be recorded, not left to Huey's log
            if retry_in(attempt, err) is not None:  # the attempt's end is recorded by mail.send
                outbox.waiting(trace_id, data)
                raise CancelExecution(retry=True) from err  # Huey stores the task again, for later
            outbox.settle(trace_id)
            error, outcome = error_and_outcome(err)
            binding.record(
                "worker.failed",
                at=raised_at(err.__traceback__) or line_of(worker),
                error=error,
                outcome=outcome,
            )
            binding.log.failed(trace_id, MODE, error, outcome)
            return
        outbox.settle(trace_id)
        binding.record("worker.finished", at=finish_line(worker))
        binding.log.delivered(trace_id)
