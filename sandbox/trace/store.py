"""Where traces outlive the process and cross processes: SQLite in ``instance/`` by default, Redis by URL.

The tracer keeps recording in memory (one lock, one append); a writer thread copies what is new to the store a few
times a second, in one transaction, off the request path. Each process writes under its own writer id, so the web
process can add to a trace it holds the events another process recorded for it (a queue consumer run by
``huey_consumer``), and a trace no process holds any more (after a restart) is read back whole.

The store also carries the fate of each email sent by another process (``outcomes``), so the web process's
delivery log, and ``/api/stats``, learn what an external consumer did; and, in class mode, each desk's record for the
instructor (its name, sends by mode and quiz answers, under the class's join code), so a class can be reopened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from redis import Redis

from sandbox.config import REDIS_URL_PREFIXES, SQLITE_URL_PREFIX

KEPT_DAYS = 7  # traces older than this are dropped when a store opens

Header = dict[str, Any]  # trace_id, mode, server, delay_s, settings, versions, comparison, desk, started_at
RawEvent = tuple[Any, ...]  # (t_ns, thread, thread_id, kind, details, file, line, function)
Outcome = tuple[str, str, str, str]  # trace id, mode, outcome, error
DeskRecord = dict[str, Any]  # id, name, sends, answers, last_work: what the instructor's view shows of a desk


class TraceStore(Protocol):
    def write(self, writer: str, headers: Iterable[Header], events: Iterable[tuple[str, RawEvent]]) -> None: ...

    def read(self, trace_id: str, skip_writer: str | None = None) -> tuple[Header | None, list[RawEvent]]: ...

    def write_outcome(self, outcome: Outcome) -> None: ...

    def delete_desk(self, desk: str) -> None: ...

    def outcomes_after(self, cursor: int) -> tuple[list[Outcome], int]: ...

    def outcomes_end(self) -> int: ...

    def write_desks(self, class_code: str, records: Iterable[DeskRecord]) -> None: ...

    def read_desks(self, class_code: str) -> list[DeskRecord]: ...


def open_store(url: str | None, instance_path: str) -> TraceStore:
    """``redis://...`` for Redis, ``sqlite:///path`` for that file, nothing for ``instance/traces.db``."""
    if url and url.startswith(REDIS_URL_PREFIXES):
        return RedisStore(url)
    if url and not url.startswith(SQLITE_URL_PREFIX):
        raise ValueError(f"the trace store's URL must start with redis:// or sqlite:///, not {url!r}")
    path = urlsplit(url).path if url else os.path.join(instance_path, "traces.db")
    return SqliteStore(Path(path))


def _event_json(event: RawEvent) -> str:
    t_ns, thread, thread_id, kind, details, file, line, function = event
    return json.dumps([t_ns, thread, thread_id, kind, details, file, line, function], default=repr)


def _event_from(row: Iterable[Any]) -> RawEvent:
    t_ns, thread, thread_id, kind, details, file, line, function = row
    return (
        t_ns,
        thread,
        thread_id,
        kind,
        json.loads(details) if isinstance(details, str) else details,
        file,
        line,
        function,
    )


