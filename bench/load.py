"""Many thread sends at once: does every email arrive, how fast do the routes answer, how many threads pile up?

    python -m bench.load [--sends 1000] [--concurrency 50] [--delay 0.5] [--pool-size 32]

Runs the same load against the ``thread`` route (a new thread per email) and the ``pool`` route (a bounded pool),
in one run, and prints p50/p95 response times, the peak number of live worker threads, and delivered/sent. Then it
runs both again against a sink that, like most real mail servers, accepts only so many connections at once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rich.console import Console

from bench.report import percentile, table
from sandbox.client import call
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox

WORKER_PREFIXES = {"thread": "mail-", "pool": "pool"}


@dataclass(frozen=True)
class LoadResult:
    label: str
    responses_ms: list[float]
    peak_workers: int
    delivered: int
    sent: int
    drained_s: float


class ThreadPeak:
    """Samples the live threads whose names start with ``prefix`` and keeps the highest count."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.peak = prefix, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-sampler", daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(t.name.startswith(self.prefix) for t in threading.enumerate()))
            time.sleep(0.002)

    def __enter__(self) -> ThreadPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(
    mode: str, sends: int, concurrency: int, delay_s: float, pool_size: int, sink_sessions: int | None = None
) -> LoadResult:
    """``sink_sessions`` caps the sink's simultaneous connections, as real mail servers cap each client's."""
    settings = Settings(delay_s=delay_s, pool_size=pool_size, smtp_timeout_s=60)
    with Sandbox(settings) as sandbox, ThreadPeak(WORKER_PREFIXES[mode]) as peak:
        if sink_sessions is not None:
            sandbox.sink.handler.max_sessions = sink_sessions
        url = f"{sandbox.url}send-email/{mode}"
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="client") as clients:
            replies = list(clients.map(lambda _: call(url, "POST", {}, timeout=120), range(sends)))
        sandbox.delivery.wait_settled(sends * delay_s + 120)
        drained = time.perf_counter() - started
        stats = sandbox.delivery.stats()
    accepted = [r for r in replies if r.status == 202]
    label = mode if sink_sessions is None else f"{mode}, sink allows {sink_sessions} connections"
    return LoadResult(label, [r.elapsed_ms for r in accepted], peak.peak, stats["delivered"], len(replies), drained)


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--pool-size", type=int, default=32)
    parser.add_argument(
        "--sink-sessions",
        type=int,
        default=100,
        help="connection cap for the second pair of runs, like a real server's per-client limit",
    )
    args = parser.parse_args(argv)
    if args.sends < 20 or not 1 <= args.concurrency <= 200:
        parser.error("use at least 20 sends and a concurrency between 1 and 200")
    console = Console()
    results = []
    for mode, cap in (("thread", None), ("pool", None), ("thread", args.sink_sessions), ("pool", args.sink_sessions)):
        with console.status(f"{args.sends} sends by {mode}, {args.concurrency} at a time..."):
            results.append(run_load(mode, args.sends, args.concurrency, args.delay, args.pool_size, cap))
    rows = [
        (
            r.label,
            f"{percentile(r.responses_ms, 50):.1f}",
            f"{percentile(r.responses_ms, 95):.1f}",
            r.peak_workers,
            f"{r.delivered}/{r.sent}",
            f"{r.drained_s:.1f}",
        )
        for r in results
    ]
    console.print(
        table(
            f"{args.sends} sends, concurrency {args.concurrency}, sink delay {args.delay:g} s, "
            f"pool size {args.pool_size}",
            ["mode", "p50 ms", "p95 ms", "peak worker threads", "delivered/sent", "all settled after s"],
            rows,
        )
    )
    console.print("Sends that did not arrive are not lost: each one is listed, with its reason, in /api/failures.")
    return 0 if all(r.delivered == r.sent for r in results[:2]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
