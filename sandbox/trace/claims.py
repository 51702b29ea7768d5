"""Sentences that carry the claims they make, so a test can check every sentence against the events.

A claim is a short string in a tiny language, ``op(arg, arg, ...)``, evaluated against the trace JSON (its
``events``, ``steps`` and ``server``) by a checker that shares no code with the wording. Event references:

- ``kind``         the first event of that kind (``response.sent``)
- ``kind#n``       the n-th event of that kind, counting from 1 (``attempt.failed#2``)
- ``last:kind``    the last event of that kind
- ``@n``           the event shown at step n of the execution table
- ``other:<ref>``  the same, in the trace this one is compared with (``other:sink.accepted``)

Operations (``tol`` is the rounding of the value as shown, in ms):

- ``happened(e)``, ``absent(kind)``; ``count(kind, n)``
- ``before(e1, e2)``: both happened and e1 came first in time
- ``none_before(kind, e)``: no event of ``kind`` came before e (e itself may be of that kind)
- ``none_between(kind, e1, e2)``: no event of ``kind`` came after e1 and before e2
- ``same_thread(e1, e2)``, ``other_thread(e1, e2)``
- ``at_ms(e, v, tol)``: e came ``v`` ms after the trace's start, within tol
- ``gap_ms(e1, e2, v, tol)``: e2 came ``v`` ms after e1 (never negative), within tol
- ``detail(e, key, value)``: the event's details hold ``key`` equal to ``value`` (a JSON literal)
- ``step(n, kind)``: step n shows the first event of ``kind``
- ``threads(n)``: the steps show n distinct threads
- ``server_observed()``: the trace has the web server's log of other requests
- ``server_answered(e1, e2, n, slowest_ms, tol)``: n other requests were answered after e1 and up to e2, the
  slowest of them after ``slowest_ms`` (from its arrival to its answer)
- ``server_waiting(e, n, oldest_ms, tol)``: at e, n other requests had arrived and waited for a handler, the
  oldest for ``oldest_ms``
- ``server_busy(e, n)``: at e, n other requests were being handled
- ``not(claim)``, ``any(claim, claim, ...)``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sentence:
    """Text a student reads, with the claims that make it true; ``str()`` gives the text."""

    text: str
    claims: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.text

    def __add__(self, other: Sentence | str) -> Sentence:
        if isinstance(other, Sentence):
            return Sentence(self.text + other.text, self.claims + other.claims)
        return Sentence(self.text + other, self.claims)

    def __bool__(self) -> bool:
        return bool(self.text)


def sentence(text: str, *claims: str) -> Sentence:
    return Sentence(text, tuple(claims))


def join(parts: list[Sentence], separator: str = " ") -> Sentence:
    """The parts' texts joined, with all their claims."""
    kept = [part for part in parts if part]
    return Sentence(separator.join(p.text for p in kept), tuple(c for p in kept for c in p.claims))


def claim(op: str, *args: Any) -> str:
    """``claim("before", "response.sent", "sink.accepted")`` -> ``before(response.sent, sink.accepted)``."""
    return f"{op}({', '.join(_arg(a) for a in args)})"


def negate(text: str) -> str:
    return f"not({text})"


@dataclass(frozen=True)
class Literal:
    """A value (not an event reference) in a claim: written as JSON."""

    value: Any


def _arg(value: Any) -> str:
    if isinstance(value, Literal):
        return json.dumps(value.value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    return str(value)  # an event reference, a number, a key or a nested claim
