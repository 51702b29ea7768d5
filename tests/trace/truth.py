"""The truth checker: every sentence a student reads, checked claim by claim against the recorded events.

This module re-implements the claim language from its specification (the docstring of ``sandbox/claims.py``) and
shares no code with the wording (``sandbox.steps``, ``sandbox.moments``, ``sandbox.quiz``, ``sandbox.facts``,
``sandbox.claims``): a bug in the wording cannot hide in a shared helper. It reads only the trace JSON.

API:

- ``evaluate(claim, doc) -> bool``: is the claim true of the trace document? Raises :class:`ClaimError` for an
  unknown operation or a claim that does not parse.
- ``verdict(claim, doc) -> Verdict``: the same, with ``why``: the actual values behind the answer.
- ``durations(text) -> list[Duration]``: the durations written in a text, in ms.
- ``negative_durations(text) -> list[str]``: durations written with a minus sign.
- ``claim_values(claim) -> list[Backing]``: the numbers a claim vouches for (what a written duration may quote).
- ``check_document(doc, cell="") -> list[str]``: every problem of one trace document, each naming the cell, the
  place (``where``), the text, the claim and why it is false.

The language, as specified: event references ``kind``, ``kind#n``, ``last:kind``, ``@n`` (the event step n
shows), ``other:<ref>`` (in ``doc["compared_with"]``); operations ``happened``, ``absent``, ``count``, ``before``,
``none_before``, ``none_between``, ``same_thread``, ``other_thread``, ``at_ms``, ``gap_ms``, ``within_ms``,
``detail``, ``step``, ``threads``, ``server_observed``, ``server_answered``, ``server_waiting``, ``server_busy``,
``not``, ``any``. A claim naming an event that did not happen is false (``not`` turns that into true).

Decisions the specification leaves open, made here:

- ``before`` compares positions in ``events`` (list order breaks ties of equal ``t_ms``); across the two traces
  (``other:`` on one side only) it compares ``t_ms``, each from its own trace's start.
- ``same_thread`` compares the thread's name and id; ``threads(n)`` counts the distinct thread names of the steps.
- ``none_before``/``none_between`` and ``absent``/``count`` look at the trace of their event reference; a kind
  written ``other:kind`` means the compared trace.
- ``server_answered``/``server_waiting`` with ``n`` = 0 need the slowest/oldest figure to be 0 (within tol).
- A written duration is backed by ``at_ms``/``gap_ms`` (v ± tol), ``server_answered`` (slowest ± tol),
  ``server_waiting`` (oldest ± tol), ``within_ms`` (lo or hi exactly), and ``detail`` of a key ending in ``_s``
  or ``_ms`` (the value, exactly), and ``detail`` of a text value (a duration written in the recorded text, such as
  "did not answer within 2 s" in an error), anywhere in the entry's claims, nested ones included.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ROUNDING_MS = 0.0011  # t_ms is rounded to 3 decimals: two rounded times differ from the truth by up to 0.001 ms
STEP_FIELDS = ("action", "thread_state", "main_app_state", "output")


class ClaimError(ValueError):
    """A claim the checker cannot read: unknown operation, wrong arguments, malformed syntax."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str


# --------------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple[str, ...]
    text: str


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*\((.*)\)\s*", re.DOTALL)


