"""HTTP routes: the send routes the students compare, the JSON API around them, and the page."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    request_finished,
    url_for,
)
from werkzeug.exceptions import HTTPException

from sandbox.errors import ConfigError
from sandbox.render.document import TraceReport, report, trace_document
from sandbox.render.html import render_trace_page
from sandbox.shutdown_demo import HOLD_S, DemoBusy, run_cases
from sandbox.smtp.failures import SendError
from sandbox.smtp.sink import Mailbox, Sink, StoredMessage
from sandbox.strategies.delivery import FAILURES_KEPT, DeliveryLog, Failure
from sandbox.strategies.labels import BUTTON_LABELS, COMPARED_WITH, PROMISE_COLUMNS, PROMISES
from sandbox.strategies.modes import (
    ANSWERS_AFTER_SEND,
    BROKEN_VARIANTS,
    ENDPOINTS,
    SCHEDULABLE_MODES,
    SEND_MODES,
    STRATEGIES,
)
from sandbox.strategies.watch import unwatch_request, watch_request
from sandbox.trace.facts import NOT_OBSERVED, observed_server
from sandbox.trace.gates import GATE_IDS, MANUAL, OBSERVE, Schedule
from sandbox.trace.quiz import PAGE_QUIZ_KINDS, QUIZ_KINDS
from sandbox.trace.tracer import Binding, Location, Trace, Tracer, bind, line_of, raised_at, thread_identity
from sandbox.web import desks, lessons
from sandbox.web.app_settings import app_settings, change_app_settings
from sandbox.web.desks import current_desk, wants_page
from sandbox.web.security import CONTENT_SECURITY_POLICY
from sandbox.web.send_request import BadInput, read_json
from sandbox.web.stamps import ACCEPTOR, ARRIVED_NS, POOL_THREADS, REQUEST_ID, SERVER_KIND

bp = Blueprint("sandbox", __name__)
PAGE_SIZE = 500  # entries per page of /api/messages and /api/failures with ?after=


def init_app(app: Flask) -> None:
    from sandbox.app.emails import bp as emails  # the student's routes, one per send mode

    desks.init_app(app)  # first: every later hook and route reads the request's desk
    app.register_blueprint(emails)
    app.register_blueprint(bp)
    app.register_blueprint(lessons.bp)
    app.register_blueprint(lessons.api)
    from sandbox.web import answers, challenges, classroom, explorations, schedule  # they read traces (trace_report)

    app.register_blueprint(answers.bp)
    app.register_blueprint(schedule.bp)
    app.register_blueprint(challenges.bp)
    explorations.init_app(app)
    classroom.init_app(app)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(SendError, send_failed)
    request_finished.connect(record_response, app)


def delivery_log() -> DeliveryLog:
    return current_app.extensions["sandbox.delivery"]


def tracer() -> Tracer:
    return current_app.extensions["sandbox.tracer"]


@bp.before_app_request
def start_request() -> None:
    """Start the clock, and for a send, the trace: its id is made here, before the student's route runs, and bound
    to the request so that the hooks (``sandbox.watch``) carry it to every worker.

    The clock starts when the web server had the request (it stamps the accept), so time spent waiting for a
    handler, as on a one-request-at-a-time server, counts; under the test client it starts here.
    """
    now = time.perf_counter_ns()
    arrived_ns = request.environ.get(ARRIVED_NS)
    g.started_ns = arrived_ns if arrived_ns is not None else now
    g.trace_id = None
    g.response_ms = None
    mode = ENDPOINTS.get(request.endpoint or "") if request.method == "POST" else None
    if mode is None:
        return
    desk = current_desk()
    desks.desks().note_send(desk, mode, int(current_app.config["SANDBOX_DESK_SENDS_PER_MINUTE"]))  # or 429
    g.trace_id = uuid.uuid4().hex
    g.mode = mode
    sink = current_sink(required=False)
    config = current_app.config
    tracer().start(
        g.trace_id,
        mode,
        request.environ.get(SERVER_KIND, config["SANDBOX_SERVER"]),  # the server that really had it
        sink.desk(desk).faults.delay_s if sink else None,
        {
            "smtp_timeout_s": config["SANDBOX_SMTP_TIMEOUT"],
            "mail_server": f"{config['MAIL_SERVER']}:{sink.port_for(desk) if sink else config['MAIL_PORT']}",
        },
        desk=desk,
    )
    binding = Binding(
        tracer(),
        delivery_log(),
        g.trace_id,
        mode,
        blocking=mode in ANSWERS_AFTER_SEND,
        desk=desk,
        schedule=scheduled(g.trace_id, desk, mode),
    )
    watch_request(binding)
    route = view_line()
    if arrived_ns is not None:
        tracer().record_at(
            g.trace_id,
            "request.arrived",
            arrived_ns,
            request.environ[ACCEPTOR],
            route,
            server=request.environ.get(SERVER_KIND),
            request_id=request.environ.get(REQUEST_ID),
            **_server_threads(request.environ),
        )
    binding.record("request.received", at=route, method=request.method, path=request.path)


def scheduled(trace_id: str, desk: str, mode: str) -> Schedule | None:
    """The send's schedule when the request asks for ``?schedule=manual`` (you hold and release each thread) or
    ``?schedule=observe`` (each thread only notes the gates it passes); 400 for another value, or a mode whose
    threads pass no gates yet."""
    how = request.args.get("schedule")
    if how is None:
        return None
    if how not in (MANUAL, OBSERVE):
        raise BadInput(f"schedule must be {MANUAL} (you hold and release each thread) or {OBSERVE}, not {how!r}")
    if mode not in SCHEDULABLE_MODES:
        raise BadInput(f"{mode} sends cannot be scheduled yet; these can: {', '.join(SCHEDULABLE_MODES)}")
    return current_app.extensions["sandbox.scheduler"].start(trace_id, desk, mode, how, held_gates(how))


def held_gates(how: str) -> frozenset[str] | None:
    """The gates named by ``?hold=`` (with ``schedule=manual`` only), or None for every gate."""
    named = request.args.get("hold")
    if named is None:
        return None
    if how != MANUAL:
        raise BadInput(f"hold= names the gates that hold a thread, so it goes with schedule={MANUAL}")
    ids = [name.strip() for name in named.split(",") if name.strip()]
    unknown = [name for name in ids if name not in GATE_IDS]
    if not ids or unknown:
        raise BadInput(f"hold= takes a comma list of gates, of {', '.join(GATE_IDS)}; got {named!r}")
    return frozenset(GATE_IDS[name] for name in ids)


def _server_threads(environ: dict[str, Any]) -> dict[str, int]:
    """``threads`` for the arrival's details, when a pooled server had the request."""
    threads = environ.get(POOL_THREADS)
    return {"threads": threads} if threads is not None else {}


