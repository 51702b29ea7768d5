"""How long each route's answer takes against the sink's delay, the async def views beside sync and thread.

    python -m bench.async_views [--requests 30] [--delay 0.3]

Each route is sent to one at a time, each send after the previous one's email has settled, so no send competes
with another. Prints, per route, the p50 and p95 of the client's wait, that p50 divided by the sink's delay (about
1 for an answer that waits for the 250, far below 1 for one that does not) and how the emails ended. The baseline,
measured in the same run, is the blocking route.
"""

from __future__ import annotations

import statistics

from rich.console import Console

from bench.latency import measure
from bench.report import percentile, table
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox
from sandbox.strategies.modes import ASYNC_BLOCKING, ASYNC_MODE, FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK

ROUTES = ("sync", "thread", ASYNC_MODE, ASYNC_BLOCKING, FORGOTTEN_THREAD_TASK, FORGOTTEN_TASK)


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.async_views", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="measured sends per route (default 30)")
    parser.add_argument("--delay", type=float, default=0.3, help="sink delay in seconds (default 0.3)")
    args = parser.parse_args(argv)
    if args.requests < 20:
        parser.error("use at least 20 sends per route, or the percentiles mean little")
    if args.delay <= 0:
        parser.error("the delay must be above 0: the ratios divide by it")
    console = Console()
    rows = []
    with Sandbox(Settings(delay_s=args.delay)) as sandbox:
        with console.status("Measuring..."):
            for mode in ROUTES:
                before = sandbox.delivery.stats()
                waits = measure(
                    f"{sandbox.url}send-email/{mode}",
                    "POST",
                    args.requests,
                    settle=lambda: sandbox.delivery.wait_settled(30),
                )
                after = sandbox.delivery.stats()
                ended = {key: after[key] - before[key] for key in ("delivered", "failed", "unknown")}
                rows.append((mode, waits, ended))
    base = statistics.median(rows[0][1])
    delay_ms = args.delay * 1000
    console.print(
        table(
            f"Answers against the sink's delay ({args.delay:g} s), {args.requests} sends a route, one at a time",
            ("route", "p50 ms", "p95 ms", "p50 / delay", "p50 / sync p50", "delivered / failed"),
            [
                (
                    mode,
                    f"{statistics.median(waits):.1f}",
                    f"{percentile(waits, 95):.1f}",
                    f"{statistics.median(waits) / delay_ms:.2f}",
                    f"{statistics.median(waits) / base:.3f}",
                    f"{ended['delivered']} / {ended['failed'] + ended['unknown']}",
                )
                for mode, waits, ended in rows
            ],
        )
    )
    console.print("(delivered / failed counts the warm-up sends too; the times do not)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
