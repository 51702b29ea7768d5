"""The queue's outbox: every queued email is written down before the 202 and crossed out once its fate is known.

Huey takes a task out of its store when a worker picks it up, before the send, so a process killed mid-send would
lose the email without a word. The outbox is the record that survives the kill: on the next start, an email in the
outbox that is in neither Huey's queue nor its schedule is queued again (at-least-once delivery). If a worker had
already begun sending it, the first attempt may have reached the server, so its second delivery is reported as
"possibly twice".

The outbox lives in the queue's own store (Huey's key-value space, in the same SQLite file or Redis database as the
tasks), so the tasks and the record of them share one fate and one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from huey.api import Huey

PREFIX = "sandbox.outbox:"
STORED, SENDING = "stored", "sending"


@dataclass(frozen=True)
class OutboxEntry:
    """An email accepted for the queue and not yet settled."""

    trace_id: str
    data: dict[str, Any]
    state: str  # STORED: waiting for a worker (or a retry); SENDING: a worker was sending it


class Outbox:
    """The outbox of one Huey store. Every method may raise the store's connection errors (Redis down)."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey

    def add(self, trace_id: str, data: dict[str, Any]) -> None:
        """Write the email down before its task is queued."""
        self._put(trace_id, data, STORED)

    def sending(self, trace_id: str, data: dict[str, Any]) -> None:
        """A worker starts an attempt: from now on the server may get the email."""
        self._put(trace_id, data, SENDING)

    def waiting(self, trace_id: str, data: dict[str, Any]) -> None:
        """The attempt failed and Huey will try again later: nothing is being sent meanwhile."""
        self._put(trace_id, data, STORED)

    def settle(self, trace_id: str) -> None:
        """Delivered or finally failed: the delivery log has it, the outbox lets go."""
        self.huey.delete(PREFIX + trace_id)

    def entries(self) -> list[OutboxEntry]:
        """Every unsettled email, in no particular order."""
        found = []
        for key, raw in self.huey.all_results().items():
            if key.startswith(PREFIX):
                value = self.huey.serializer.deserialize(raw)
                found.append(OutboxEntry(key.removeprefix(PREFIX), value["data"], value["state"]))
        return found

    def _put(self, trace_id: str, data: dict[str, Any], state: str) -> None:
        self.huey.put(PREFIX + trace_id, {"data": data, "state": state})