def view_line(text: str | None = None) -> Location:
    """A line of the student's route for this request: its ``def``, or the first line holding ``text``."""
    return line_of(current_app.view_functions[request.endpoint], text)


@bp.after_app_request
def answer_send(response: Response) -> Response:
    """The student's route answered a send: add what the sandbox knows (mode, trace id, measured time) to it."""
    if g.get("trace_id") and g.get("response_ms") is None and response.is_json:
        body = response.get_json()
        response_ms = stamp_response(response.status_code, view_line("return"))
        response.set_data(
            current_app.json.dumps({"mode": g.mode, "trace_id": g.trace_id, **body, "response_ms": response_ms})
        )
    return response


@bp.teardown_app_request
def end_request(error: BaseException | None) -> None:
    """The request is over: nothing more runs for its trace on this thread (a single server reuses it)."""
    if g.get("trace_id"):
        unwatch_request()
        bind(None)


def stamp_response(status: int, at: Location) -> float:
    """Record that the answer leaves now and return its time: the one ``response_ms`` of this send, everywhere.
    ``at`` is the student's line the answer comes from (the route's ``return``, or the line that raised)."""
    now = time.perf_counter_ns()
    if g.get("trace_id") and g.response_ms is None:
        tracer().record_at(g.trace_id, "response.sent", now, thread_identity(), at, status=status)
    g.response_ms = round((now - g.started_ns) / 1e6, 3)
    return g.response_ms


