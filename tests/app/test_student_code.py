"""The student's files are the code that runs, and nothing else: no recording, and every step lights one of their
lines (the live matrix in test_truth.py checks every mode, fault and server; here the paths it does not reach)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from flask import Flask

from sandbox import create_app
from sandbox.app import emails
from sandbox.render.document import report, trace_document
from sandbox.smtp.sink import Sink
from sandbox.strategies.modes import ENDPOINTS, SEND_MODES
from tests.app.student_lines import PROJECT, STUDENT_DIR, unlit_events
from tests.conftest import free_port, record_trace

STUDENT_FILES = sorted((PROJECT / STUDENT_DIR).glob("*.py"))
# What watches, records or decides fates: the student's files must not know it exists.
FORBIDDEN = (
    "sandbox.trace",
    "sandbox.smtp.faults",
    "sandbox.smtp.failures",
    "sandbox.strategies.delivery",
    "sandbox.strategies.outbox",
    "sandbox.strategies.workers",
)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", STUDENT_FILES, ids=lambda p: p.name)
def test_the_students_files_import_nothing_that_records(path: Path) -> None:
    found = imports(path)
    assert not [name for name in found if name.startswith(FORBIDDEN)], found
    names = {n.id for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Attribute)}
    assert not [name for name in names if "trace" in name.lower() or "record" in name.lower()], names


def test_every_mode_has_a_route_of_the_students() -> None:
    assert sorted(ENDPOINTS.values()) == sorted(SEND_MODES)
    for endpoint in ENDPOINTS:
        assert inspect.getsourcefile(getattr(emails, endpoint.split(".")[1])) == str(
            PROJECT / STUDENT_DIR / "emails.py"
        )


@pytest.mark.parametrize("route", sorted(ENDPOINTS, key=ENDPOINTS.get), ids=lambda e: ENDPOINTS[e])
def test_each_send_path_reads_in_under_40_lines(route: str) -> None:
    """The route, the message it builds, and the worker it hands the message to, if any."""
    view = getattr(emails, route.split(".")[1])
    source = inspect.getsource(view)
    called = [
        getattr(emails, name) for name in dir(emails) if name in source and inspect.isfunction(getattr(emails, name))
    ]
    workers = [f for f in called if f is not view and f.__module__ == emails.__name__]
    lines = sum(len(inspect.getsource(f).splitlines()) for f in [view, *workers])
    assert lines < 40, f"{ENDPOINTS[route]}: {lines} lines"


def lit(trace_app: Flask, mode: str, **fields: str) -> tuple[dict, list[str]]:
    trace = record_trace(trace_app, mode, **fields)
    doc = trace_document(report(trace))
    return doc, unlit_events(doc, mode)


def test_a_refused_pool_and_an_unreachable_queue_light_the_students_lines(sink: Sink) -> None:
    config = {"MAIL_SUPPRESS_SEND": False, "SANDBOX_POOL_BACKLOG": 0, "SANDBOX_POOL_SIZE": 1}
    app = create_app(config | {"SANDBOX_QUEUE_URL": f"redis://127.0.0.1:{free_port()}/0"}, sink=sink)
    doc, problems = lit(app, "pool")
    assert [e for e in doc["events"] if e["kind"] == "pool.full"] and not problems, problems
    doc, problems = lit(app, "queue")
    assert [e for e in doc["events"] if e["kind"] == "queue.unavailable"] and not problems, problems


def test_bad_input_lights_the_line_that_read_it(app: Flask) -> None:
    doc, problems = lit(app, "thread", to="not an address")
    [answer] = [e for e in doc["events"] if e["kind"] == "response.sent"]
    assert answer["details"]["status"] == 400 and not problems, problems
