"""A desk per visitor: each browser's own sink settings, mailbox, traces and delivery counts, so that one sandbox can
serve a whole class without one student's delay slider or dead server changing another student's sends.

A browser gets its desk the first time it asks for a page (a GET that prefers HTML): a random id in Flask's signed
session cookie (no login, nothing typed). Every later request from that browser, the JSON API and the sends
included, works at that desk. Clients without the cookie (curl, scripts, ``run_demo.py``) share the default desk,
so the API behaves for them as it always did; its traces are the scripts', so any desk may open them by their link.
The signing key is kept in ``instance/`` so desks outlive a restart.

A desk nobody used for ``DESK_IDLE_S`` is cleaned up (its port closed, its settings and mail forgotten, its traces
left to the store), and at most ``MAX_DESKS`` are kept (the least recently used goes first): the memory the desks can
take is bounded. In class mode a desk also carries what the instructor's view shows of it (a name, sends by mode,
quiz answers), which the store keeps under the class's join code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, redirect, request, session, url_for
from werkzeug.exceptions import HTTPException

from sandbox.smtp.sink import DESK_MAILBOX_SIZE, MAILBOX_SIZE
from sandbox.strategies import counting, watched_pool
from sandbox.trace.store import KEPT_DAYS
from sandbox.trace.tracer import DEFAULT_DESK, DESK_TRACES_KEPT, TRACES_KEPT, write_in_background

DESK_IDLE_S = 2 * 3600  # a desk unused this long is cleaned up
MAX_DESKS = 300
SWEEP_EVERY_S = 60.0
COOKIE_NAME = "sandbox_desk"
COOKIE_DAYS = 7
DESK_ID = re.compile(r"[0-9a-f]{16}")
SECRET_FILE = "secret_key"
ANSWERS_KEPT = 500  # per desk: a whole course of quizzes several times over
# In class mode, what a browser may open before it has joined: the join form, the instructor's view, the files.
OPEN_BEFORE_JOINING = {
    "classroom.join",
    "classroom.class_page",
    "classroom.class_json",
    "classroom.class_csv",
    "static",
    "sandbox.ping",
}

if TYPE_CHECKING:
    from sandbox.web.answers import Answer

bp = Blueprint("desks", __name__)


@dataclass
class Desk:
    """One visitor's desk as the instructor sees it: the name typed when joining (class mode), the sends by mode,
    and the first answer to each question of each trace."""

    id: str
    created: float
    last_seen: float
    name: str | None = None
    class_code: str | None = None  # the join code it joined with (class mode): whose class it belongs to
    sends: Counter[str] = field(default_factory=Counter)
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)  # (trace id, quiz kind) -> answer
    recent: deque[float] = field(default_factory=deque, repr=False)  # when its sends of the last minute started
    last_work: float | None = None  # time.time() of its last send or quiz answer (an open page's pings are not work)
    solved: set[str] = field(default_factory=set)  # the scheduler's challenges solved here (sandbox.challenges)

    def copy(self) -> Desk:
        """A copy another thread may read while this desk changes."""
        return dataclasses.replace(
            self, sends=Counter(self.sends), answers=dict(self.answers), recent=deque(), solved=set(self.solved)
        )

    def record(self) -> dict[str, Any]:
        """What the store keeps of the desk for the instructor, so a class can be reopened after a restart."""
        return {
            "id": self.id,
            "name": self.name,
            "sends": dict(self.sends),
            "answers": [a.to_dict() for a in self.answers.values()],
            "last_work": self.last_work,
            "solved": sorted(self.solved),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Desk:
        """A desk as the store kept it (not seen by this process: no page open here)."""
        from sandbox.web.answers import Answer

        answers = [Answer(**{**a, "offered": tuple(a["offered"])}) for a in record["answers"]]
        return cls(
            record["id"],
            0.0,
            -math.inf,
            record["name"],
            sends=Counter(record["sends"]),
            answers={(a.trace_id, a.kind): a for a in answers},
            last_work=record["last_work"],
            solved=set(record.get("solved", ())),
        )


class TooManySends(HTTPException):
    """429: the desk started its allowance of sends in the last minute; ``Retry-After`` says when one frees up."""

    code = 429

    def __init__(self, limit: int, retry_after_s: float) -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"your desk started {limit} sends in the last minute, its share of the sink for a class; the next may "
            f"start in {self.retry_after_s} s"
        )

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Retry-After", str(self.retry_after_s))]


class Desks:
    """The desks in use, and what forgetting one means: its sink port and mailbox, its traces, its counts."""

    def __init__(self, app: Flask, idle_s: float = DESK_IDLE_S, max_desks: int = MAX_DESKS) -> None:
        self._app = app
        self.idle_s = idle_s
        self.max_desks = max_desks
        self._desks: dict[str, Desk] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()
        self._dirty: set[str] = set()  # desks of a class whose record the store does not have yet
        self.store = app.extensions["sandbox.tracer"].store
        if self.store is not None:
            write_in_background(self)

    def touch(self, desk_id: str, name: str | None = None, class_code: str | None = None) -> None:
        """``desk_id`` was used now (a desk from before a restart comes back, with the sink's starting settings);
        ``name`` is the one its visitor typed and ``class_code`` the join code, if any."""
        now = time.monotonic()
        earlier = self._stored(desk_id, class_code) if desk_id not in self._desks else None
        with self._lock:
            desk = self._desks.get(desk_id)
            if desk is None:
                desk = self._desks[desk_id] = (
                    dataclasses.replace(earlier, created=now) if earlier else Desk(desk_id, now, now)
                )
                crowded = len(self._desks) > self.max_desks
            else:
                crowded = False
            desk.last_seen = now
            if (name and name != desk.name) or (class_code and class_code != desk.class_code):
                desk.name, desk.class_code = name or desk.name, class_code or desk.class_code
                self._dirty.add(desk_id)
        if crowded or now - self._swept > SWEEP_EVERY_S:
            self.sweep(now)

    def sweep(self, now: float | None = None) -> list[str]:
        """Forget the desks idle for ``idle_s``, then the least recently used beyond ``max_desks``; returns them.
        A class desk's record is written to the store first: the instructor's view keeps it."""
        self.flush()
        now = time.monotonic() if now is None else now
        with self._lock:
            self._swept = now
            by_use = sorted(self._desks.values(), key=lambda d: d.last_seen)
            idle = [d.id for d in by_use if now - d.last_seen > self.idle_s]
            crowd = [d.id for d in by_use if d.id not in idle][: max(0, len(by_use) - len(idle) - self.max_desks)]
            gone = idle + crowd
            for desk_id in gone:
                del self._desks[desk_id]
        for desk_id in gone:
            self._forget(desk_id, close=True)
        return gone

    def reset(self, desk_id: str) -> None:
        """Start the desk afresh: the sink's starting settings, no mail, no traces, no counts. What the instructor's
        view holds (the sends by mode, the quiz answers) stays: a fresh start is not a way to take an answer back."""
        self._forget(desk_id, close=False)

    def get(self, desk_id: str) -> Desk | None:
        with self._lock:
            desk = self._desks.get(desk_id)
            return None if desk is None else desk.copy()

    def note_send(self, desk_id: str, mode: str, per_minute: int) -> None:
        """Count a send the desk starts now, or refuse it (TooManySends) if the desk started ``per_minute`` in the
        last minute. The default desk (scripts, the demo's bursts) has no allowance to keep."""
        now = time.monotonic()
        with self._lock:
            desk = self._desks.get(desk_id)
            if desk is None:
                return
            recent = desk.recent
            while recent and now - recent[0] >= 60:
                recent.popleft()
            if len(recent) >= per_minute:
                raise TooManySends(per_minute, 60 - (now - recent[0]))
            recent.append(now)
            desk.sends[mode] += 1
            desk.last_work = time.time()
            self._dirty.add(desk_id)

    def answer(self, desk_id: str, answer: Answer) -> Answer:
        """Keep the desk's first answer to this question of this trace, and return it (the default desk, shared by
        anyone without a cookie, keeps none)."""
        with self._lock:
            desk = self._desks.get(desk_id)
            if desk is None:
                return answer
            kept = desk.answers.setdefault((answer.trace_id, answer.kind), answer)
            desk.last_work = time.time()
            self._dirty.add(desk_id)
            while len(desk.answers) > ANSWERS_KEPT:
                del desk.answers[next(iter(desk.answers))]
            return kept

    def solve(self, desk_id: str, challenge: str) -> None:
        """Keep that the desk solved ``challenge`` (the default desk keeps none)."""
        with self._lock:
            desk = self._desks.get(desk_id)
            if desk is not None and challenge not in desk.solved:
                desk.solved.add(challenge)
                desk.last_work = time.time()
                self._dirty.add(desk_id)

    def solved(self, desk_id: str) -> set[str]:
        with self._lock:
            desk = self._desks.get(desk_id)
            return set(desk.solved) if desk is not None else set()

    def all(self) -> list[Desk]:
        """A copy of every desk, for the instructor's view."""
        with self._lock:
            return [d.copy() for d in self._desks.values()]

    def _stored(self, desk_id: str, class_code: str | None) -> Desk | None:
        """The record a class desk left in the store (before a restart, or before it was cleaned up here): a student
        coming back carries on from it."""
        if not class_code or self.store is None:
            return None
        try:
            records = self.store.read_desks(class_code)
        except Exception:  # the store out of reach: the desk starts a new record
            return None
        record = next((r for r in records if r["id"] == desk_id), None)
        return None if record is None else dataclasses.replace(Desk.from_record(record), class_code=class_code)

    def flush(self) -> None:
        """Write the records of the class desks that changed (on the process's writer thread, off the request path);
        a store out of reach keeps them for the next time."""
        if self.store is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            by_class: dict[str, list[dict[str, Any]]] = {}
            for desk_id in dirty:
                desk = self._desks.get(desk_id)
                if desk is not None and desk.class_code:
                    by_class.setdefault(desk.class_code, []).append(desk.record())
        try:
            for class_code, records in by_class.items():
                self.store.write_desks(class_code, records)
        except Exception:
            with self._lock:
                self._dirty |= dirty

    def of_class(self, class_code: str) -> list[Desk]:
        """The desks of the class that joined with ``class_code``: those seen by this process, and those the store
        kept (from before a restart, or cleaned up here after being idle)."""
        self.flush()
        with self._lock:
            live = {d.id: d.copy() for d in self._desks.values() if d.class_code == class_code}
        stored = self.store.read_desks(class_code) if self.store is not None else []
        return [*live.values(), *(Desk.from_record(r) for r in stored if r["id"] not in live)]

    def _forget(self, desk_id: str, close: bool) -> None:
        extensions = self._app.extensions
        sink = extensions.get("sandbox.sink")
        if sink is not None:
            if close:
                sink.close_desk(desk_id)
            else:
                sink.reset_desk(desk_id)
        extensions["sandbox.tracer"].drop_desk(desk_id, stored=not close)  # a reset forgets; idle ones stay stored
        extensions["sandbox.delivery"].forget_desk(desk_id)
        counting.forget_desk(desk_id)
        watched_pool.forget_desk(desk_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._desks)


def init_app(app: Flask) -> None:
    """The signed cookie (its key from ``instance/``), the registry, the hook that seats each request at its desk,
    and ``/api/desk``. Register before the routes whose hooks read the desk."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(Path(app.instance_path))
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=timedelta(days=COOKIE_DAYS),
    )
    app.extensions["sandbox.desks"] = Desks(app)
    app.register_blueprint(bp)


def secret_key(instance: Path) -> bytes:
    """The key that signs desk cookies, made once and kept in ``instance/`` (readable by its owner only), so a
    restart keeps every visitor at their desk. Two processes starting together agree on one key."""
    path = instance / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    instance.mkdir(parents=True, exist_ok=True)
    partial = instance / f".{SECRET_FILE}.{os.getpid()}.{threading.get_ident()}"
    partial.write_bytes(secrets.token_bytes(32))
    partial.chmod(0o600)
    try:
        os.link(partial, path)  # fails if another process made the key first: theirs is the one
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_bytes()


def current_desk() -> str:
    """The desk of this request (the default desk outside a request, or for a client without the cookie)."""
    return g.get("desk", DEFAULT_DESK)


def desks() -> Desks:
    return current_app.extensions["sandbox.desks"]


@bp.before_app_request
def seat_visitor() -> Response | None:
    """Read the desk from the cookie; a browser asking for a page without one gets a new desk, or in class mode the
    join form (and a client of the API that has not joined, a 401)."""
    desk_id = session.get("desk")
    if not (isinstance(desk_id, str) and DESK_ID.fullmatch(desk_id)):
        desk_id = None
        if current_app.config.get("SANDBOX_CLASS") and request.endpoint not in OPEN_BEFORE_JOINING:
            if wants_page():
                return redirect(url_for("classroom.join", next=request.full_path.rstrip("?")))
            abort(401, "join the class first: open /join in a browser and type the code on the projector")
        if wants_page() and not current_app.config.get("SANDBOX_CLASS"):
            desk_id = new_desk()
    g.desk = desk_id or DEFAULT_DESK
    if desk_id is not None:
        desks().touch(desk_id, session.get("name"), session.get("class"))
    return None


def new_desk() -> str:
    """Give this browser a desk of its own (in the signed cookie, kept a week)."""
    desk_id = secrets.token_hex(8)
    session["desk"] = desk_id
    session.permanent = True
    return desk_id


def join_desk(name: str) -> str:
    """Seat this browser under ``name``: at its desk if it has one (joining again renames it), else a new one."""
    desk_id = session.get("desk")
    if not (isinstance(desk_id, str) and DESK_ID.fullmatch(desk_id)):
        desk_id = new_desk()
    session["name"] = name
    session["class"] = current_app.config.get("SANDBOX_JOIN_CODE")
    desks().touch(desk_id, name, session["class"])
    return desk_id


def wants_page() -> bool:
    """A GET for a page (not the JSON API, not a send) from a client that prefers HTML to JSON: a browser."""
    if request.method != "GET" or request.path.startswith(("/api/", "/send-email/")):
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


@bp.get("/api/desk")
def desk_info() -> Response:
    return jsonify(describe_desk(current_desk()))


@bp.post("/api/desk/reset")
def reset_desk() -> Response:
    """Start this desk afresh; the default desk (shared by every client without a cookie) is reset the same way."""
    desk = current_desk()
    desks().reset(desk)
    return jsonify(describe_desk(desk))


def describe_desk(desk: str) -> dict[str, Any]:
    """What ``GET /api/desk`` says: whose desk this is, what it keeps, and when it would be cleaned up."""
    extensions = current_app.extensions
    sink = extensions.get("sandbox.sink")
    own = desk != DEFAULT_DESK
    seated = desks().get(desk)
    return {
        "own": own,
        "name": seated.name if seated is not None else None,
        "traces": extensions["sandbox.tracer"].count(desk),
        "messages": len(sink.mailbox_of(desk).messages()) if sink is not None else None,
        "keeps": {
            "traces": DESK_TRACES_KEPT if own else TRACES_KEPT,
            "messages": DESK_MAILBOX_SIZE if own else MAILBOX_SIZE,
        },
        "idle_cleanup_s": desks().idle_s if own else None,
        "kept_days": KEPT_DAYS if extensions["sandbox.tracer"].store is not None else 0,
    }
