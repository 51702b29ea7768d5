"""A class on one sandbox: N students, each at a desk of their own, with the page's heartbeat and a send every 10 s.

    python -m bench.classroom [--students 25,50,100,200] [--seconds 20] [--delay 1] [--server pooled]
                              [--http-threads 32]

The sandbox runs as `python -m sandbox` in a process of its own. Each simulated student does what a browser does:
it opens the page (which gives it a desk: its own cookie, its own port of the sink), then pings `/api/ping` every
250 ms, one ping at a time, as the heartbeat strip does. Every 10 s, starting at a random moment, it presses a send
button (half the students the blocking route, half the thread route), opens the send's trace page and answers its
first question (the server judges it against the trace). The students are asyncio tasks on httpx in this process,
each with its own client. The table gives this process's CPU beside the sandbox's, because both share the
machine's cores: on a small machine the load generator is part of the load. Deliveries are counted from each
desk's own `/api/stats`.
"""

from __future__ import annotations

import asyncio
import html
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from bench.report import machine, percentile, table
from sandbox.config import SERVER_MODES, CliParser
from sandbox.web.pooled_server import POOLED_THREADS

PING_EVERY_S = 0.25
SEND_EVERY_S = 10.0
PING_GOAL_MS = 50.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """What one class size saw, client side."""

    pings_ms: list[float] = field(default_factory=list)
    sends_ms: dict[str, list[float]] = field(default_factory=lambda: {"sync": [], "thread": []})
    errors: Counter[str] = field(default_factory=Counter)  # "send 503", "answer 409": what failed, how often


# What the trace page's quiz script reads: where to send an answer, and the first question's first option.
ANSWERS_URL = re.compile(r'data-answers-url="([^"]+)"')
FIRST_OPTION = re.compile(r'data-kind="([a-z_]+)".*?data-index="0" data-option="([^"]*)"', re.DOTALL)


async def student(url: str, index: int, until: float, measured: Measured) -> dict:
    """One student's browser: the page (a desk), a heartbeat, and a send (then its trace page and a quiz answer)
    every 10 s; returns the desk's counts once its emails are settled."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await request(client, measured, "page", "GET", "/", headers={"Accept": "text/html"})
        await asyncio.gather(heartbeat(client, until, measured), sends(client, index, until, measured))
        return await settled_stats(client)


async def heartbeat(client: httpx.AsyncClient, until: float, measured: Measured) -> None:
    while (now := time.perf_counter()) < until:
        started = time.perf_counter()
        if await request(client, measured, "ping", "GET", "/api/ping") is not None:
            measured.pings_ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, now + PING_EVERY_S - time.perf_counter()))


async def sends(client: httpx.AsyncClient, index: int, until: float, measured: Measured) -> None:
    mode = "sync" if index % 2 == 0 else "thread"
    await asyncio.sleep(random.uniform(0, SEND_EVERY_S))
    while (now := time.perf_counter()) < until:
        started = time.perf_counter()
        reply = await request(client, measured, "send", "POST", f"/send-email/{mode}", {"name": f"Student {index}"})
        if reply is not None:
            measured.sends_ms[mode].append((time.perf_counter() - started) * 1000)
            trace_id = reply.json()["trace_id"]
            page = await request(client, measured, "trace page", "GET", f"/traces/{trace_id}")
            first = FIRST_OPTION.search(page.text) if page is not None else None
            url = ANSWERS_URL.search(page.text) if page is not None else None
            if first and url:
                body = {"kind": first.group(1), "choice": 0, "option": html.unescape(first.group(2))}
                await request(client, measured, "answer", "POST", html.unescape(url.group(1)), body)
        await asyncio.sleep(max(0.0, now + SEND_EVERY_S - time.perf_counter()))


async def request(
    client: httpx.AsyncClient,
    measured: Measured,
    what: str,
    method: str,
    path: str,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    """One request; an answer of 400 or more, or none at all (the connection dropped), is counted by what it was
    and returns None."""
    try:
        reply = await client.request(method, path, json=body, headers=headers)
    except httpx.TransportError as err:
        measured.errors[f"{what} {type(err).__name__}"] += 1
        return None
    if reply.status_code >= 400:
        measured.errors[f"{what} {reply.status_code}"] += 1
        return None
    return reply


async def settled_stats(client: httpx.AsyncClient, timeout_s: float = 60) -> dict:
    """The desk's counts once none of its emails is pending (or the timeout passed)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            counts = (await client.get("/api/stats")).json()
        except httpx.TransportError:
            counts = {"pending": 1}
        if not counts["pending"]:
            return counts
        await asyncio.sleep(0.5)
    return counts


async def run_class(url: str, students: int, seconds: float) -> tuple[Measured, dict[str, int]]:
    measured = Measured()
    until = time.perf_counter() + seconds
    desks = await asyncio.gather(*(student(url, i, until, measured) for i in range(students)))
    return measured, {key: sum(desk[key] for desk in desks) for key in ("sent", "delivered")}