def record_response(app: Flask, response: Response) -> None:
    """A response no route stamped (an unexpected error): the trace still learns when and how it ended."""
    if g.get("trace_id") and g.get("response_ms") is None:
        stamp_response(response.status_code, view_line())


def send_failed(err: SendError) -> tuple[Response, int]:
    """A send the route waited for failed (or a queue's store could not take it): 502, 503 or 504 with the reason."""
    status = err.http_status
    body = {"error": str(err), "outcome": err.outcome, "mode": g.get("mode"), "trace_id": g.get("trace_id")}
    at = raised_at(err.__traceback__) or view_line()
    return jsonify(body | {"response_ms": stamp_response(status, at)}), status


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def http_error(err: HTTPException) -> tuple[Response | str, int]:
    """Every HTTP error as ``{"error": ...}``, keeping headers such as ``Allow`` on a 405; a person's browser asking
    for a page (an old trace or message link after a restart) gets the same status as an HTML page with the reason
    and a way back."""
    if wants_page():
        return render_template(
            "pages/error.html",
            title="Not found" if err.code == 404 else (err.name or "Error"),
            message=err.description,
            hint=ERROR_HINTS.get(request.blueprint or "", ERROR_HINTS[""]),
        ), err.code or 500
    body: dict[str, object] = {"error": err.description}
    if g.get("trace_id"):
        at = raised_at(err.__traceback__) or view_line()
        body.update(trace_id=g.trace_id, response_ms=stamp_response(err.code or 500, at))
    response = jsonify(body)
    for name, value in err.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, err.code or 500


ERROR_HINTS = {
    "sandbox": "Messages live in the running sandbox's memory, so a restart or enough newer ones lets old ones go; "
    "traces are kept for a week, each for the desk (the browser) that sent it. Send again and follow the new link.",
    "lessons": "The lessons are listed on the lessons page.",
    "": "The address may be mistyped, or from an earlier run of the sandbox.",
}


@bp.get("/")
def index() -> str:
    sink = current_sink(required=False)
    desk = sink.desk(current_desk()) if sink else None
    return render_template(
        "pages/index.html",
        broken=list(BROKEN_VARIANTS),
        labels=BUTTON_LABELS,
        promises=PROMISES,
        promise_columns=PROMISE_COLUMNS,
        mail_server=f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}",
        server=request.environ.get(SERVER_KIND, current_app.config["SANDBOX_SERVER"]),  # the one this page came from
        pool_threads=request.environ.get(POOL_THREADS),
        delay_s=desk.faults.delay_s if desk else None,
        faults=desk.faults if desk else None,
        modes=list(STRATEGIES),
    )


@bp.post("/send-email/<mode>")
def send_email(mode: str) -> Response:
    """Every known mode has its own route (the student's, ``sandbox/app/emails.py``); this one answers the rest."""
    raise BadInput(f"unknown mode {mode!r}; modes: {', '.join(SEND_MODES)}", 404)


def trace_report(trace_id: str, default_kinds: Sequence[str] = QUIZ_KINDS, as_of_ns: int | None = None) -> TraceReport:
    """The trace with its views; the newest trace of the other mode, if any, feeds the comparison question.

    ``?kinds=a,b`` keeps only those quiz kinds (a lesson asks for the ones it teaches); ``default_kinds`` otherwise.
    ``as_of_ns``: the trace as it stood then (what a page built at that moment showed): its events, its partner's
    and the server's log cut there, so a page and the judge of its answers build the same questions.
    """
    trace = as_of(tracer().get(trace_id, current_desk()), as_of_ns)
    if trace is None:
        raise BadInput(
            f"no trace {trace_id!r} at your desk: it never existed, was sent from another desk, or is older than the "
            "week the sandbox keeps traces",
            404,
        )
    kinds = [k for k in request.args.get("kinds", "").split(",") if k] or default_kinds
    unknown = [k for k in kinds if k not in QUIZ_KINDS]
    if unknown:
        raise BadInput(f"unknown quiz kinds {', '.join(unknown)}; known: {', '.join(QUIZ_KINDS)}")
    other = as_of(tracer().partner(trace, COMPARED_WITH.get(trace.mode, ())), as_of_ns)
    log = current_app.extensions.get("sandbox.requests")
    return report(
        trace,
        other=other,
        kinds=kinds,
        server=observed_server(trace, log, as_of_ns),
        other_server=observed_server(other, log, as_of_ns) if other is not None else NOT_OBSERVED,
    )