class SqliteStore:
    """One SQLite file (WAL, so readers never wait for the writer); a connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().db.executescript(  # executescript commits on its own: outside a transaction
            """
                CREATE TABLE IF NOT EXISTS traces (trace_id TEXT PRIMARY KEY, started_at REAL, header TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS events (trace_id TEXT NOT NULL, writer TEXT NOT NULL, event TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS events_of_trace ON events (trace_id);
                CREATE TABLE IF NOT EXISTS outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL,
                    mode TEXT NOT NULL, outcome TEXT NOT NULL, error TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS desks (class_code TEXT NOT NULL, desk_id TEXT NOT NULL, updated REAL,
                    record TEXT NOT NULL, PRIMARY KEY (class_code, desk_id));
                """
        )
        with self._connection() as db:
            old = time.time() - KEPT_DAYS * 86400
            db.execute(
                "DELETE FROM events WHERE trace_id IN (SELECT trace_id FROM traces WHERE started_at < ?)", (old,)
            )
            db.execute("DELETE FROM traces WHERE started_at < ?", (old,))
            db.execute("DELETE FROM desks WHERE updated < ?", (old,))

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return _Transaction(db)

    def write(self, writer: str, headers: Iterable[Header], events: Iterable[tuple[str, RawEvent]]) -> None:
        with self._connection() as db:
            db.executemany(
                "INSERT OR REPLACE INTO traces VALUES (?, ?, ?)",
                [(h["trace_id"], h["started_at"], json.dumps(h, default=repr)) for h in headers],
            )
            db.executemany("INSERT INTO events VALUES (?, ?, ?)", [(tid, writer, _event_json(e)) for tid, e in events])

    def read(self, trace_id: str, skip_writer: str | None = None) -> tuple[Header | None, list[RawEvent]]:
        with self._connection() as db:
            row = db.execute("SELECT header FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
            rows = db.execute(
                "SELECT event FROM events WHERE trace_id = ? AND writer IS NOT ?", (trace_id, skip_writer)
            ).fetchall()
        return (json.loads(row[0]) if row else None), [_event_from(json.loads(r[0])) for r in rows]

    def delete_desk(self, desk: str) -> None:
        mine = "SELECT trace_id FROM traces WHERE json_extract(header, '$.desk') = ?"
        with self._connection() as db:
            db.execute(f"DELETE FROM events WHERE trace_id IN ({mine})", (desk,))
            db.execute(f"DELETE FROM traces WHERE trace_id IN ({mine})", (desk,))

    def write_outcome(self, outcome: Outcome) -> None:
        with self._connection() as db:
            db.execute("INSERT INTO outcomes (trace_id, mode, outcome, error) VALUES (?, ?, ?, ?)", outcome)

    def outcomes_after(self, cursor: int) -> tuple[list[Outcome], int]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT id, trace_id, mode, outcome, error FROM outcomes WHERE id > ? ORDER BY id", (cursor,)
            ).fetchall()
        return [tuple(r[1:]) for r in rows], (rows[-1][0] if rows else cursor)

    def outcomes_end(self) -> int:
        with self._connection() as db:
            return db.execute("SELECT coalesce(max(id), 0) FROM outcomes").fetchone()[0]

    def write_desks(self, class_code: str, records: Iterable[DeskRecord]) -> None:
        now = time.time()
        with self._connection() as db:
            db.executemany(
                "INSERT OR REPLACE INTO desks VALUES (?, ?, ?, ?)",
                [(class_code, r["id"], now, json.dumps(r)) for r in records],
            )

    def read_desks(self, class_code: str) -> list[DeskRecord]:
        with self._connection() as db:
            rows = db.execute("SELECT record FROM desks WHERE class_code = ?", (class_code,)).fetchall()
        return [json.loads(row[0]) for row in rows]


class _Transaction:
    """``with`` a connection: BEGIN ... COMMIT (ROLLBACK on an error), the connection staying open for its thread."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN")
        return self.db

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


class RedisStore:
    """Keys under ``sandbox:trace:``, each expiring ``KEPT_DAYS`` after its last write."""

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url)
        self.ttl_s = KEPT_DAYS * 86400

    def write(self, writer: str, headers: Iterable[Header], events: Iterable[tuple[str, RawEvent]]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for header in headers:
            pipe.set(f"sandbox:trace:{header['trace_id']}", json.dumps(header, default=repr), ex=self.ttl_s)
            pipe.sadd(f"sandbox:desk-traces:{header['desk']}", header["trace_id"])
            pipe.expire(f"sandbox:desk-traces:{header['desk']}", self.ttl_s)
        for trace_id, event in events:
            key = f"sandbox:trace-events:{trace_id}"
            pipe.rpush(key, json.dumps([writer, _event_json(event)]))
            pipe.expire(key, self.ttl_s)
        pipe.execute()

    def read(self, trace_id: str, skip_writer: str | None = None) -> tuple[Header | None, list[RawEvent]]:
        header = self.redis.get(f"sandbox:trace:{trace_id}")
        events = []
        for item in self.redis.lrange(f"sandbox:trace-events:{trace_id}", 0, -1):
            writer, event = json.loads(item)
            if writer != skip_writer:
                events.append(_event_from(json.loads(event)))
        return (json.loads(header) if header else None), events

    def delete_desk(self, desk: str) -> None:
        members = self.redis.smembers(f"sandbox:desk-traces:{desk}")
        ids = [m.decode() for m in members]
        keys = [f"sandbox:{kind}:{trace_id}" for trace_id in ids for kind in ("trace", "trace-events")]
        self.redis.delete(f"sandbox:desk-traces:{desk}", *keys)

    def write_outcome(self, outcome: Outcome) -> None:
        self.redis.rpush("sandbox:outcomes", json.dumps(outcome))

    def outcomes_after(self, cursor: int) -> tuple[list[Outcome], int]:
        items = self.redis.lrange("sandbox:outcomes", cursor, -1)
        return [tuple(json.loads(item)) for item in items], cursor + len(items)

    def outcomes_end(self) -> int:
        return self.redis.llen("sandbox:outcomes")

    def write_desks(self, class_code: str, records: Iterable[DeskRecord]) -> None:
        key = f"sandbox:class:{class_code}"
        mapping = {r["id"]: json.dumps(r) for r in records}
        if mapping:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.ttl_s)
            pipe.execute()

    def read_desks(self, class_code: str) -> list[DeskRecord]:
        return [json.loads(value) for value in self.redis.hgetall(f"sandbox:class:{class_code}").values()]
