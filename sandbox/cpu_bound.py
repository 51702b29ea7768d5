"""A worker that computes before it sends: the thread pattern with CPU-bound work, for the lesson on the GIL.

Waiting on a socket releases CPython's global interpreter lock, so a thread that waits for the mail server costs the
other threads nothing. Pure-Python computation holds the lock, which the interpreter hands over only every few
milliseconds (``sys.getswitchinterval()``), so while this worker computes, every other thread of the process, the web
server's among them, runs in turns with it. The trace brackets the computation (``cpu.started``, ``cpu.finished``)
so the requests the server answered meanwhile can be set against it.
"""

from __future__ import annotations

import sys
import time

from flask import Flask, current_app
from flask_mail import Message

from sandbox.mailer import start_worker, traced_send, worker_outcome

MODE = "thread-cpu"
CPU_WORK_S = 1.5


def send_after_cpu_work(msg: Message, trace_id: str) -> None:
    """The classic thread pattern (the real app object, a context in the worker), with computation first."""
    app = current_app._get_current_object()
    start_worker(compute_then_send, (app, msg, trace_id), trace_id, MODE)


def compute_then_send(app: Flask, msg: Message, trace_id: str) -> None:
    """Pure-Python arithmetic for ``CPU_WORK_S``, holding the GIL but for the interpreter's switches, then the send."""
    trace = app.extensions["sandbox.tracer"]
    with worker_outcome(trace, app.extensions["sandbox.delivery"], trace_id, MODE):
        with app.app_context():
            trace.record(trace_id, "context.pushed", app=app.name)
            trace.record(trace_id, "cpu.started", work_s=CPU_WORK_S, switch_interval_s=sys.getswitchinterval())
            rounds = busy_work(CPU_WORK_S)
            trace.record(trace_id, "cpu.finished", rounds=rounds)
            traced_send(msg, trace_id, trace)


def busy_work(seconds: float) -> int:
    """Arithmetic in a Python loop until ``seconds`` have passed; returns how many rounds it made."""
    deadline = time.perf_counter() + seconds
    rounds, value = 0, 1
    while time.perf_counter() < deadline:
        for _ in range(1000):
            value = (value * 31 + 7) % 1_000_003
        rounds += 1
    return rounds
