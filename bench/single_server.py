"""N visitors at once on a server that handles one request at a time: blocking sends queue, thread sends do not.

    python -m bench.single_server [--clients 1,2,4,8] [--delay 0.5]

For each N, N clients press the button at the same moment; the table shows when the last of them got an answer.
Blocking sends grow as N x delay, because each request waits for the one before it to finish its SMTP wait.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console

from bench.report import table
from sandbox.client import call
from sandbox.config import CliParser, Settings
from sandbox.runtime import Sandbox


def last_answer_s(sandbox: Sandbox, mode: str, clients: int) -> float:
    url = f"{sandbox.url}send-email/{mode}"
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        replies = list(pool.map(lambda _: call(url, "POST", {}, timeout=120), range(clients)))
    elapsed = time.perf_counter() - started
    assert all(r.status < 400 for r in replies), [r.body for r in replies]
    sandbox.delivery.wait_settled(60)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.single_server", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,2,4,8", help="comma list of simultaneous clients")
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.clients.split(",")]
    except ValueError:
        parser.error("--clients takes a comma list of whole numbers, such as 1,2,4,8")
    console = Console()
    rows = []
    with Sandbox(Settings(delay_s=args.delay, server="single")) as sandbox, console.status("Measuring..."):
        for n in counts:
            blocking, thread = last_answer_s(sandbox, "sync", n), last_answer_s(sandbox, "thread", n)
            rows.append((n, f"{blocking:.2f}", f"{n * args.delay:.2f}", f"{thread:.3f}", f"{blocking / thread:.0f}x"))
    console.print(
        table(
            f"single server, sink delay {args.delay:g} s: time until the last client had its answer",
            ["clients", "blocking s", "N x delay s", "thread s", "blocking / thread"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
