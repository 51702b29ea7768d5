"""Response latency of the routes, measured from a client against one real server in one run.

    python -m bench.latency [--requests 300] [--delay 0.2]

Prints p50/p95 of a no-op route (/api/ping), of the thread route, and of the sync route minus the sink delay,
with the ratio thread/no-op: the cost of handing a send to a thread, against the cheapest request there is.
The thread route is measured twice: back to back, so earlier workers are still talking SMTP and compete with the
request for the GIL, and one at a time, each request made after the previous email was delivered.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from bench.report import percentile
from sandbox.client import call
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox

WARM_UP = 20


def measure(url: str, method: str, count: int, settle: Callable[[], object] = lambda: None) -> list[float]:
    """Client-side times of ``count`` requests made one after another; ``settle`` runs after each one."""
    for _ in range(WARM_UP):
        call(url, method, {} if method == "POST" else None)
        settle()
    timings = []
    for _ in range(count):
        reply = call(url, method, {} if method == "POST" else None)
        assert reply.status < 400, reply.body
        timings.append(reply.elapsed_ms)
        settle()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per route (default 300)")
    parser.add_argument("--sync-requests", type=int, default=40, help="measured sync sends (default 40)")
    parser.add_argument("--delay", type=float, default=0.2, help="sink delay in seconds (default 0.2)")
    args = parser.parse_args(argv)
    if args.requests < 20 or args.sync_requests < 20:
        parser.error("use at least 20 requests per route, or the percentiles mean little")
    console = Console()
    with Sandbox(Settings(delay_s=args.delay)) as sandbox:
        with console.status("Measuring..."):
            noop = measure(f"{sandbox.url}api/ping", "GET", args.requests)
            thread = measure(f"{sandbox.url}send-email/thread", "POST", args.requests)
            sandbox.delivery.wait_settled(30)
            alone = measure(
                f"{sandbox.url}send-email/thread",
                "POST",
                args.requests,
                settle=lambda: sandbox.delivery.wait_settled(30),
            )
            sync = [
                ms - args.delay * 1000 for ms in measure(f"{sandbox.url}send-email/sync", "POST", args.sync_requests)
            ]
            delivered = sandbox.delivery.stats()

    table = Table(title=f"Route latency, threaded server, sink delay {args.delay:g} s ({sys.platform})")
    for column in ("route", "requests", "p50 ms", "p95 ms", "p50 / no-op p50"):
        table.add_column(column, justify="left" if column == "route" else "right")
    base = statistics.median(noop)
    rows = (
        ("GET /api/ping (no-op)", noop),
        ("POST /send-email/thread, back to back", thread),
        ("POST /send-email/thread, each after the last delivered", alone),
        ("POST /send-email/sync minus the delay", sync),
    )
    for name, values in rows:
        p50 = statistics.median(values)
        table.add_row(name, str(len(values)), f"{p50:.2f}", f"{percentile(values, 95):.2f}", f"{p50 / base:.2f}")
    console.print(table)
    ratio, ratio_alone = statistics.median(thread) / base, statistics.median(alone) / base
    console.print(f"thread/no-op p50 ratio: {ratio:.2f} back to back, {ratio_alone:.2f} one at a time (goal <= 1.5)")
    console.print(f"sync overhead above the delay, p50: {statistics.median(sync):.1f} ms (goal <= 30)")
    console.print(f"deliveries: {delivered}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
