"""The task queue against the thread route: how fast the route answers, and how fast emails get through.

    python -m bench.queue [--sends 300] [--concurrency 10]

Enqueue latency is the queue route's response time as a client sees it (the task is stored before the answer).
End-to-end throughput is sends per second from the first request until the last email was accepted, sink delay 0.
The same load runs on the thread route, on the queue with SQLite, and on the queue with a real redis-server.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

from rich.console import Console

from bench.report import percentile, table
from sandbox.client import call
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox
from sandbox.testing import redis_server


def measure(settings: Settings, mode: str, sends: int, concurrency: int) -> tuple[list[float], float, int]:
    """Response times (ms), end-to-end sends per second, and how many were delivered."""
    with Sandbox(settings) as sandbox:
        url = f"{sandbox.url}send-email/{mode}"
        for _ in range(10):
            call(url, "POST", {})
        sandbox.delivery.wait_settled(60)
        sandbox.sink.mailbox.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as clients:
            replies = list(clients.map(lambda _: call(url, "POST", {}, timeout=60), range(sends)))
        sandbox.sink.mailbox.wait_for_count(sends, 120)
        elapsed = time.perf_counter() - started
        return [r.elapsed_ms for r in replies], sends / elapsed, len(sandbox.sink.mailbox.messages())


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.queue", description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="consumer worker threads (default 4)")
    args = parser.parse_args(argv)
    console = Console()
    rows = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(TemporaryDirectory()))
        base = Settings(delay_s=0, queue_url=f"sqlite:///{folder}/bench.db", queue_workers=args.workers)
        setups = [("thread", base, "thread"), ("queue, SQLite", base, "queue")]
        try:
            redis_url = stack.enter_context(redis_server())
            setups.append(("queue, Redis", base.replace(queue_url=redis_url), "queue"))
        except FileNotFoundError as err:
            console.print(f"[yellow]Skipping Redis: {err}[/]")
        for label, settings, mode in setups:
            with console.status(f"{args.sends} sends: {label}..."):
                latencies, throughput, delivered = measure(settings, mode, args.sends, args.concurrency)
            rows.append(
                (
                    label,
                    f"{percentile(latencies, 50):.2f}",
                    f"{percentile(latencies, 95):.2f}",
                    f"{throughput:.0f}",
                    f"{delivered}/{args.sends}",
                )
            )
    console.print(
        table(
            f"{args.sends} sends, {args.concurrency} clients at a time, sink delay 0, {args.workers} consumer workers",
            ["route", "response p50 ms", "response p95 ms", "end-to-end sends/s", "delivered"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
