"""CPU-bound work for the lesson on the GIL: what the student's ``compute_then_send`` does before it sends.

Waiting on a socket releases CPython's global interpreter lock, so a thread that waits for the mail server costs the
other threads nothing. Pure-Python computation holds the lock, which the interpreter hands over only every few
milliseconds (``sys.getswitchinterval()``), so while this work runs, every other thread of the process, the web
server's among them, runs in turns with it. The trace brackets the computation (``cpu.started``, ``cpu.finished``)
so the requests the server answered meanwhile can be set against it.
"""

from __future__ import annotations

import sys
import time

from sandbox.trace.tracer import current_binding


def busy_work(seconds: float) -> int:
    """Arithmetic in a Python loop until ``seconds`` have passed; returns how many rounds it made."""
    binding = current_binding()
    if binding is not None:
        binding.record("cpu.started", work_s=seconds, switch_interval_s=sys.getswitchinterval())
    deadline = time.perf_counter() + seconds
    rounds, value = 0, 1
    while time.perf_counter() < deadline:
        for _ in range(1000):
            value = (value * 31 + 7) % 1_000_003
        rounds += 1
    if binding is not None:
        binding.record("cpu.finished", rounds=rounds)
    return rounds