class SandboxProcess:
    """`python -m sandbox` on a free port, with a throwaway queue store; its CPU time and resident memory from
    /proc (Linux)."""

    def __init__(self, delay: float, server: str, http_threads: int) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="classroom-")
        env = {**os.environ, "SANDBOX_QUEUE_URL": f"sqlite:///{Path(self.folder.name) / 'queue.db'}"}
        command = [sys.executable, "-m", "sandbox", "--port", "0", "--delay", str(delay), "--server", server]
        command += ["--http-threads", str(http_threads)]
        # Its request log (stderr) would cost this process time to read: it goes nowhere.
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        first = self.process.stdout.readline() if self.process.stdout else ""
        found = re.search(r"on (http://\S+/) ", first)
        if not found:
            self.stop()
            raise RuntimeError(f"the sandbox did not start (run python -m sandbox to see why): {first!r}")
        self.url = found.group(1)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """Stop it as Ctrl-C would; a sandbox still stopping after two minutes is killed, and said so."""
        self.process.terminate()
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            print("the sandbox did not stop within 120 s of SIGTERM and was killed", file=sys.stderr)
        self.folder.cleanup()


async def sample_rss(sandbox: SandboxProcess, until: float) -> float:
    peak = 0.0
    while time.perf_counter() < until:
        peak = max(peak, sandbox.rss_mb())
        await asyncio.sleep(0.5)
    return peak


def measure(sandbox: SandboxProcess, students: int, seconds: float) -> tuple[Measured, dict, float, float, float]:
    """One class: what the students saw, their desks' counts once settled, and the CPU (cores) of the sandbox and
    of this process and the sandbox's peak RSS during the class itself (not while the last emails settle)."""
    cpu_before, own_before = sandbox.cpu_s(), time.process_time()
    used: dict[str, float] = {}

    async def clock(until: float) -> None:
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        used["cpu"], used["own"] = sandbox.cpu_s() - cpu_before, time.process_time() - own_before

    async def both() -> tuple[tuple[Measured, dict], float, None]:
        until = time.perf_counter() + seconds
        return await asyncio.gather(run_class(sandbox.url, students, seconds), sample_rss(sandbox, until), clock(until))

    (measured, counts), rss, _ = asyncio.run(both())
    return measured, counts, used["cpu"] / seconds, used["own"] / seconds, rss


def server_named(server: str, http_threads: int) -> str:
    return f"pooled ({http_threads} threads)" if server == "pooled" else server


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m bench.classroom", description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="25,50,100,200", help="comma list of class sizes")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each class runs")
    parser.add_argument("--delay", type=float, default=1.0, help="the sink's delay")
    parser.add_argument("--server", choices=SERVER_MODES, default="pooled", help="the kind of server (default pooled)")
    parser.add_argument("--http-threads", type=int, default=POOLED_THREADS, help="the pooled server's threads")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.students.split(",")]
    except ValueError:
        parser.error("--students takes a comma list of whole numbers, such as 25,50,100")
    if not Path("/proc/self/stat").exists():
        parser.exit(1, "bench.classroom reads the sandbox's CPU and memory from /proc: Linux only\n")
    console = Console(width=150)
    rows, largest = [], None
    sandbox = SandboxProcess(args.delay, args.server, args.http_threads)
    try:
        for n in sizes:
            with console.status(f"{n} students for {args.seconds:g} s..."):
                measured, counts, cpu, own, rss = measure(sandbox, n, args.seconds)
            ping50, ping95 = (percentile(measured.pings_ms, q) for q in (50, 95))
            sends = {
                mode: percentile(times, 95) if len(times) > 1 else float("nan")
                for mode, times in measured.sends_ms.items()
            }
            if ping95 < PING_GOAL_MS:
                largest = n
            rows.append(
                (
                    n,
                    len(measured.pings_ms),
                    f"{ping50:.1f}",
                    f"{ping95:.1f}",
                    f"{sends['thread']:.1f}",
                    f"{sends['sync'] - args.delay * 1000:.1f}",
                    f"{counts['delivered']}/{counts['sent']}",
                    ", ".join(f"{what} x{count}" for what, count in sorted(measured.errors.items())) or "0",
                    f"{cpu:.2f}",
                    f"{rss:.0f}",
                    f"{own:.2f}",
                )
            )
    finally:
        sandbox.stop()
    console.print(
        table(
            f"a class on one {server_named(args.server, args.http_threads)} sandbox (times in ms, client side), sink "
            f"delay {args.delay:g} s, "
            f"{args.seconds:g} s per class size",
            [
                "students",
                "pings",
                "ping p50 ms",
                "ping p95 ms",
                "thread send p95 ms",
                "blocking p95 - delay ms",
                "delivered/sent",
                "HTTP errors",
                "sandbox CPU (cores)",
                "sandbox RSS MB",
                "generator CPU (cores)",
            ],
            rows,
        )
    )
    verdict = (
        f"largest class with ping p95 under {PING_GOAL_MS:g} ms: {largest}"
        if largest
        else (f"no class size kept ping p95 under {PING_GOAL_MS:g} ms")
    )
    console.print(f"{verdict} ({machine()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
