"""The instructor's comparison: send by each mode through the real server and measure what a client sees."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sandbox.client import Reply, call
from sandbox.runtime import Sandbox
from sandbox.trace.tracer import Trace


@dataclass(frozen=True)
class ModeResult:
    """What N simultaneous clients saw for one mode, and when the sink accepted their emails."""

    mode: str
    server: str
    replies: tuple[Reply, ...]
    accepted_ms: tuple[float | None, ...]
    delivered: int
    trace: Trace | None

    @property
    def clients(self) -> int:
        return len(self.replies)

    @property
    def response_ms(self) -> list[float]:
        """The server's own response times (from its accepting the request), the number traces show too."""
        return [r.body["response_ms"] for r in self.replies if "response_ms" in r.body]

    @property
    def client_ms(self) -> list[float]:
        """What each client measured itself, network and client included."""
        return [r.elapsed_ms for r in self.replies]

    @property
    def errors(self) -> list[str]:
        return [r.body.get("error", f"HTTP {r.status}") for r in self.replies if r.status >= 400]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_mode(sandbox: Sandbox, mode: str, clients: int, comparison: str | None = None) -> ModeResult:
    """Send ``clients`` requests at once, wait until each email is delivered or failed, and time both.

    Every client sends the same email, in ``comparison`` (so the quiz can compare it with the same email sent
    another way); the trace kept for the report is the one whose client waited longest.
    """
    url = f"{sandbox.url}send-email/{mode}"
    timeout = sandbox.settings.smtp_timeout_s + sandbox.settings.delay_s * clients + 30
    body = {"comparison": comparison} if comparison else {}
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        replies = tuple(pool.map(lambda _: call(url, "POST", body, timeout), range(clients)))
    sandbox.delivery.wait_settled(timeout)
    failed = {f.trace_id for f in sandbox.delivery.failures()}
    delivered = sum(r.status < 400 and r.body.get("trace_id") not in failed for r in replies)
    accepted = tuple(accepted_after(sandbox, r) for r in replies)
    slowest = max(replies, key=lambda r: r.body.get("response_ms", r.elapsed_ms))
    trace_id = slowest.body.get("trace_id")
    trace = sandbox.tracer.get(trace_id) if trace_id else None
    return ModeResult(mode, sandbox.settings.server_kind, replies, accepted, delivered, trace)


def accepted_after(sandbox: Sandbox, reply: Reply) -> float | None:
    """Milliseconds from the server's having the request to the sink's 250 (the trace's clock), or None."""
    trace_id = reply.body.get("trace_id")
    trace = sandbox.tracer.get(trace_id) if trace_id else None
    return None if trace is None or trace.first("sink.accepted") is None else trace.accepted_ms
