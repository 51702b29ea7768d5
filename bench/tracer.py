"""What tracing costs: nanoseconds per recorded event, and the thread route's latency with tracing on and off.

    python -m bench.tracer [--events 200000] [--requests 300]

Both figures come from one run. The route is measured on one server with tracing switched on and off in
alternating blocks, each request made after the previous email was delivered, so drift and leftover workers
affect both sides alike.
"""

from __future__ import annotations

import statistics
import time

from rich.console import Console
from rich.table import Table

from bench.report import percentile
from sandbox.client import call
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox
from sandbox.trace.tracer import Tracer

BLOCK = 25


def ns_per_event(count: int) -> float:
    """Record ``count`` events into one trace; the stack walk for the source line is included."""
    tracer = Tracer()
    tracer.start("bench", "thread", "threaded", 0.0, {})
    record = tracer.record
    started = time.perf_counter_ns()
    for n in range(count):
        record("bench", "bench.event", n=n)
    elapsed = time.perf_counter_ns() - started
    assert len(tracer.get("bench").events) == count
    return elapsed / count


def route_latency(sandbox: Sandbox, requests: int) -> dict[bool, list[float]]:
    url = f"{sandbox.url}send-email/thread"
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(20):
        call(url, "POST", {})
    sandbox.delivery.wait_settled(30)
    for block in range(2 * requests // BLOCK):
        enabled = block % 2 == 0
        sandbox.tracer.enabled = enabled
        for _ in range(BLOCK):
            reply = call(url, "POST", {})
            assert reply.status == 202, reply.body
            timings[enabled].append(reply.elapsed_ms)
            sandbox.delivery.wait_settled(30)
    sandbox.tracer.enabled = True
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.tracer", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events recorded for the per-event cost")
    parser.add_argument("--requests", type=int, default=300, help="thread sends measured with tracing on, and off")
    parser.add_argument("--delay", type=float, default=0.0, help="sink delay in seconds (default 0)")
    args = parser.parse_args(argv)
    if args.events < 1000 or args.requests < 2 * BLOCK:
        parser.error(f"use at least 1000 events and {2 * BLOCK} requests")
    console = Console()
    with console.status("Measuring..."):
        per_event = ns_per_event(args.events)
        with Sandbox(Settings(delay_s=args.delay)) as sandbox:
            timings = route_latency(sandbox, args.requests)

    console.print(f"Recording one event: [bold]{per_event:.0f} ns[/] (goal < 5000 ns), over {args.events} events")
    table = Table(title="POST /send-email/thread, one at a time, tracing on vs off (same server, same run)")
    for column in ("tracing", "requests", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "tracing" else "right")
    for enabled in (True, False):
        values = timings[enabled]
        table.add_row(
            "on" if enabled else "off",
            str(len(values)),
            f"{statistics.median(values):.3f}",
            f"{percentile(values, 95):.3f}",
        )
    console.print(table)
    ratio = statistics.median(timings[True]) / statistics.median(timings[False])
    console.print(f"p50 on/off: [bold]{ratio:.3f}[/] (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
