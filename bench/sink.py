"""The sink's throughput at delay 0, against a bare aiosmtpd ``Sink`` handler measured in the same run.

    python -m bench.sink [--messages 2000] [--clients 8]

Each message is its own SMTP connection (as Flask-Mail opens one per send), sent by a few client threads with
smtplib. The goal is at least 0.85 of the bare handler's rate: the fault machinery and the mailbox must stay cheap.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink as BareSink
from rich.console import Console

from bench.report import table
from sandbox.config import CliParser
from sandbox.smtp.sink import Sink
from sandbox.testing import free_port

MESSAGE = b"Subject: throughput\r\nX-Sandbox-Trace: bench\r\n\r\n" + b"hello\r\n" * 50


def rate(host: str, port: int, messages: int, clients: int) -> float:
    """Messages per second, each on its own connection."""

    def send(_: int) -> None:
        with smtplib.SMTP(host, port, local_hostname="localhost", timeout=30) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(send, range(50)))  # warm up
        started = time.perf_counter()
        list(pool.map(send, range(messages)))
    return messages / (time.perf_counter() - started)


def bare(messages: int, clients: int) -> float:
    controller = Controller(BareSink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        return rate("127.0.0.1", controller.port, messages, clients)
    finally:
        controller.stop()


def ours(messages: int, clients: int) -> float:
    with Sink("127.0.0.1", 0) as sink:
        return rate(sink.host, sink.port, messages, clients)


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.sink", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the two sinks this many times")
    args = parser.parse_args(argv)
    console = Console()
    measured: dict[str, list[float]] = {"bare aiosmtpd Sink": [], "sandbox sink (delay 0)": []}
    runs: list[tuple[str, Callable[[int, int], float]]] = [
        ("bare aiosmtpd Sink", bare),
        ("sandbox sink (delay 0)", ours),
    ]
    with console.status("Measuring..."):
        for _ in range(args.rounds):
            for name, run in runs:
                measured[name].append(run(args.messages, args.clients))
    best = {name: max(values) for name, values in measured.items()}
    rows = [(name, f"{best[name]:.0f}", ", ".join(f"{v:.0f}" for v in measured[name])) for name in measured]
    console.print(
        table(
            f"{args.messages} messages, one connection each, {args.clients} client threads",
            ["sink", "best msg/s", "every round msg/s"],
            rows,
        )
    )
    ratio = best["sandbox sink (delay 0)"] / best["bare aiosmtpd Sink"]
    console.print(f"sandbox / bare: [bold]{ratio:.2f}[/] (goal >= 0.85)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
