"""The instructor's comparison: send by each mode through the real server and measure what a client sees."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sandbox.client import Reply, call
from sandbox.runtime import Sandbox
from sandbox.tracer import Trace


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
        return [r.elapsed_ms for r in self.replies]

    @property
    def errors(self) -> list[str]:
        return [r.body.get("error", f"HTTP {r.status}") for r in self.replies if r.status >= 400]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_mode(sandbox: Sandbox, mode: str, clients: int) -> ModeResult:
    """Send ``clients`` requests at once, wait until each email is delivered or failed, and time both."""
    url = f"{sandbox.url}send-email/{mode}"
    timeout = sandbox.settings.smtp_timeout_s + sandbox.settings.delay_s * clients + 30
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        replies = tuple(pool.map(lambda i: call(url, "POST", {"name": f"Student {i + 1}"}, timeout), range(clients)))
    sandbox.delivery.wait_settled(timeout)
    failed = {f.trace_id for f in sandbox.delivery.failures()}
    delivered = sum(r.status < 400 and r.body.get("trace_id") not in failed for r in replies)
    accepted = tuple(accepted_after(sandbox, r) for r in replies)
    first_id = replies[0].body.get("trace_id")
    trace = sandbox.tracer.get(first_id) if first_id else None
    return ModeResult(mode, sandbox.settings.server, replies, accepted, delivered, trace)


def accepted_after(sandbox: Sandbox, reply: Reply) -> float | None:
    """Milliseconds from the client's click to the sink's 250, or None if the sink never accepted it."""
    trace_id = reply.body.get("trace_id")
    if sandbox.sink is None or not trace_id or reply.status >= 400:
        return None
    message = sandbox.sink.mailbox.by_trace(trace_id)
    return None if message is None else (message.accepted_ns - reply.started_ns) / 1e6
