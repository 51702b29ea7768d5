"""Traces outlive the process and cross processes: the SQLite and Redis stores, the tracer's writer, and a restart."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox import create_app
from sandbox.client import call
from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from sandbox.trace.store import KEPT_DAYS, RedisStore, SqliteStore, TraceStore
from sandbox.trace.tracer import Tracer
from tests.conftest import settings_for_tests

PAGE = {"Accept": "text/html"}


def header(trace_id: str, desk: str = "default", started_at: float | None = None) -> dict:
    return {
        "trace_id": trace_id,
        "mode": "sync",
        "server": "threaded",
        "delay_s": 0.0,
        "settings": {},
        "versions": {},
        "comparison": None,
        "desk": desk,
        "started_at": time.time() if started_at is None else started_at,
    }


def event(t_ns: int, kind: str) -> tuple:
    return (t_ns, "MainThread", 1, kind, {"status": 200, "pair": (1, 2)}, "sandbox/app/emails.py", 10, "send")


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TraceStore:
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "traces.db")
    url = request.getfixturevalue("redis_url").replace("/0", "/3")
    redis_store = RedisStore(url)
    redis_store.redis.flushdb()
    return redis_store


def test_a_store_keeps_headers_events_by_writer_and_outcomes(store: TraceStore) -> None:
    store.write("web", [header("a", desk="ada")], [("a", event(1, "request.received"))])
    store.write("consumer", [], [("a", event(3, "worker.finished")), ("a", event(2, "worker.started"))])
    found, events = store.read("a")
    assert found == header("a", desk="ada") | {"started_at": found["started_at"]}
    assert sorted(e[3] for e in events) == ["request.received", "worker.finished", "worker.started"]
    assert events[0][4] == {"status": 200, "pair": [1, 2]}, "details come back as JSON gives them"
    assert [e[3] for e in store.read("a", skip_writer="web")[1]] == ["worker.finished", "worker.started"]
    assert store.read("unknown") == (None, [])
    start = store.outcomes_end()
    store.write_outcome(("a", "queue", "delivered", ""))
    store.write_outcome(("b", "queue", "failed", "550 no"))
    outcomes, cursor = store.outcomes_after(start)
    assert outcomes == [("a", "queue", "delivered", ""), ("b", "queue", "failed", "550 no")]
    assert store.outcomes_after(cursor) == ([], cursor) and store.outcomes_end() == cursor
    store.write("web", [header("b", desk="bob")], [("b", event(1, "request.received"))])
    store.delete_desk("ada")
    assert store.read("a") == (None, []) and store.read("b")[0] is not None


def test_sqlite_drops_traces_older_than_a_week_when_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    SqliteStore(path).write(
        "w",
        [header("old", started_at=time.time() - KEPT_DAYS * 86400 - 60), header("new")],
        [("old", event(1, "x")), ("new", event(1, "x"))],
    )
    reopened = SqliteStore(path)
    assert reopened.read("old") == (None, []) and reopened.read("new")[0] is not None


def test_the_tracer_writes_in_batches_and_adds_what_other_processes_recorded(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "traces.db")
    web, consumer = Tracer(), Tracer()
    web.keep_in(store)
    web.shared = True  # as the web process runs with an external consumer
    consumer.keep_in(store)
    consumer.adopt = True  # an external queue consumer: it did not start the trace
    web.start("t1", "queue", "threaded", 0.0, {}, desk="ada")
    web.record("t1", "request.received")
    consumer.record("t1", "worker.started")
    consumer.record("t1", "worker.finished")
    assert [e.kind for e in web.get("t1").events] == ["request.received"], "nothing written yet"
    web.flush()
    consumer.flush()
    merged = web.get("t1")
    assert [e.kind for e in merged.events] == ["request.received", "worker.started", "worker.finished"]
    assert web.get("t1", desk="bob") is None and web.get("t1", desk="ada") is not None
    restarted = Tracer()
    restarted.keep_in(store)
    again = restarted.get("t1", desk="ada")
    assert again is not None and again.mode == "queue" and len(again.events) == 3 and again.desk == "ada"
    assert restarted.get("t1", desk="bob") is None
    assert consumer.get("t1") is not None, "the consumer reads the web process's header back"


def test_a_store_out_of_reach_loses_no_event(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    store = SqliteStore(path)
    tracer = Tracer()
    tracer.keep_in(store)
    tracer.start("t1", "sync", "threaded", 0.0, {})
    tracer.record("t1", "request.received")
    db = sqlite3.connect(path)
    db.execute("BEGIN EXCLUSIVE")  # another process holds the file
    store._connection().db.execute("PRAGMA busy_timeout = 50")
    tracer.flush()  # fails, logged once, kept
    db.rollback()
    tracer.record("t1", "response.sent")
    tracer.flush()
    assert [e[3] for e in store.read("t1")[1]] == ["request.received", "response.sent"]


def test_a_restart_keeps_the_traces_and_their_pages(tmp_path: Path) -> None:
    settings = settings_for_tests(delay_s=0, store_url=f"sqlite:///{tmp_path}/traces.db")
    with Sandbox(settings) as first:
        sent = [call(f"{first.url}send-email/{mode}", "POST", {}).body["trace_id"] for mode in ("sync", "thread")]
        assert first.delivery.wait_settled(10)
        before = [call(f"{first.url}api/traces/{trace_id}").body for trace_id in sent]
    with Sandbox(settings) as second:
        assert second.tracer.count() == 0, "a new process: nothing in memory"
        after = [call(f"{second.url}api/traces/{trace_id}").body for trace_id in sent]
        with urllib.request.urlopen(f"{second.url}traces/{sent[1]}", timeout=10) as page:
            assert page.status == 200 and b"Step through" in page.read()
    for old, new in zip(before, after, strict=True):
        assert json.dumps(new["events"]) == json.dumps(old["events"]), "the same events"
        assert (new["mode"], new["outcome"], new["response_ms"], new["accepted_ms"]) == (
            old["mode"],
            old["outcome"],
            old["response_ms"],
            old["accepted_ms"],
        )
        # What else the web server did then lived in the stopped process's log: the restored page claims nothing
        # about it, rather than "no other requests".
        assert old["server"]["observed"] and not new["server"]["observed"]
        assert len(new["steps"]) == len(old["steps"])


def test_a_desks_trace_survives_a_restart_for_that_desk_only(tmp_path: Path, sink: Sink) -> None:
    config = {"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_STORE_URL": f"sqlite:///{tmp_path}/t.db"}
    app = create_app(config, sink=sink)
    ada = app.test_client()
    ada.get("/", headers=PAGE)
    trace_id = ada.post("/send-email/sync", json={}).get_json()["trace_id"]
    app.extensions["sandbox.tracer"].flush()
    restarted = create_app(config, sink=sink)
    again, other = restarted.test_client(), restarted.test_client()
    again.set_cookie("sandbox_desk", ada.get_cookie("sandbox_desk").value)
    other.get("/", headers=PAGE)
    assert again.get(f"/traces/{trace_id}", headers=PAGE).status_code == 200
    assert other.get(f"/traces/{trace_id}", headers=PAGE).status_code == 404
    again.post("/api/desk/reset")
    assert again.get(f"/api/traces/{trace_id}").status_code == 404, "a fresh start forgets the stored traces too"
