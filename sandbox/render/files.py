"""Write a run's reports to a folder: index.html, and per mode .html, .md, .json and .perfetto.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sandbox.explorer import Exploration
from sandbox.render.document import TraceReport, trace_document
from sandbox.render.html import render_exploration_page, render_index_page, render_trace_page
from sandbox.render.markdown import render_exploration_markdown, render_trace_markdown
from sandbox.render.perfetto import perfetto_trace


def write_reports(results: Sequence[TraceReport], out_dir: Path) -> list[Path]:
    """Write every file; returns their paths, index first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write(out_dir / "index.html", render_index_page(results))]
    for result in results:
        mode = result.trace.mode
        written.append(_write(out_dir / f"{mode}.html", render_trace_page(result, back_link="index.html")))
        written.append(_write(out_dir / f"{mode}.md", render_trace_markdown(result)))
        written.append(_write(out_dir / f"{mode}.json", json.dumps(trace_document(result), indent=2)))
        written.append(_write(out_dir / f"{mode}.perfetto.json", json.dumps(perfetto_trace(result))))
    return written


def write_exploration(exploration: Exploration, out_dir: Path) -> list[Path]:
    """``explore-<scenario>.html``, ``.md`` and ``.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"explore-{exploration.scenario}"
    return [
        _write(stem.with_suffix(".html"), render_exploration_page(exploration)),
        _write(stem.with_suffix(".md"), render_exploration_markdown(exploration)),
        _write(stem.with_suffix(".json"), json.dumps(exploration.to_dict(), indent=2)),
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
