"""The send route written as ``async def``: does awaiting the send let the answer leave sooner? The run says no.

Flask is a WSGI framework. It runs an ``async def`` view through ``app.ensure_sync``, which wraps it in asgiref's
``AsyncToSync``: an event loop is started on a thread of its own, the coroutine runs there until it returns, and the
thread that called it (the request's) waits all that time. Awaiting ``asyncio.to_thread(...)`` keeps that event loop
free while the send runs on one of the loop's executor threads, but the view has not returned until the send has,
so neither has ``ensure_sync``, and the answer leaves after the send, as on the blocking route. A task the view
started and left running would not help either: it is cancelled when the view's event loop ends (Flask's docs,
"Using async and await"). This strategy does what such a view does, and records each thread's part in the trace:
``coroutine.called`` on the request's thread, ``coroutine.started`` and ``coroutine.finished`` (or
``coroutine.failed``) on the event loop's thread, and the send's own events on the executor thread.
"""

from __future__ import annotations

import asyncio
import threading

from flask import current_app
from flask_mail import Message

from sandbox.mailer import SendError, blocking_outcome, describe_error, traced_send, tracer
from sandbox.tracer import Tracer

MODE = "async-def"
VIA = "asyncio.to_thread"


def send_from_async_view(msg: Message, trace_id: str) -> None:
    """What the route does when written as ``async def``: Flask's ``ensure_sync`` runs the coroutine to its end on
    an event loop of its own, and this thread waits for it; the send is settled before the answer, as for ``sync``."""
    trace = tracer()
    with blocking_outcome(trace_id, MODE):
        trace.record(trace_id, "coroutine.called", function=send_and_await.__name__, via="app.ensure_sync")
        current_app.ensure_sync(send_and_await)(msg, trace_id, trace)


async def send_and_await(msg: Message, trace_id: str, trace: Tracer) -> None:
    """The async view's body: await the same send the blocking route makes, on an executor thread, so that the
    event loop is not blocked while smtplib waits for the server."""
    trace.record(trace_id, "coroutine.started", function=send_and_await.__name__, loop=threading.current_thread().name)
    try:
        await asyncio.to_thread(traced_send, msg, trace_id, trace, VIA)
    except Exception as err:
        error = str(err) if isinstance(err, SendError) else describe_error(err)
        trace.record(trace_id, "coroutine.failed", error=error)
        raise
    trace.record(trace_id, "coroutine.finished")
