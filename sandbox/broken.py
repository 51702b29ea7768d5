"""Deliberately broken send strategies, for the lessons: each fails the way the real mistake fails.

They are served like the working modes (``POST /send-email/<mode>``) and traced the same way, so a student sees the
failure in the trace and in ``/api/failures`` instead of reading about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask_mail import Message

from sandbox.delivery import DeliveryLog
from sandbox.mailer import start_worker, traced_send, worker_outcome
from sandbox.tracer import Tracer

NO_CONTEXT = "thread-no-context"
PROXY = "thread-proxy"


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


def send_in_thread_with_proxy(msg: Message, trace_id: str) -> None:
    """The other mistake: hand the worker ``current_app`` itself, the proxy, instead of the real app object.

    The proxy only points at "the app of the current context", and the worker thread has no context, so the first
    thing the worker asks of it (``app.app_context()``) fails. ``current_app._get_current_object()`` is the fix.
    """
    app = current_app  # the mistake: a proxy, not the app
    real = current_app._get_current_object()
    args = (app, msg, trace_id, real.extensions["sandbox.tracer"], real.extensions["sandbox.delivery"])
    start_worker(send_async_email_with_proxy, args, trace_id, PROXY)


def send_async_email_with_proxy(app: Flask, msg: Message, trace_id: str, trace: Tracer, log: DeliveryLog) -> None:
    """The classic worker, given the proxy: ``app.app_context()`` looks for an app in this thread and finds none."""
    with worker_outcome(trace, log, trace_id, PROXY):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            traced_send(msg, trace_id, trace)


BROKEN_VARIANTS: dict[str, Callable[[Message, str], Any]] = {
    NO_CONTEXT: send_in_thread_without_context,
    PROXY: send_in_thread_with_proxy,
}
