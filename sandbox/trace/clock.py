"""Wall-clock timestamps as the JSON API shows them (durations use ``time.perf_counter_ns`` instead)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_timestamp() -> str:
    """Now, as ISO 8601 in UTC with milliseconds: ``2026-11-25T16:43:48.255+00:00``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def format_ms(value: float | None) -> str:
    """A duration for people: ``3.8 ms`` below a second, ``2.02 s`` above, ``-`` when there is none."""
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def shown_ms(value: float, decimals: int | None = None) -> tuple[str, float]:
    """A duration as text and the rounding of that text in ms (what a claim about it may be off by).

    ``decimals`` forces milliseconds with that many decimals, for times that must be told apart.
    """
    if value < 0:
        raise ValueError(f"a duration cannot be negative ({value} ms)")
    if decimals is None:
        if value >= 1000:
            return f"{value / 1000:.2f} s", 5.0
        decimals = 1
    return f"{value:.{decimals}f} ms", 0.5 * 10**-decimals


def shown_gap(value: float) -> tuple[str, float]:
    """A time between two events, with enough decimals that a gap that exists never reads as zero."""
    if value >= 0.05:
        return shown_ms(value)
    return shown_ms(value, 2 if value >= 0.005 else 3)
