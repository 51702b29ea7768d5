"""A worker that retries blindly: the thread pattern with "try again on any error", for the lesson on duplicates.

Retrying looks safe, and it is, when the failure shows the email did not arrive (a refusal, a connection that never
opened). But when the whole message went out and the answer never came, the server may have stored it: sending the
same message again (same Message-ID) can deliver it twice. Delivery is then at least once, not exactly once, unless
the receiver is idempotent and recognises the Message-ID it already holds. This worker makes that visible: it tries
``ATTEMPTS`` times in all, whatever went wrong, and its trace records every attempt as the pool's does
(``attempt.started``, ``attempt.failed`` with ``policy`` "blind"), so the sink's lane shows each copy it stored.
"""

from __future__ import annotations

import time

from flask import Flask, current_app
from flask_mail import Message

from sandbox.delivery import FAILED
from sandbox.mailer import SendError, describe_error, start_worker, traced_send, worker_outcome

MODE = "thread-retry"
ATTEMPTS = 3
PAUSE_S = 0.2
POLICY = "blind"  # recorded on each attempt.failed: the worker retries whatever the error was


def send_with_blind_retries(msg: Message, trace_id: str) -> None:
    """The classic thread pattern (the real app object, a context in the worker), with a retry loop inside."""
    app = current_app._get_current_object()
    start_worker(retry_blindly, (app, msg, trace_id), trace_id, MODE)


def retry_blindly(app: Flask, msg: Message, trace_id: str) -> None:
    """Send ``msg``; on any exception, pause and send the very same message again, up to ``ATTEMPTS`` in all."""
    trace = app.extensions["sandbox.tracer"]
    log = app.extensions["sandbox.delivery"]
    with worker_outcome(trace, log, trace_id, MODE):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            unanswered: int | None = None  # the first attempt that sent everything and heard nothing back
            for attempt in range(1, ATTEMPTS + 1):
                trace.record(trace_id, "attempt.started", attempt=attempt, attempts=ATTEMPTS)
                try:
                    traced_send(msg, trace_id, trace)
                except Exception as err:  # noqa: BLE001 - blind on purpose: this is the mistake the lesson shows
                    error = str(err) if isinstance(err, SendError) else describe_error(err)
                    outcome = err.outcome if isinstance(err, SendError) else FAILED
                    final = attempt == ATTEMPTS
                    details = {"attempt": attempt, "error": error, "final": final, "outcome": outcome}
                    if final:
                        trace.record(trace_id, "attempt.failed", **details, policy=POLICY)
                        if unanswered is None or outcome != FAILED:
                            raise
                        raise _maybe_delivered(err, error, unanswered) from err
                    trace.record(trace_id, "attempt.failed", **details, policy=POLICY, retry_in_s=PAUSE_S)
                    if outcome != FAILED and unanswered is None:
                        unanswered = attempt
                    time.sleep(PAUSE_S)
                else:
                    if unanswered is not None:
                        # The 250 came, but an earlier copy may have arrived too: the log lists it as possibly twice.
                        log.may_have_arrived(trace_id, f"{MODE}: {_may_have_arrived(unanswered)}")
                    return


def _may_have_arrived(attempt: int) -> str:
    return f"attempt {attempt} had sent the whole message and got no answer, so it may have delivered a copy already"


def _maybe_delivered(err: Exception, error: str, unanswered: int) -> SendError:
    """The last attempt was refused, but an earlier one may have delivered the email: the send's fate is unknown,
    though its last conversation did get an answer (``answered``)."""
    return SendError(
        f"{error}; but {_may_have_arrived(unanswered)}: the sender cannot tell whether it arrived",
        timed_out=False,
        code=err.code if isinstance(err, SendError) else None,
        unknown=True,
        answered=True,
    )
