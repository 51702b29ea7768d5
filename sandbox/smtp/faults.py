"""What the sink does wrong on purpose: delays, jitter, rejections, dropped connections and lost replies.

One immutable :class:`Faults` value holds the faults a sink can start with (each is also a setting and a flag, see
:mod:`sandbox.config`); one immutable :class:`Receiving` value holds what the sink does with an email it has taken in:
lose its 250 after storing it, or recognise a copy it already holds by its Message-ID. Changing a setting while the
sink runs builds new values and swaps them in whole, so a session never sees half of a change. With a ``seed`` the
random choices repeat run after run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ConfigError

REJECT_STAGES = ("MAIL", "RCPT", "DATA")
MAX_DELAY_S = 60.0


@dataclass(frozen=True)
class Faults:
    delay_s: float = 0.0
    greet_delay_s: float = 0.0
    jitter_s: float = 0.0
    reject_probability: float = 0.0
    reject_code: int = 451
    reject_stage: str = "RCPT"
    disconnect_probability: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("delay_s", "greet_delay_s", "jitter_s"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_DELAY_S:
                raise ConfigError(f"{name} must be between 0 and {MAX_DELAY_S:g} seconds, not {value:g}")
        for name in ("reject_probability", "disconnect_probability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be between 0 and 1, not {value:g}")
        if not (400 <= self.reject_code <= 499 or 500 <= self.reject_code <= 599):
            raise ConfigError(f"reject_code must be an SMTP error code, 4xx or 5xx, not {self.reject_code}")
        if self.reject_stage not in REJECT_STAGES:
            raise ConfigError(f"reject_stage must be one of {', '.join(REJECT_STAGES)}, not {self.reject_stage!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changed(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` from a JSON body, each checked for its type and range; errors change nothing."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ConfigError(f"unknown sink setting(s): {', '.join(unknown)}; changeable: {', '.join(fields)}")
        typed = {name: _typed(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **typed)


@dataclass(frozen=True)
class Receiving:
    """What the sink does once it has the whole message: the at-least-once lesson's two halves.

    ``lose_reply_probability``: the chance that the sink stores the email and then hangs up without its 250, so the
    sender cannot tell that it arrived (a retry then delivers a second copy). ``dedupe_message_id``: an idempotent
    receiver, which answers 250 to a message whose Message-ID it already holds but stores nothing new.
    """

    lose_reply_probability: float = 0.0
    dedupe_message_id: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.lose_reply_probability <= 1:
            raise ConfigError(f"lose_reply_probability must be between 0 and 1, not {self.lose_reply_probability:g}")
        if not isinstance(self.dedupe_message_id, bool):
            raise ConfigError("dedupe_message_id must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changed(self, changes: Mapping[str, Any]) -> Receiving:
        """A copy with ``changes`` from a JSON body, each checked for its type and range; errors change nothing."""
        unknown = sorted(set(changes) - set(RECEIVING_FIELDS))
        if unknown:
            raise ConfigError(f"unknown receiving setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **{name: _typed(name, value) for name, value in changes.items()})


RECEIVING_FIELDS = tuple(f.name for f in dataclasses.fields(Receiving))
FAULT_FIELDS = tuple(f.name for f in dataclasses.fields(Faults))


def changed_settings(faults: Faults, receiving: Receiving, changes: Mapping[str, Any]) -> tuple[Faults, Receiving]:
    """Both values with ``changes`` (a ``PUT /api/sink`` body, ``listening`` and the address taken out) applied,
    each key to the value that holds it; an unknown key or a bad value raises ConfigError and changes nothing."""
    known = (*FAULT_FIELDS, *RECEIVING_FIELDS)
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ConfigError(f"unknown sink setting(s): {', '.join(unknown)}; changeable: {', '.join(known)}")
    new_faults = faults.changed({k: v for k, v in changes.items() if k in FAULT_FIELDS})
    new_receiving = receiving.changed({k: v for k, v in changes.items() if k in RECEIVING_FIELDS})
    return new_faults, new_receiving


def _typed(name: str, value: Any) -> Any:
    if name == "dedupe_message_id":
        if isinstance(value, bool):
            return value
        raise ConfigError("dedupe_message_id must be true (store one copy per Message-ID) or false")
    if name == "seed":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError("seed must be a whole number, or null for fresh randomness")
    if name == "reject_stage":
        if isinstance(value, str):
            return value.upper()
        raise ConfigError(f"reject_stage must be one of {', '.join(REJECT_STAGES)}")
    if name == "reject_code":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError("reject_code must be a whole number such as 451 or 550")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number")
    return float(value)


def reject_reply(code: int) -> str:
    """The SMTP reply a rejection sends: temporary (4xx, worth retrying) or permanent (5xx, final)."""
    if code < 500:
        return f"{code} 4.3.0 Temporary failure injected by the sandbox: try again later"
    return f"{code} 5.7.1 Permanent failure injected by the sandbox: message refused"


def describe_faults(faults: Faults, receiving: Receiving | None = None) -> str:
    """One line for a banner: the delay, and any other fault or receiving rule that is switched on."""
    parts = [f"delay {faults.delay_s:g} s"]
    if faults.greet_delay_s:
        parts.append(f"greeting delay {faults.greet_delay_s:g} s")
    if faults.jitter_s:
        parts.append(f"jitter up to {faults.jitter_s:g} s")
    if faults.reject_probability:
        parts.append(f"rejects {faults.reject_probability:.0%} at {faults.reject_stage} with {faults.reject_code}")
    if faults.disconnect_probability:
        parts.append(f"drops {faults.disconnect_probability:.0%} of connections at DATA")
    if receiving is not None and receiving.lose_reply_probability:
        parts.append(
            f"loses {receiving.lose_reply_probability:.0%} of its 250 replies (stores the email, then hangs up)"
        )
    if receiving is not None and receiving.dedupe_message_id:
        parts.append("stores one copy per Message-ID (a repeat gets 250 and is not stored)")
    if faults.seed is not None:
        parts.append(f"seed {faults.seed}")
    return ", ".join(parts)


def describe_sink_settings(settings: Mapping[str, Any]) -> str:
    """Settings as ``GET /api/sink`` shows them, in words: a lesson step's panel and the pages' "Sink:" line."""
    if not settings["listening"]:
        return "not listening: every connection is refused, as by a dead server"
    faults = Faults(**{key: settings[key] for key in FAULT_FIELDS})
    return describe_faults(faults, Receiving(**{key: settings[key] for key in RECEIVING_FIELDS}))
