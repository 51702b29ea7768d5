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
