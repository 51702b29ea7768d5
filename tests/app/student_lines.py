"""Does every event of a trace light the student's line it is about? Used by the live matrix and the unit tests.

Each event kind names the code its line must hold: "the worker starts" is a ``def``, "the context is pushed" is
``with app.app_context():``, "the sink waits" is ``await asyncio.sleep(...)``. A kind with no rule here is a
problem too, so a new event cannot slip in pointing anywhere.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sandbox.trace.gates import AFTER_250, BEFORE_ANSWER, BEFORE_SEND, COUNT_READ, SINK_BEFORE_250, WORKER_START

PROJECT = Path(__file__).resolve().parents[2]
STUDENT_DIR = "sandbox/app/"
SEND = ("mail.send",)
ROUTE = ("def send_",)
COUNT = ('stats["sent"]',)
RAISERS = ("mail.send", "request_fields()", ".submit(", ".enqueue(", "with app.app_context():", "raise", ".result(")
LINES: dict[str, tuple[str, ...]] = {
    "request.arrived": ROUTE,
    "request.received": ROUTE,
    "message.built": ('render_template("email/welcome.html"',),
    "worker.spawned": ("thr.start()",),
    "pool.queued": (".submit(",),
    "pool.full": (".submit(",),
    "queue.stored": (".enqueue(",),
    "queue.unavailable": (".enqueue(",),
    "worker.started": ("def ",),
    "context.pushed": ("with app.app_context():",),
    "attempt.started": SEND,
    "attempt.failed": SEND,
    "send.started": SEND,
    "cpu.started": ("busy_work(",),
    "cpu.finished": ("busy_work(",),
    "worker.finished": ("mail.send(msg)", "return", 'stats["sent"] = '),
    "worker.failed": RAISERS,
    "coroutine.called": ("async def send_",),
    "coroutine.started": ("async def send_",),
    "coroutine.finished": ("return",),
    "coroutine.failed": RAISERS,
    "task.created": ("asyncio.create_task(",),
    "task.started": ("async def ",),
    "task.cancelled": ("await ", "async def "),  # at the await it was suspended in, or before its first line
    "task.failed": (*RAISERS, "await "),
    "task.finished": ("mail.send(msg)", "await ", "return"),
    "loop.closed": ("async def send_",),
    "task.unsent": ("asyncio.create_task(",),
    "response.sent": ("return", *RAISERS),
    "count.read": COUNT,
    "count.written": COUNT,
    "lock.waiting": ("with stats_lock:",),
    "lock.acquired": ("with stats_lock:",),
    "lock.released": ("with stats_lock:",),
    "follow_up.queued": (".submit(",),
    "follow_up.waiting": (".result(",),
    "follow_up.timed_out": (".result(",),
    "follow_up.started": ("def ",),
    "follow_up.finished": ("return",),
    "sink.data_received": ("async def handle_DATA",),
    "sink.delay_started": ("await asyncio.sleep(",),
    "sink.client_left": ("await asyncio.sleep(", "self.mailbox.store("),
    "sink.disconnected": ("self.mailbox.store(",),
    "sink.rejected": ("self.mailbox.store(",),
    "sink.accepted": ('return "250',),
    "sink.reply_lost": ('return "250',),
}


@functools.cache
def code_line(file: str, line: int) -> str:
    """The line's code, without its comment and indentation ("" for a line that is not there)."""
    lines = (PROJECT / file).read_text(encoding="utf-8").splitlines()
    return lines[line - 1].split("  #")[0].strip() if 0 < line <= len(lines) else ""


# A thread held at a gate (or passing it) lights the line it is held on, by gate.
GATE_LINES = {
    BEFORE_ANSWER: ("thr.start()", ".submit(", ".enqueue("),
    WORKER_START: ("def ",),
    BEFORE_SEND: SEND,
    AFTER_250: SEND,
    SINK_BEFORE_250: ("async def handle_DATA",),
    COUNT_READ: COUNT,
}


def rule(kind: str, details: dict[str, Any] | None = None) -> tuple[str, ...] | None:
    if kind in ("gate.parked", "gate.released", "gate.passed"):
        return GATE_LINES.get((details or {}).get("gate", ""))
    return SEND if kind.startswith("smtp.") else LINES.get(kind)


def unlit_events(doc: dict[str, Any], cell: str) -> list[str]:
    """Every event of the trace document whose line is not in the student's files or not the line it is about."""
    problems = []
    for event in doc.get("events") or []:
        kind, file, line = event["kind"], event.get("file") or "", event.get("line") or 0
        where = f"[{cell}] {kind} on {event['thread']}"
        wanted = rule(kind, event.get("details"))
        if wanted is None:
            problems.append(f"{where}: no rule says which student line this kind lights (tests/student_lines.py)")
        elif not file.startswith(STUDENT_DIR):
            problems.append(f"{where}: points at {file or 'no file'}:{line}, not at the student's files")
        elif not any(text in code_line(file, line) for text in wanted):
            problems.append(f"{where}: lights {file}:{line} {code_line(file, line)!r}, wanted one of {wanted}")
    return problems