def as_of(trace: Trace | None, t_ns: int | None) -> Trace | None:
    """The trace (a copy the caller owns) as it stood at ``t_ns``: its later events cut off; None if it had none."""
    if trace is not None and t_ns is not None:
        trace.events = [e for e in trace.events if e.t_ns <= t_ns]
    return trace if trace is not None and trace.events else None


@bp.get("/api/traces/<trace_id>")
def trace_json(trace_id: str) -> Response:
    return jsonify(trace_document(trace_report(trace_id)))


@bp.get("/traces/<trace_id>")
def trace_page(trace_id: str) -> Response:
    nonce = secrets.token_urlsafe(16)
    embedded = request.args.get("embedded") == "1"
    back = None if embedded else url_for("sandbox.index")
    as_of = time.perf_counter_ns()  # the page shows the trace as of now; its quiz's answers are judged the same way
    shown = trace_report(trace_id, PAGE_QUIZ_KINDS, as_of)
    page = render_trace_page(
        shown,
        nonce=nonce,
        back_link=back,
        back_label="Back to the sandbox",
        folded=True,
        answers_url=url_for("answers.answer", trace_id=trace_id, as_of=as_of),
    )
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
    return response


@bp.get("/api/ping")
def ping() -> Response:
    return jsonify(ok=True, time=time.time())


@bp.get("/api/messages")
def messages() -> Response:
    """Newest first; with ``?after=<id>``, the page of messages after that id, oldest first (see ``page_after``)."""
    stored = desk_mailbox().messages()
    after = after_id()
    if after is None:
        return jsonify(messages=[m.summary() for m in reversed(stored)])
    return jsonify(page_after("messages", after, stored, StoredMessage.summary, desk_mailbox().capacity))


def after_id() -> int | None:
    """The ``after`` query parameter: a whole number of at least 0, or None when absent."""
    text = request.args.get("after")
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise BadInput(f"'after' must be a whole number of at least 0 (an id from an earlier page), not {text!r}")
    return int(text)


def page_after(
    key: str,
    after: int,
    entries: Sequence[Any],
    as_dict: Callable[[Any], dict[str, Any]],
    kept: int,
    limit: int = PAGE_SIZE,
) -> dict[str, Any]:
    """One page of ``entries`` (oldest first, each with an ``id``) for a client that reads a list in order, however
    long the run: up to ``limit`` entries after id ``after``; ``next_after`` is the id to ask for next, and ``dropped``
    counts entries after ``after`` no longer in memory (only the newest ``kept`` are), so a client polling often
    enough knows it saw everything."""
    newer = [entry for entry in entries if entry.id > after]
    page = [as_dict(entry) for entry in newer[:limit]]
    return {
        key: page,
        "after": after,
        "next_after": page[-1]["id"] if page else after,
        "dropped": newer[0].id - after - 1 if newer else 0,
        "kept": kept,
    }


@bp.get("/api/messages/<int:message_id>")
def message_json(message_id: int) -> Response:
    return jsonify(stored_message(message_id).parts())


@bp.get("/mailbox")
def mailbox_page() -> str:
    newest_first = list(reversed(desk_mailbox().messages()))
    return render_template("pages/mailbox.html", messages=newest_first)


@bp.get("/mailbox/<int:message_id>")
def message_page(message_id: int) -> str:
    stored = stored_message(message_id)
    return render_template("pages/message.html", message=stored.parts(), source=stored.source())


@bp.get("/mailbox/<int:message_id>/html")
def message_html(message_id: int) -> Response:
    """The email's HTML part, for a sandboxed iframe: the CSP sandbox forbids scripts even if opened directly. Its
    links open in a new tab (a frame that cannot navigate would make them do nothing), as a mail client's do."""
    html = stored_message(message_id).parts()["html"]
    response = Response(links_open_outside(html), mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:; frame-ancestors 'self'"
    )
    return response


