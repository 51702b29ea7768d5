"""Deliberately broken send strategies, for the lessons: each fails the way the real mistake fails.

They are served like the working modes (``POST /send-email/<mode>``) and traced the same way, so a student sees the
failure in the trace and in ``/api/failures`` instead of reading about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask_mail import Message

from sandbox.delivery import DeliveryLog
from sandbox.mailer import start_worker, traced_send, worker_outcome
from sandbox.tracer import Tracer

NO_CONTEXT = "thread-no-context"


def send_in_thread_without_context(msg: Message, trace_id: str) -> None:
    """The mistake: start a thread with only the message, as if Flask-Mail needed nothing else.

    The app object is looked up here only to reach the tracer and the delivery log; the worker never gets it, so it
    cannot push an application context.
    """
    app = current_app._get_current_object()
    args = (msg, trace_id, app.extensions["sandbox.tracer"], app.extensions["sandbox.delivery"])
    start_worker(send_async_email_without_context, args, trace_id, NO_CONTEXT)


def send_async_email_without_context(msg: Message, trace_id: str, trace: Tracer, log: DeliveryLog) -> None:
    """No ``with app.app_context():`` here, so ``mail.send()`` finds no current_app and raises RuntimeError."""
    with worker_outcome(trace, log, trace_id, NO_CONTEXT):
        traced_send(msg, trace_id, trace)


BROKEN_VARIANTS: dict[str, Callable[[Message, str], Any]] = {NO_CONTEXT: send_in_thread_without_context}
