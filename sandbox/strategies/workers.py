"""How a worker's call of the student's function ends, recorded the same way for a thread, a pool and a queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.smtp.failures import SendError, error_and_outcome
from sandbox.trace.gates import WORKER_START
from sandbox.trace.tracer import Binding, bound, finish_line, line_of, raised_at


@contextmanager
def worker_outcome(binding: Binding, target: Callable[..., Any]) -> Iterator[None]:
    """Run a worker's call of the student's ``target`` for ``binding``'s trace, and record how it ended; unlike the
    textbook thread, no failure is lost in stderr. The events point at ``target``'s lines: its ``def`` as it
    starts, the line that raised as it fails, its last line as it finishes."""
    log = binding.log
    with bound(binding):
        binding.record("worker.started", at=line_of(target), worker=threading.current_thread().name)
        try:
            binding.park(WORKER_START, at=line_of(target))
            yield
        except Exception as err:  # noqa: BLE001 - any failure must be recorded, not printed and forgotten
            error, outcome = error_and_outcome(err)
            answered = {"answered": True} if isinstance(err, SendError) and err.unknown and err.answered else {}
            at = raised_at(err.__traceback__) or line_of(target)
            binding.record("worker.failed", at=at, error=error, outcome=outcome, **answered)
            log.failed(binding.trace_id, binding.mode, error, outcome)
        else:
            # The trace is complete before the send counts as settled, so whoever waits for it reads the whole story.
            binding.record("worker.finished", at=finish_line(target))
            log.delivered(binding.trace_id)
