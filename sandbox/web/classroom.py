"""Class mode: a join code for the room, and the instructor's view of the class.

With ``--class`` a browser gets a desk only by typing the join code shown on the projector (and a name the
instructor will see); the JSON API answers 401 to a client that has not joined. ``/class`` is the instructor's:
it opens with the token printed at start (``?token=`` once, then the signed cookie remembers it, or an
``Authorization: Bearer`` header) and shows the live desks, every send of the class on one time axis, and the quiz
answers counted by the misconception each wrong option stands for. Nothing of one student is shown to another.
"""

from __future__ import annotations

import csv
import hmac
import io
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from sandbox.strategies.labels import BUTTON_LABELS
from sandbox.trace.facts import Facts
from sandbox.trace.store import KEPT_DAYS
from sandbox.trace.tracer import Trace
from sandbox.web.answers import Answer
from sandbox.web.desks import Desk, desks, join_desk

AXIS_LEFT, AXIS_RIGHT, ROW_HEIGHT = 200, 1000, 20  # the time axis's SVG units: names, then time
JOIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I/L to mistype from a projector
NAME_MAX = 40
bp = Blueprint("classroom", __name__)


def init_app(app: Flask) -> None:
    """In class mode, a join code and an instructor token (given by the environment, or made now)."""
    if app.config.get("SANDBOX_CLASS"):
        app.config["SANDBOX_JOIN_CODE"] = app.config.get("SANDBOX_JOIN_CODE") or new_join_code()
        app.config["SANDBOX_INSTRUCTOR_TOKEN"] = app.config.get("SANDBOX_INSTRUCTOR_TOKEN") or secrets.token_urlsafe(16)
    app.register_blueprint(bp)


def new_join_code() -> str:
    """Six characters a room can read off a projector, as ``ABC-DEF``."""
    letters = "".join(secrets.choice(JOIN_ALPHABET) for _ in range(6))
    return f"{letters[:3]}-{letters[3:]}"


def class_mode() -> bool:
    return bool(current_app.config.get("SANDBOX_CLASS"))


def same_code(typed: str, code: str) -> bool:
    """The code as typed, any case, spaces and dashes ignored; compared in constant time."""

    def bare(text: str) -> bytes:
        return re.sub(r"[^0-9A-Za-z]", "", text).upper().encode()

    return hmac.compare_digest(bare(typed), bare(code))