def split_args(text: str) -> list[str]:
    """Split at the top-level commas, respecting parentheses, brackets, braces and JSON strings."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ClaimError(f"unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if in_string:
        raise ClaimError("unterminated string")
    if depth:
        raise ClaimError("unbalanced parentheses")
    last = "".join(current).strip()
    if parts or last:
        parts.append(last)
    if any(not p for p in parts):
        raise ClaimError("empty argument")
    return parts


@functools.lru_cache(maxsize=1 << 16)
def parse(claim: str) -> Call:
    """The claim as an operation and its arguments (a matrix checks the same claim texts many times: read once)."""
    if not isinstance(claim, str):
        raise ClaimError(f"a claim must be a string, not {type(claim).__name__}")
    match = _CALL.fullmatch(claim)
    if match is None:
        raise ClaimError(f"not of the form op(args): {claim!r}")
    op, inner = match.group(1), match.group(2)
    try:
        args = split_args(inner)
    except ClaimError as err:
        raise ClaimError(f"cannot parse {claim!r}: {err}") from None
    if op not in OPS:
        raise ClaimError(f"unknown operation {op!r} in {claim!r}")
    arity = OPS[op][0]
    if (arity >= 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
        want = f"{arity}" if arity >= 0 else f"at least {-arity}"
        raise ClaimError(f"{op} takes {want} argument(s), got {len(args)} in {claim!r}")
    return Call(op, tuple(args), claim)


def _number(text: str, claim: Call) -> float:
    if text in ("inf", "+inf", "Infinity"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ClaimError(f"{text!r} is not a number in {claim.text!r}") from None
    if math.isnan(value):
        raise ClaimError(f"NaN in {claim.text!r}")
    return value


def _integer(text: str, claim: Call) -> int:
    value = _number(text, claim)
    if value != int(value):
        raise ClaimError(f"{text!r} is not a whole number in {claim.text!r}")
    return int(value)


def _tol(text: str, claim: Call) -> float:
    value = _number(text, claim)
    if value < 0 or math.isinf(value):
        raise ClaimError(f"tolerance {text!r} must be a finite number >= 0 in {claim.text!r}")
    return value


_KIND = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_REF = re.compile(rf"(?P<other>other:)?(?:@(?P<step>\d+)|last:(?P<last>{_KIND})|(?P<kind>{_KIND})(?:#(?P<nth>\d+))?)")
_KIND_ARG = re.compile(rf"(?P<other>other:)?(?P<kind>{_KIND})")


# --------------------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Found:
    """A resolved event: which trace (``side``: "this" or "other"), its position in that trace's events, itself."""

    side: str
    index: int
    event: dict[str, Any]

    @property
    def t(self) -> float:
        return float(self.event["t_ms"])

    def label(self) -> str:
        prefix = "other:" if self.side == "other" else ""
        e = self.event
        return f"{prefix}{e.get('kind')} (event {self.index}) at {e.get('t_ms')} ms on {e.get('thread')}"


def _side(doc: dict[str, Any], side: str) -> dict[str, Any] | None:
    if side == "this":
        return doc
    other = doc.get("compared_with")
    return other if isinstance(other, dict) else None


