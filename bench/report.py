"""Shared pieces of the benchmarks: percentiles, the machine they ran on, and a rich table."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

from rich.table import Table


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method), from at least two values."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def machine() -> str:
    """One line naming where the figures came from, for BENCHMARKS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A table whose first column is left-aligned and the rest (figures) right-aligned."""
    result = Table(title=title, caption=machine())
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result
