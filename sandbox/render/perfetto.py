"""Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing): one track per thread.

Spans ("X" events) come from the same timeline as the SVG; every recorded event is also an instant ("i") on the
track of the thread that recorded it, with its details as arguments. Times are microseconds from the request.
"""

from __future__ import annotations

from typing import Any

from sandbox.render.document import TraceReport

PID = 1


def perfetto_trace(result: TraceReport) -> dict[str, Any]:
    trace = result.trace
    start = trace.started_ns
    tids: dict[str, int] = {}
    for event in trace.events:
        tids.setdefault(event.thread, event.thread_id)
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": PID, "name": "process_name", "args": {"name": f"concurrency sandbox ({trace.mode})"}}
    ]
    for order, (name, tid) in enumerate(tids.items()):
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": name}})
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": order}})
    for lane in result.timeline.lanes:
        tid = tids.get(lane.thread)
        if tid is None:
            continue
        for span in lane.spans:
            events.append(
                {
                    "ph": "X",
                    "pid": PID,
                    "tid": tid,
                    "name": span.label,
                    "cat": span.kind,
                    "ts": _us(span.start_ms * 1e6),
                    "dur": _us((span.end_ms - span.start_ms) * 1e6),
                }
            )
    for event in trace.events:
        events.append(
            {
                "ph": "i",
                "s": "t",
                "pid": PID,
                "tid": event.thread_id,
                "name": event.kind,
                "cat": event.kind.split(".")[0],
                "ts": _us(event.t_ns - start),
                "args": {
                    **{k: _plain(v) for k, v in event.details.items()},
                    "source": f"{event.file}:{event.line} {event.function}",
                },
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "trace_id": trace.trace_id,
            "mode": trace.mode,
            "server": result.facts.server_kind,
            "delay_s": trace.delay_s,
        },
    }


def _us(nanoseconds: float) -> float:
    return round(nanoseconds / 1000, 3)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