def links_open_outside(html: str) -> str:
    """``html`` with ``<base target="_blank">`` in its head (or in front, where the parser puts it in one)."""
    base = '<base target="_blank">'
    head = re.search(r"<head(\s[^>]*)?>", html, flags=re.IGNORECASE)
    return html[: head.end()] + base + html[head.end() :] if head else base + html


def stored_message(message_id: int) -> StoredMessage:
    mailbox = desk_mailbox()
    message = mailbox.get(message_id)
    if message is None:
        raise BadInput(f"no message #{message_id} in your desk's mailbox (it keeps the newest {mailbox.capacity})", 404)
    return message


@bp.get("/api/sink")
def sink_settings() -> Response:
    return jsonify(current_sink().settings(current_desk()))


@bp.put("/api/sink")
def change_sink() -> Response:
    sink = current_sink()
    changes = read_json(request) if request.is_json else None
    if not isinstance(changes, dict):
        raise BadInput('send a JSON object, e.g. {"delay_s": 1.5}')
    try:
        return jsonify(sink.update_settings(changes, current_desk()))
    except ConfigError as err:
        raise BadInput(str(err)) from err


@bp.get("/api/app")
def get_app_settings() -> Response:
    return jsonify(app_settings(current_app))


@bp.put("/api/app")
def put_app_settings() -> Response:
    """Change how the app sends (its SMTP timeout, its pool's backlog) from the next send on."""
    changes = read_json(request) if request.is_json else None
    if not isinstance(changes, dict):
        raise BadInput('send a JSON object, e.g. {"smtp_timeout_s": 1}')
    try:
        return jsonify(change_app_settings(current_app, changes))
    except ConfigError as err:
        raise BadInput(str(err)) from err


@bp.post("/api/demos/shutdown")
def shutdown_demo() -> Response:
    """Stop real child processes mid-send, each a different way, and report which emails arrived (about 2 s)."""
    try:
        outcomes = run_cases()
    except DemoBusy as err:
        raise BadInput(str(err), 409) from err
    except OSError as err:
        raise BadInput(f"the demonstration cannot run here: {err}", 501) from err
    return jsonify(hold_s=HOLD_S, cases=[outcome.to_dict() for outcome in outcomes])


@bp.get("/api/failures")
def failures() -> Response:
    """Every send that did not certainly deliver (``outcome`` failed or unknown), and the ones delivered possibly
    twice after a crash; ``?after=<id>`` pages through the failures oldest first."""
    log, desk = delivery_log(), current_desk()
    duplicates = [d.to_dict() for d in log.duplicates(desk)]
    after = after_id()
    if after is None:
        return jsonify(failures=[f.to_dict() for f in log.failures(desk)], possibly_duplicated=duplicates)
    body = page_after("failures", after, log.failures(desk), Failure.to_dict, FAILURES_KEPT)
    return jsonify(body | {"possibly_duplicated": duplicates})


@bp.get("/api/stats")
def stats() -> Response:
    """This desk's delivery counts, and the worker threads alive now (the whole app's), all modes together and by
    mode."""
    app = current_app._get_current_object()
    counts = delivery_log().stats(current_desk())
    threads = {
        "thread": delivery_log().stats()["threads_alive"],
        "pool": app.extensions["sandbox.pool"].threads_alive(),
        "queue": app.extensions["sandbox.queue"].threads_alive(),
    }
    return jsonify(counts | {"threads_alive": sum(threads.values()), "threads_by_mode": threads})


def current_sink(required: bool = True) -> Sink | None:
    """The embedded sink, or a 404 explaining that mail goes to an outside server whose mailbox we cannot read."""
    sink = current_app.extensions.get("sandbox.sink")
    if sink is None and required:
        server = f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"
        raise BadInput(f"no embedded sink: this sandbox sends to {server}, whose mailbox is not visible here", 404)
    return sink


def desk_mailbox() -> Mailbox:
    """The mailbox of this request's desk (a 404 without an embedded sink)."""
    return current_sink().mailbox_of(current_desk())
