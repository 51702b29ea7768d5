"""What each way of stopping a process does to an email its worker thread is still sending, shown with real processes.

Each case starts a child Python process running the textbook pattern (Flask, Flask-Mail, ``threading.Thread`` with
the real app object and its own app context) against a sink of its own that waits a while before its greeting, as
a slow mail server does. As soon as the child's worker has connected and waits for that greeting (nothing of the
email has gone out yet), the parent stops the child the case's way: the child's main thread returns (a normal
exit), or the parent sends SIGINT (Ctrl-C), SIGTERM or SIGKILL. The sink's mailbox then says whether the email
arrived, and the clock says how long the process took to end. Nothing is assumed: each outcome is what happened.

``python -m sandbox.shutdown_demo`` prints the table; ``POST /api/demos/shutdown`` answers it as JSON.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from sandbox.smtp.faults import Faults
from sandbox.smtp.sink import Sink
from sandbox.trace.clock import shown_ms
from sandbox.trace.facts import SINK_ENDS
from sandbox.trace.tracer import TRACE_HEADER

HOLD_S = 1.0  # how long each case's sink waits before its greeting
REACH_TIMEOUT_S = 15.0  # how long a child may take to start, import Flask and reach the sink
CHILD_RECIPIENT = "student@example.com"


@dataclass(frozen=True)
class Case:
    key: str
    daemon: bool
    stop: str  # "exit" (the main thread returns) or a signal's name
    label: str


CASES = (
    Case("daemon-exit", True, "exit", "daemon worker, the main thread returns"),
    Case("exit", False, "exit", "non-daemon worker, the main thread returns"),
    Case("ctrl-c", False, "SIGINT", "non-daemon worker, Ctrl-C (SIGINT)"),
    Case("sigterm", False, "SIGTERM", "non-daemon worker, SIGTERM with no handler"),
    Case("sigkill", False, "SIGKILL", "non-daemon worker, SIGKILL"),
)


@dataclass(frozen=True)
class Outcome:
    """One case as it happened: whether the worker had reached the sink when the stop came, how the process ended
    and when, and whether the email is in the mailbox."""

    case: str
    label: str
    daemon: bool
    stop: str
    reached_sink: bool
    ended_after_ms: float | None  # from the stop to the process's end; None: it did not end in time (then killed)
    ended_by: str  # "exit code 0", "signal SIGTERM", ...
    delivered: bool
    summary: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class DemoBusy(RuntimeError):
    """Another run of the demonstration is under way in this process."""


_running = threading.Lock()


def run_cases(cases: tuple[Case, ...] = CASES, hold_s: float = HOLD_S) -> list[Outcome]:
    """Run every case at once, each against its own sink; returns their outcomes in the order given. One run at a
    time per process (DemoBusy otherwise): each starts a handful of Python processes."""
    if os.name != "posix":
        raise OSError("the shutdown demonstration sends POSIX signals, so it needs Linux or macOS")
    if not _running.acquire(blocking=False):
        raise DemoBusy("a shutdown demonstration is already running; try again in a few seconds")
    try:
        return _run_all(cases, hold_s)
    finally:
        _running.release()


def _run_all(cases: tuple[Case, ...], hold_s: float) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(cases)

    def run(index: int) -> None:
        outcomes[index] = run_case(cases[index], hold_s)

    threads = [threading.Thread(target=run, args=(i,), name=f"shutdown-demo-{i}") for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [outcome for outcome in outcomes if outcome is not None]


def run_case(case: Case, hold_s: float = HOLD_S) -> Outcome:
    """Start the child, stop it once its worker waits for the sink's greeting, and see what arrived."""
    trace_id = uuid.uuid4().hex
    received, settled = threading.Event(), threading.Event()

    def on_event(event_trace: str, kind: str, **details: object) -> None:
        if event_trace == trace_id:
            (received if kind == "sink.data_received" else settled if kind in SINK_ENDS else threading.Event()).set()

    with Sink("127.0.0.1", 0) as sink:
        # The sink's start-up check opens a connection of its own: only once it has gone does a session mean the
        # child's worker, and only then does the greeting start to keep it waiting.
        deadline = time.monotonic() + REACH_TIMEOUT_S
        while sink.handler.sessions and time.monotonic() < deadline:
            time.sleep(0.005)
        sink.handler.faults = Faults(greet_delay_s=hold_s)
        sink.handler.on_event = on_event
        child = subprocess.Popen(
            [sys.executable, "-m", "sandbox.shutdown_demo", "--child", case.key, str(sink.port), trace_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        while sink.handler.sessions == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        reached = sink.handler.sessions > 0
        stopped = time.perf_counter()
        assert child.stdin is not None
        if case.stop == "exit":
            child.stdin.write("exit\n")
            child.stdin.flush()
        else:
            child.send_signal(getattr(signal, case.stop))
        try:
            code = child.wait(hold_s + 10)
            ended_after_ms: float | None = (time.perf_counter() - stopped) * 1000
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
            ended_after_ms = None
        child.stdin.close()
        if received.is_set():  # the whole message reached the sink: let it finish with it
            settled.wait(hold_s + 5)
        delivered = sink.mailbox.copies(trace_id) > 0
    ended_by = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    summary = describe(reached, ended_after_ms, ended_by, delivered)
    return Outcome(case.key, case.label, case.daemon, case.stop, reached, ended_after_ms, ended_by, delivered, summary)


def describe(reached: bool, ended_after_ms: float | None, ended_by: str, delivered: bool) -> str:
    """One case's outcome in a sentence, from what was measured."""
    where = (
        "The worker had connected and was waiting for the sink's greeting when the stop came"
        if reached
        else "The worker had not connected to the sink when the stop came"
    )
    if ended_after_ms is None:
        ended = f"the process had not ended {HOLD_S + 10:g} s later and was killed"
    else:
        ended = f"the process ended {shown_ms(ended_after_ms)[0]} later ({ended_by})"
    fate = "the email is in the mailbox" if delivered else "the email never reached the mailbox"
    return f"{where}; {ended}; {fate}."


def child_main(case_key: str, port: int, trace_id: str) -> None:
    """The child: the textbook pattern, then wait on stdin for the parent's word (or its signal)."""
    from flask import Flask
    from flask_mail import Mail, Message

    case = next(c for c in CASES if c.key == case_key)
    app = Flask("shutdown-demo")
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_DEFAULT_SENDER="demo@example.com")
    mail = Mail(app)

    def send_async_email(app: Flask, msg: Message) -> None:
        with app.app_context():
            mail.send(msg)

    with app.app_context():
        msg = Message(
            f"Shutdown demo: {case.label}",
            recipients=[CHILD_RECIPIENT],
            body="Sent by a worker thread of a process that is about to be stopped.",
            extra_headers={TRACE_HEADER: trace_id},
        )
    threading.Thread(target=send_async_email, args=[app, msg], daemon=case.daemon).start()
    sys.stdin.readline()  # "exit" from the parent; a signal interrupts this instead
    # Returning from the main thread: Python now waits for non-daemon threads and stops daemon ones.


def print_table(outcomes: list[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Stopping a process while its worker waits for the mail server ({HOLD_S:g} s to greet)")
    for column in ("case", "delivered", "what happened"):
        table.add_column(column)
    for outcome in outcomes:
        table.add_row(Text(outcome.label), "yes" if outcome.delivered else "no", Text(outcome.summary))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.shutdown_demo",
        description="Stop real processes in the middle of a send, each a different way, and see which emails arrive.",
    )
    parser.add_argument("--child", nargs=3, metavar=("CASE", "PORT", "TRACE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case_key, port, trace_id = args.child
        child_main(case_key, int(port), trace_id)
        return 0
    try:
        outcomes = run_cases()
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