def _events(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    events = doc.get("events")
    return events if isinstance(events, list) else []


def _steps(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    steps = doc.get("steps")
    return steps if isinstance(steps, list) else []


def _same_time(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) < 0.0005
    except (TypeError, ValueError):
        return False


def step_event(doc: dict[str, Any] | None, n: int) -> tuple[int | None, str]:
    """The position of the event step n shows (the first with its kind, t_ms and thread), or None and why."""
    steps = _steps(doc)
    row = next((s for s in steps if s.get("step") == n), None)
    if row is None:
        return None, f"there is no step {n} (the table has {len(steps)} steps)"
    for i, e in enumerate(_events(doc)):
        if (
            e.get("kind") == row.get("kind")
            and e.get("thread") == row.get("thread")
            and _same_time(e.get("t_ms"), row.get("t_ms"))
        ):
            return i, ""
    return None, f"step {n} shows {row.get('kind')} at {row.get('t_ms')} ms on {row.get('thread')}: no such event"


def resolve(ref: str, doc: dict[str, Any], claim: Call) -> tuple[Found | None, str]:
    """An event reference to the event it names, or None and why it names nothing."""
    match = _REF.fullmatch(ref)
    if match is None:
        raise ClaimError(f"{ref!r} is not an event reference in {claim.text!r}")
    side = "other" if match.group("other") else "this"
    target = _side(doc, side)
    if target is None:
        return None, f"{ref}: no compared trace (compared_with is null)"
    events = _events(target)
    if match.group("step"):
        index, why = step_event(target, int(match.group("step")))
        if index is None:
            return None, f"{ref}: {why}"
        return Found(side, index, events[index]), ""
    kind = match.group("last") or match.group("kind")
    of_kind = [i for i, e in enumerate(events) if e.get("kind") == kind]
    if match.group("last"):
        position = len(of_kind) - 1
    else:
        nth = int(match.group("nth") or 1)
        if nth < 1:
            raise ClaimError(f"{ref!r}: events are counted from 1 in {claim.text!r}")
        position = nth - 1
    if not 0 <= position < len(of_kind):
        return None, f"{ref} did not happen ({len(of_kind)} {kind} event(s))"
    index = of_kind[position]
    return Found(side, index, events[index]), ""


def _kind_arg(text: str, claim: Call) -> tuple[str, str]:
    match = _KIND_ARG.fullmatch(text)
    if match is None:
        raise ClaimError(f"{text!r} is not an event kind in {claim.text!r}")
    return ("other" if match.group("other") else "this"), match.group("kind")


def _kind_side(text: str, claim: Call, default: str) -> tuple[str, str]:
    side, kind = _kind_arg(text, claim)
    return (side if text.startswith("other:") else default), kind


# --------------------------------------------------------------------------------------------------- operations

Op = Callable[[Call, dict[str, Any]], Verdict]
OPS: dict[str, tuple[int, Op]] = {}


def _op(name: str, arity: int) -> Callable[[Op], Op]:
    def register(function: Op) -> Op:
        OPS[name] = (arity, function)
        return function

    return register


def _resolve_all(call: Call, doc: dict[str, Any], refs: tuple[str, ...]) -> tuple[list[Found], str]:
    found, missing = [], []
    for ref in refs:
        event, why = resolve(ref, doc, call)
        if event is None:
            missing.append(why)
        else:
            found.append(event)
    return found, "; ".join(missing)


@_op("happened", 1)
def _happened(call: Call, doc: dict[str, Any]) -> Verdict:
    e, why = resolve(call.args[0], doc, call)
    return Verdict(e is not None, why if e is None else e.label())


def _count_of(call: Call, doc: dict[str, Any], text: str) -> tuple[int, str]:
    side, kind = _kind_arg(text, call)
    target = _side(doc, side)
    if target is None:
        return 0, f"{text}: no compared trace"
    return sum(1 for e in _events(target) if e.get("kind") == kind), ""


@_op("absent", 1)
def _absent(call: Call, doc: dict[str, Any]) -> Verdict:
    n, note = _count_of(call, doc, call.args[0])
    return Verdict(n == 0, note or f"{n} {call.args[0]} event(s)")


@_op("count", 2)
def _count(call: Call, doc: dict[str, Any]) -> Verdict:
    n, note = _count_of(call, doc, call.args[0])
    want = _integer(call.args[1], call)
    return Verdict(n == want, (note + "; " if note else "") + f"{n} {call.args[0]} event(s), claimed {want}")


def _earlier(a: Found, b: Found) -> bool:
    if a.side == b.side:
        return a.index < b.index
    return a.t < b.t


@_op("before", 2)
def _before(call: Call, doc: dict[str, Any]) -> Verdict:
    found, missing = _resolve_all(call, doc, call.args)
    if missing:
        return Verdict(False, missing)
    a, b = found
    return Verdict(_earlier(a, b), f"{a.label()}; {b.label()}")


@_op("none_before", 2)
def _none_before(call: Call, doc: dict[str, Any]) -> Verdict:
    e, why = resolve(call.args[1], doc, call)
    if e is None:
        return Verdict(False, why)
    side, kind = _kind_side(call.args[0], call, e.side)
    if side != e.side:
        raise ClaimError(f"{call.text!r} mixes the two traces")
    events = _events(_side(doc, side))
    earlier = [i for i, x in enumerate(events[: e.index]) if x.get("kind") == kind]
    if earlier:
        first = events[earlier[0]]
        return Verdict(False, f"{kind} at {first.get('t_ms')} ms (event {earlier[0]}) came before {e.label()}")
    return Verdict(True, f"no {kind} before {e.label()}")


@_op("none_between", 3)
def _none_between(call: Call, doc: dict[str, Any]) -> Verdict:
    found, missing = _resolve_all(call, doc, call.args[1:])
    if missing:
        return Verdict(False, missing)
    a, b = found
    if a.side != b.side:
        raise ClaimError(f"{call.text!r} mixes the two traces")
    side, kind = _kind_side(call.args[0], call, a.side)
    if side != a.side:
        raise ClaimError(f"{call.text!r} mixes the two traces")
    events = _events(_side(doc, side))
    inside = [i for i in range(a.index + 1, b.index) if events[i].get("kind") == kind]
    if inside:
        first = events[inside[0]]
        return Verdict(
            False, f"{kind} at {first.get('t_ms')} ms (event {inside[0]}) is between {a.label()} and {b.label()}"
        )
    return Verdict(True, f"no {kind} between {a.label()} and {b.label()}")


def _thread(found: Found) -> tuple[Any, Any]:
    return found.event.get("thread"), found.event.get("thread_id")


@_op("same_thread", 2)
def _same_thread(call: Call, doc: dict[str, Any]) -> Verdict:
    found, missing = _resolve_all(call, doc, call.args)
    if missing:
        return Verdict(False, missing)
    a, b = found
    return Verdict(_thread(a) == _thread(b), f"{a.label()} (id {_thread(a)[1]}); {b.label()} (id {_thread(b)[1]})")


@_op("other_thread", 2)
def _other_thread(call: Call, doc: dict[str, Any]) -> Verdict:
    found, missing = _resolve_all(call, doc, call.args)
    if missing:
        return Verdict(False, missing)
    a, b = found
    return Verdict(_thread(a) != _thread(b), f"{a.label()} (id {_thread(a)[1]}); {b.label()} (id {_thread(b)[1]})")


def _close(actual: float, claimed: float, tol: float) -> bool:
    return abs(actual - claimed) <= tol + ROUNDING_MS


@_op("at_ms", 3)
def _at_ms(call: Call, doc: dict[str, Any]) -> Verdict:
    v, tol = _number(call.args[1], call), _tol(call.args[2], call)
    e, why = resolve(call.args[0], doc, call)
    if e is None:
        return Verdict(False, why)
    return Verdict(_close(e.t, v, tol), f"{e.label()}: actual {e.t:.3f} ms, claimed {v:g} ± {tol:g}")


@_op("gap_ms", 4)
def _gap_ms(call: Call, doc: dict[str, Any]) -> Verdict:
    v, tol = _number(call.args[2], call), _tol(call.args[3], call)
    found, missing = _resolve_all(call, doc, call.args[:2])
    if missing:
        return Verdict(False, missing)
    a, b = found
    gap = b.t - a.t
    ok = gap >= -ROUNDING_MS and _close(gap, v, tol)
    return Verdict(ok, f"from {a.label()} to {b.label()}: actual gap {gap:.3f} ms, claimed {v:g} ± {tol:g}")


@_op("within_ms", 4)
def _within_ms(call: Call, doc: dict[str, Any]) -> Verdict:
    lo, hi = _number(call.args[2], call), _number(call.args[3], call)
    if lo > hi:
        raise ClaimError(f"lo > hi in {call.text!r}")
    found, missing = _resolve_all(call, doc, call.args[:2])
    if missing:
        return Verdict(False, missing)
    a, b = found
    gap = b.t - a.t
    return Verdict(
        lo <= gap < hi, f"from {a.label()} to {b.label()}: actual gap {gap:.3f} ms, claimed [{lo:g}, {hi:g})"
    )


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON values: true is not 1, 1 is 1.0, lists and objects compared member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _detail_key(text: str, call: Call) -> str:
    if text.startswith('"'):
        try:
            key = json.loads(text)
        except json.JSONDecodeError:
            raise ClaimError(f"bad key {text!r} in {call.text!r}") from None
        if not isinstance(key, str):
            raise ClaimError(f"bad key {text!r} in {call.text!r}")
        return key
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", text):
        raise ClaimError(f"bad key {text!r} in {call.text!r}")
    return text


def _literal(text: str, call: Call) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ClaimError(f"{text!r} is not a JSON literal in {call.text!r}") from None


@_op("detail", 3)
def _detail(call: Call, doc: dict[str, Any]) -> Verdict:
    key = _detail_key(call.args[1], call)
    want = _literal(call.args[2], call)
    e, why = resolve(call.args[0], doc, call)
    if e is None:
        return Verdict(False, why)
    details = e.event.get("details") or {}
    if key not in details:
        return Verdict(False, f"{e.label()} has no {key!r} in its details {json.dumps(details, default=str)}")
    have = details[key]
    return Verdict(_json_equal(have, want), f"{e.label()}: {key} = {json.dumps(have, default=str)}")


@_op("step", 2)
def _step(call: Call, doc: dict[str, Any]) -> Verdict:
    n = _integer(call.args[0], call)
    side, kind = _kind_arg(call.args[1], call)
    target = _side(doc, side)
    if target is None:
        return Verdict(False, "no compared trace")
    index, why = step_event(target, n)
    if index is None:
        return Verdict(False, why)
    shown = _events(target)[index]
    first = next((i for i, e in enumerate(_events(target)) if e.get("kind") == kind), None)
    if first is None:
        return Verdict(False, f"step {n} shows {shown.get('kind')} at {shown.get('t_ms')} ms; no {kind} happened")
    ok = first == index
    why = f"step {n} shows {shown.get('kind')} (event {index}) at {shown.get('t_ms')} ms; first {kind} is event {first}"
    return Verdict(ok, why)


@_op("threads", 1)
def _threads(call: Call, doc: dict[str, Any]) -> Verdict:
    n = _integer(call.args[0], call)
    names = list(dict.fromkeys(s.get("thread") for s in _steps(doc)))
    return Verdict(len(names) == n, f"the steps show {len(names)} thread(s): {', '.join(map(str, names))}")


def _server(doc: dict[str, Any]) -> dict[str, Any] | None:
    server = doc.get("server")
    if isinstance(server, dict) and server.get("observed") is True:
        return server
    return None


def _requests(server: dict[str, Any]) -> list[dict[str, Any]]:
    requests = server.get("requests")
    return requests if isinstance(requests, list) else []


@_op("server_observed", 0)
def _server_observed(call: Call, doc: dict[str, Any]) -> Verdict:
    server = doc.get("server")
    if _server(doc) is None:
        return Verdict(False, f"server is {json.dumps(server, default=str)[:120]}")
    return Verdict(True, f"server log observed with {len(_requests(server))} request(s)")


def _server_for(call: Call, doc: dict[str, Any], found: list[Found]) -> dict[str, Any] | None:
    sides = {f.side for f in found}
    if len(sides) > 1:
        raise ClaimError(f"{call.text!r} mixes the two traces")
    target = _side(doc, sides.pop()) if sides else doc
    return _server(target) if target else None


def _t(value: Any) -> float | None:
    return None if value is None else float(value)


@_op("server_answered", 5)
def _server_answered(call: Call, doc: dict[str, Any]) -> Verdict:
    n, slowest_ms, tol = _integer(call.args[2], call), _number(call.args[3], call), _tol(call.args[4], call)
    found, missing = _resolve_all(call, doc, call.args[:2])
    if missing:
        return Verdict(False, missing)
    a, b = found
    server = _server_for(call, doc, found)
    if server is None:
        return Verdict(False, "the server's log of other requests was not observed")
    answered = [
        r for r in _requests(server) if _t(r.get("finished_ms")) is not None and a.t < _t(r["finished_ms"]) <= b.t
    ]
    waits = [_t(r["finished_ms"]) - _t(r.get("arrived_ms")) for r in answered]
    slowest = max(waits, default=0.0)
    ok = len(answered) == n and _close(slowest, slowest_ms, tol)
    ids = ", ".join(f"{r.get('method')} {r.get('path')} ({w:.3f} ms)" for r, w in zip(answered, waits, strict=True))
    why = (
        f"between {a.t:.3f} and {b.t:.3f} ms {len(answered)} request(s) answered, slowest {slowest:.3f} ms "
        f"[{ids}]; claimed {n}, slowest {slowest_ms:g} ± {tol:g}"
    )
    return Verdict(ok, why)


@_op("server_waiting", 4)
def _server_waiting(call: Call, doc: dict[str, Any]) -> Verdict:
    n, oldest_ms, tol = _integer(call.args[1], call), _number(call.args[2], call), _tol(call.args[3], call)
    e, why = resolve(call.args[0], doc, call)
    if e is None:
        return Verdict(False, why)
    server = _server_for(call, doc, [e])
    if server is None:
        return Verdict(False, "the server's log of other requests was not observed")
    t = e.t
    waiting = [
        r
        for r in _requests(server)
        if _t(r.get("arrived_ms")) is not None
        and _t(r["arrived_ms"]) <= t
        and (_t(r.get("started_ms")) is None or _t(r["started_ms"]) > t)
    ]
    ages = [t - _t(r["arrived_ms"]) for r in waiting]
    oldest = max(ages, default=0.0)
    ok = len(waiting) == n and _close(oldest, oldest_ms, tol)
    return Verdict(
        ok,
        f"at {e.label()}: {len(waiting)} waiting, oldest {oldest:.3f} ms; claimed {n}, oldest {oldest_ms:g} ± {tol:g}",
    )


@_op("server_busy", 2)
def _server_busy(call: Call, doc: dict[str, Any]) -> Verdict:
    n = _integer(call.args[1], call)
    e, why = resolve(call.args[0], doc, call)
    if e is None:
        return Verdict(False, why)
    server = _server_for(call, doc, [e])
    if server is None:
        return Verdict(False, "the server's log of other requests was not observed")
    t = e.t
    busy = [
        r
        for r in _requests(server)
        if _t(r.get("started_ms")) is not None
        and _t(r["started_ms"]) <= t
        and (_t(r.get("finished_ms")) is None or _t(r["finished_ms"]) > t)
    ]
    return Verdict(len(busy) == n, f"at {e.label()}: {len(busy)} being handled; claimed {n}")


@_op("not", 1)
def _not(call: Call, doc: dict[str, Any]) -> Verdict:
    inner = verdict(call.args[0], doc)
    return Verdict(not inner.ok, f"{call.args[0]} is {'true' if inner.ok else 'false'}: {inner.why}")


@_op("any", -1)
def _any(call: Call, doc: dict[str, Any]) -> Verdict:
    verdicts = [verdict(arg, doc) for arg in call.args]
    ok = any(v.ok for v in verdicts)
    return Verdict(
        ok,
        " | ".join(f"{a} is {'true' if v.ok else 'false'}: {v.why}" for a, v in zip(call.args, verdicts, strict=True)),
    )


def verdict(claim: str, doc: dict[str, Any]) -> Verdict:
    """Is ``claim`` true of ``doc``, and the actual values behind the answer; ClaimError if it cannot be read."""
    call = parse(claim)
    return OPS[call.op][1](call, doc)


def evaluate(claim: str, doc: dict[str, Any]) -> bool:
    return verdict(claim, doc).ok


# --------------------------------------------------------------------------------------------------- durations

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT = r"ms|milliseconds?|µs|μs|microseconds?|s|secs?|seconds?"
_RANGE = re.compile(rf"(?<![\w.])({_NUM})\s*(?:to|–|-)\s*({_NUM})\s*({_UNIT})(?!\w)")
_SINGLE = re.compile(rf"(?<![\w.,])({_NUM})\s*({_UNIT})(?!\w)")
_NEGATIVE = re.compile(rf"(?<![\w.])[-\u2212]({_NUM})\s*({_UNIT})(?!\w)")


@dataclass(frozen=True)
class Duration:
    written: str
    ms: float


def _to_ms(number: str, unit: str) -> float:
    value = float(number.replace(",", ""))
    if unit.startswith(("µ", "μ", "micro")):
        return value / 1000
    if unit.startswith(("ms", "milli")):
        return value
    return value * 1000


def durations(text: str) -> list[Duration]:
    """Every duration written in ``text`` (a range "1 to 3 s" gives both ends), in ms."""
    found: list[Duration] = []
    taken: list[tuple[int, int]] = []
    for m in _RANGE.finditer(text):
        found.append(Duration(f"{m.group(1)} {m.group(3)}", _to_ms(m.group(1), m.group(3))))
        found.append(Duration(f"{m.group(2)} {m.group(3)}", _to_ms(m.group(2), m.group(3))))
        taken.append(m.span())
    for m in _SINGLE.finditer(text):
        if any(start <= m.start() < end for start, end in taken):
            continue
        found.append(Duration(m.group(0), _to_ms(m.group(1), m.group(2))))
    return found


def negative_durations(text: str) -> list[str]:
    return [m.group(0) for m in _NEGATIVE.finditer(text)]


@dataclass(frozen=True)
class Backing:
    """A number (ms) a claim vouches for, give or take ``tol``."""

    ms: float
    tol: float
    claim: str


def _walk(claim: str) -> Iterator[Call]:
    call = parse(claim)
    yield call
    if call.op in ("not", "any"):
        for arg in call.args:
            yield from _walk(arg)


def claim_values(claim: str) -> list[Backing]:
    values = []
    for call in _walk(claim):
        a = call.args
        match call.op:
            case "at_ms":
                values.append(Backing(_number(a[1], call), _tol(a[2], call), call.text))
            case "gap_ms":
                values.append(Backing(_number(a[2], call), _tol(a[3], call), call.text))
            case "within_ms":
                values.extend(Backing(_number(x, call), 0.0, call.text) for x in a[2:4])
            case "server_answered":
                values.append(Backing(_number(a[3], call), _tol(a[4], call), call.text))
            case "server_waiting":
                values.append(Backing(_number(a[2], call), _tol(a[3], call), call.text))
            case "detail":
                key = _detail_key(a[1], call)
                value = _literal(a[2], call)
                for quoted in _strings(value):  # a recorded text quoted verbatim: its durations are facts
                    values.extend(Backing(d.ms, 0.0, call.text) for d in durations(quoted))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if key.endswith("_ms"):
                        values.append(Backing(float(value), 0.0, call.text))
                    elif key.endswith("_s"):
                        values.append(Backing(float(value) * 1000, 0.0, call.text))
    return values


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def backed(duration: Duration, values: list[Backing]) -> bool:
    return any(not math.isinf(b.ms) and _close(duration.ms, b.ms, b.tol) for b in values)


# --------------------------------------------------------------------------------------------------- documents


def shown_texts(doc: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Every text the document shows that needs claims, by ``where``; and what is missing from the document."""
    shown: dict[str, str] = {}
    missing: list[str] = []
    steps = doc.get("steps")
    if not isinstance(steps, list):
        missing.append("the document has no 'steps' list")
        steps = []
    for i, row in enumerate(steps):
        for name in STEP_FIELDS:
            value = row.get(name)
            if isinstance(value, str) and value:
                shown[f"steps[{i}].{name}"] = value
    moments = doc.get("key_moments")
    if not isinstance(moments, list):
        missing.append("the document has no 'key_moments' list")
        moments = []
    for i, moment in enumerate(moments):
        shown[f"key_moments[{i}].text"] = str(moment.get("text", ""))
    quiz = doc.get("quiz")
    if not isinstance(quiz, list):
        missing.append("the document has no 'quiz' list")
        quiz = []
    for i, item in enumerate(quiz):
        shown[f"quiz[{i}].question"] = str(item.get("question", ""))
        shown[f"quiz[{i}].explanation"] = str(item.get("explanation", ""))
        options = item.get("options") or []
        for j, option in enumerate(options):
            shown[f"quiz[{i}].options[{j}]"] = str(option)
        feedback = item.get("feedback")
        if not isinstance(feedback, list):
            missing.append(f"quiz[{i}] ({item.get('kind')}) has no 'feedback' list beside its options")
            continue
        if len(feedback) != len(options):
            missing.append(
                f"quiz[{i}] ({item.get('kind')}) has {len(feedback)} feedback texts for {len(options)} options"
            )
        for j, text in enumerate(feedback):
            shown[f"quiz[{i}].feedback[{j}]"] = str(text)
    return shown, missing


def _problem(cell: str, where: str, text: str, claim: str, why: str) -> str:
    head = f"[{cell}] {where}: {text!r}" if cell else f"{where}: {text!r}"
    if claim:
        return f"{head}\n    claim {claim}\n    -> {why}"
    return f"{head}\n    -> {why}"


def check_document(doc: dict[str, Any], cell: str = "") -> list[str]:
    """Every problem of one trace document: false or unreadable claims, unbacked or negative durations, texts
    without claims, claims whose text is not what the document shows, steps that show no recorded event."""
    problems: list[str] = []
    label = cell or str(doc.get("trace_id", ""))

    for side, target in (("", doc), ("compared_with.", _side(doc, "other"))):
        for n in range(1, len(_steps(target)) + 1):
            index, why = step_event(target, n)
            if index is None:
                problems.append(_problem(label, f"{side}steps", "", "", why))

    shown, missing = shown_texts(doc)
    for what in missing:
        problems.append(_problem(label, "document", "", "", what))

    entries = doc.get("claims")
    if not isinstance(entries, list):
        problems.append(
            _problem(label, "document", "", "", "the document has no 'claims' list: no text can be checked")
        )
        entries = []

    by_where: dict[str, list[str]] = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(_problem(label, f"claims[{k}]", "", "", f"not an object: {entry!r}"))
            continue
        where = str(entry.get("where", f"claims[{k}]"))
        text = entry.get("text")
        claims = entry.get("claims")
        if not isinstance(text, str) or not text.strip():
            problems.append(_problem(label, where, str(text), "", "the entry has no text"))
            text = "" if not isinstance(text, str) else text
        by_where.setdefault(where, []).append(text)
        if not isinstance(claims, list) or not claims:
            problems.append(_problem(label, where, text, "", "the text carries no claim"))
            claims = []
        for bad in negative_durations(text):
            problems.append(_problem(label, where, text, "", f"shows a negative duration {bad!r}"))
        values: list[Backing] = []
        for claim in claims:
            try:
                result = verdict(claim, doc)
                values.extend(claim_values(claim))
            except ClaimError as err:
                problems.append(_problem(label, where, text, str(claim), f"CHECKER ERROR: {err}"))
                continue
            if not result.ok:
                problems.append(_problem(label, where, text, claim, result.why))
        unbacked = [d for d in durations(text) if not backed(d, values)]
        if unbacked:
            written = ", ".join(f"{d.written!r} ({d.ms:g} ms)" for d in unbacked)
            near = ", ".join(f"{b.ms:g}±{b.tol:g}" for b in values) or "none"
            why = f"the duration(s) {written} backed by no claim (values the claims vouch for: {near})"
            problems.append(_problem(label, where, text, "", why))

    for where, text in shown.items():
        for bad in negative_durations(text):
            if where not in by_where:
                problems.append(_problem(label, where, text, "", f"shows a negative duration {bad!r}"))
        if not isinstance(doc.get("claims"), list):
            continue
        texts = by_where.get(where)
        if texts is None:
            problems.append(_problem(label, where, text, "", "the text is shown but has no entry in 'claims'"))
        elif text not in texts and text not in (" ".join(texts), "".join(texts)):
            problems.append(
                _problem(label, where, text, "", f"'claims' holds another text for it: {' | '.join(texts)!r}")
            )
    return problems