def safe_next(target: str | None) -> str:
    """Where to go after joining: a path of this site only, never another one (``//evil``, ``https://...``)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("sandbox.index")


@bp.route("/join", methods=["GET", "POST"])
def join() -> Any:
    """The join form; a right code and a name give this browser its desk."""
    if not class_mode():
        return redirect(url_for("sandbox.index"))
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("pages/join.html", next=target, error=None, name="")
    name = " ".join(request.form.get("name", "").split())[:NAME_MAX]
    if not same_code(request.form.get("code", ""), current_app.config["SANDBOX_JOIN_CODE"]):
        error, status = "That is not the code on the projector. Check it and try again.", 403
    elif not name:
        error, status = "Type a name, so your instructor can tell your desk from the others.", 400
    else:
        join_desk(name)
        return redirect(target, 303)
    return render_template("pages/join.html", next=target, error=error, name=name), status


def require_instructor() -> None:
    """401 without the token, 403 with a wrong one; a right ``?token=`` is remembered in the signed cookie."""
    if not class_mode():
        abort(404, "class mode is off: start the sandbox with --class to get a join code and the instructor's view")
    header = request.headers.get("Authorization", "")
    token = request.args.get("token") or (header[7:] if header.startswith("Bearer ") else None)
    expected = current_app.config["SANDBOX_INSTRUCTOR_TOKEN"]
    if token is not None:
        if not hmac.compare_digest(token.encode(), expected.encode()):
            abort(403, "that is not the instructor's token (it was printed when the sandbox started)")
        session["instructor"] = True
        return
    if session.get("instructor") is not True:
        response = jsonify(error="the instructor's view needs the token printed when the sandbox started")
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            response = Response(
                render_template(
                    "pages/error.html",
                    title="For the instructor",
                    message=(
                        "This page is the instructor's. Open the link with the token that was printed when the sandbox "
                        "started."
                    ),
                    hint="Students: your own page is the sandbox.",
                ),
                mimetype="text/html",
            )
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="class"'
        abort(response)


@bp.get("/class")
def class_page() -> Any:
    require_instructor()
    if "token" in request.args:  # remembered now: keep the token out of the address bar and the history
        return redirect(url_for("classroom.class_page"), 303)
    return render_template(
        "pages/class.html",
        summary=class_summary(),
        join_code=current_app.config["SANDBOX_JOIN_CODE"],
        labels=BUTTON_LABELS,
        kept_days=KEPT_DAYS if current_app.extensions["sandbox.tracer"].store is not None else 0,
    )


@bp.get("/class.json")
def class_json() -> Response:
    require_instructor()
    return jsonify(class_summary())


@bp.get("/class.csv")
def class_csv() -> Response:
    """One row per student: what a gradebook or a spreadsheet takes."""
    require_instructor()
    summary = class_summary()
    out = io.StringIO()
    writer = csv.writer(out)
    modes = summary["modes"]
    writer.writerow(
        [
            "name",
            "desk",
            *(f"sends {m}" for m in modes),
            "answers",
            "right",
            "misconceptions chosen",
            "last send or answer (s ago)",
            "page last open (s ago)",
        ]
    )
    for desk in summary["desks"]:
        writer.writerow(
            [
                desk["name"],
                desk["desk"],
                *(desk["sends"].get(m, 0) for m in modes),
                desk["answers"],
                desk["right"],
                "; ".join(desk["misconceptions"]),
                desk["last_work_s"],
                desk["idle_s"],
            ]
        )
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="class.csv"'
    return response


def class_summary() -> dict[str, Any]:
    """Everything the instructor's view shows, from the desks' records and their traces."""
    seated = desks().of_class(current_app.config["SANDBOX_JOIN_CODE"])
    tracer = current_app.extensions["sandbox.tracer"]
    now, wall = time.monotonic(), time.time()
    names = {d.id: d.name or f"desk {d.id[:6]}" for d in seated}
    sends = sorted(
        (send_view(trace, names[d.id], d.id[:6]) for d in seated for trace in tracer.traces_of(d.id)),
        key=lambda s: s["at"],
    )
    in_order = sorted(seated, key=lambda d: (names[d.id].lower(), d.id))
    modes = sorted({mode for d in seated for mode in d.sends})
    return {
        "desks": [
            {
                "name": names[d.id],
                "desk": d.id[:6],
                "sends": dict(d.sends),
                "answers": len(d.answers),
                "right": sum(a.right for a in d.answers.values()),
                "misconceptions": sorted({a.misconception for a in d.answers.values() if a.misconception}),
                "idle_s": round(now - d.last_seen) if math.isfinite(d.last_seen) else None,
                "last_work_s": None if d.last_work is None else round(wall - d.last_work),
            }
            for d in in_order
        ],
        "modes": modes,
        "sends": sends,
        "axis": time_axis(sends, [(d.id[:6], names[d.id]) for d in in_order]),
        "misconceptions": misconception_counts(seated),
    }


def time_axis(sends: list[dict[str, Any]], desks: list[tuple[str, str]]) -> dict[str, Any]:
    """The sends as SVG geometry: a row per desk that sent (``desks``: short id and name, in order; two students
    may share a name), a bar per send from its request to its answer."""
    if not sends:
        return {"rows": [], "height": 0, "ticks_y": 0, "span_s": 0.0, "left": AXIS_LEFT, "ticks": []}
    first = sends[0]["at"]
    last = max(s["at"] + (s["response_ms"] or 0.0) / 1000 for s in sends)
    span = last - first
    scale = (AXIS_RIGHT - AXIS_LEFT) / max(span, 1.0)  # a class's first second is drawn on a one-second axis
    senders = [(desk, name) for desk, name in desks if any(s["desk"] == desk for s in sends)]
    rows = []
    for index, (desk, name) in enumerate(senders):
        marks = []
        for send in (s for s in sends if s["desk"] == desk):
            answered = send["response_ms"]
            marks.append(
                {
                    "x": round(AXIS_LEFT + (send["at"] - first) * scale, 1),
                    "w": round(max(2.0, (answered or 0.0) / 1000 * scale), 1),
                    "mode_class": re.sub(r"[^a-z0-9-]", "", send["mode"]),
                    "outcome": send["outcome"],
                    "title": f"{name}, {send['mode']}: "
                    + (f"answered in {answered:.1f} ms" if answered is not None else "no answer yet")
                    + f", {send['outcome']}",
                }
            )
        rows.append({"name": name, "y": index * ROW_HEIGHT, "marks": marks})
    ticks = [{"x": round(AXIS_LEFT + t * scale, 1), "label": f"{t:g} s"} for t in axis_ticks(max(span, 1.0))]
    height = len(rows) * ROW_HEIGHT
    return {
        "rows": rows,
        "height": height + ROW_HEIGHT,
        "ticks_y": height + 14,
        "span_s": span,
        "left": AXIS_LEFT,
        "ticks": ticks,
    }


def axis_ticks(span: float) -> list[float]:
    """Up to six round times from 0 to ``span`` seconds, for the axis's labels."""
    steps = (0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
    step = next((s for s in steps if span / s <= 5), span / 5)
    return [round(k * step, 3) for k in range(int(span / step) + 1)]


def send_view(trace: Trace, name: str, desk: str) -> dict[str, Any]:
    """One send on the class's time axis: whose, which mode, when (wall clock), and how it went."""
    facts = Facts(trace)
    return {
        "name": name,
        "desk": desk,
        "mode": trace.mode,
        "at": trace.started_at,
        "response_ms": trace.response_ms,
        "accepted_ms": trace.accepted_ms,
        "outcome": facts.outcome,
    }


def misconception_counts(seated: Iterable[Desk]) -> list[dict[str, Any]]:
    """For each misconception: how many students picked an option standing for it, of those offered one.

    A student counts once for each: however many traces they answered, what matters is whether the idea showed up
    in their choices. Sorted by how many picked it.
    """
    offered: Counter[str] = Counter()
    picked: Counter[str] = Counter()
    kinds: dict[str, set[str]] = {}
    questions: dict[str, str] = {}  # a question that offered it, in the words students read
    for desk in seated:
        answers: list[Answer] = list(desk.answers.values())
        for misconception in {m for a in answers for m in a.offered}:
            offered[misconception] += 1
        for misconception in {a.misconception for a in answers if a.misconception}:
            picked[misconception] += 1
        for a in answers:
            for misconception in a.offered:
                kinds.setdefault(misconception, set()).add(a.kind)
                questions.setdefault(misconception, a.question)
    rows = [
        {
            "misconception": m,
            "students": picked[m],
            "of": offered[m],
            "kinds": sorted(kinds[m]),
            "question": questions[m],
        }
        for m in offered
    ]
    return sorted(rows, key=lambda r: (-r["students"], -r["of"], r["misconception"]))
