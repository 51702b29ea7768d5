"""HTTP routes: the send routes the students compare, the JSON API around them, and the page."""

from __future__ import annotations

import secrets
import time
import uuid

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

from sandbox import lessons
from sandbox.broken import BROKEN_VARIANTS
from sandbox.errors import ConfigError
from sandbox.mailer import SendError, build_message, delivery_log, tracer
from sandbox.modes import BUTTON_LABELS, COMPARED_WITH, PROMISE_COLUMNS, PROMISES
from sandbox.quiz import QUIZ_KINDS
from sandbox.render.document import TraceReport, report, trace_document
from sandbox.render.html import render_trace_page
from sandbox.send_request import BadInput, parse_send_request
from sandbox.sink import MAILBOX_SIZE, Sink, StoredMessage
from sandbox.strategies import SEND_MODES, STRATEGIES
from sandbox.tracer import TRACES_KEPT

bp = Blueprint("sandbox", __name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(lessons.bp)
    app.register_error_handler(HTTPException, json_error)
    request_finished.connect(record_response, app)


@bp.before_app_request
def start_request() -> None:
    """Start the clock, and for a send, the trace: its id is made here, before any other work."""
    g.started_ns = time.perf_counter_ns()
    g.trace_id = None
    mode = (request.view_args or {}).get("mode")
    if request.endpoint == "sandbox.send_email" and mode in SEND_MODES:
        g.trace_id = uuid.uuid4().hex
        sink = current_sink(required=False)
        config = current_app.config
        tracer().start(
            g.trace_id,
            mode,
            config["SANDBOX_SERVER"],
            sink.handler.delay_s if sink else None,
            {
                "smtp_timeout_s": config["SANDBOX_SMTP_TIMEOUT"],
                "mail_server": f"{config['MAIL_SERVER']}:{config['MAIL_PORT']}",
            },
        )
        tracer().record(g.trace_id, "request.received", method=request.method, path=request.path)


def record_response(app: Flask, response: Response) -> None:
    """Flask hands the response to the server: from here the browser has its answer."""
    if g.get("trace_id"):
        app.extensions["sandbox.tracer"].record(g.trace_id, "response.sent", status=response.status_code)


@bp.after_app_request
def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def json_error(err: HTTPException) -> tuple[Response, int]:
    """Every HTTP error as ``{"error": ...}``, keeping headers such as ``Allow`` on a 405."""
    response = jsonify(error=err.description)
    for name, value in err.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, err.code or 500


def elapsed_ms() -> float:
    return round((time.perf_counter_ns() - g.started_ns) / 1e6, 3)


@bp.get("/")
def index() -> str:
    sink = current_sink(required=False)
    return render_template(
        "pages/index.html",
        broken=list(BROKEN_VARIANTS),
        labels=BUTTON_LABELS,
        promises=PROMISES,
        promise_columns=PROMISE_COLUMNS,
        mail_server=f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}",
        server=current_app.config["SANDBOX_SERVER"],
        delay_s=sink.handler.delay_s if sink else None,
        faults=sink.handler.faults if sink else None,
        modes=list(STRATEGIES),
    )


@bp.post("/send-email/<mode>")
def send_email(mode: str) -> tuple[Response, int]:
    strategy = SEND_MODES.get(mode)
    if strategy is None:
        raise BadInput(f"unknown mode {mode!r}; modes: {', '.join(SEND_MODES)}", 404)
    trace_id = g.trace_id
    fields = parse_send_request(request)
    msg = build_message(
        "welcome", fields.to, fields.subject, trace_id, name=fields.name, link=url_for("sandbox.index", _external=True)
    )
    try:
        strategy(msg, trace_id)
    except SendError as err:
        response = jsonify(error=str(err), mode=mode, trace_id=trace_id, response_ms=elapsed_ms())
        return response, 504 if err.timed_out else 502
    sent = mode == "sync"
    body = {"mode": mode, "trace_id": trace_id, "status": "sent" if sent else "queued", "response_ms": elapsed_ms()}
    return jsonify(body), 200 if sent else 202


def trace_report(trace_id: str) -> TraceReport:
    """The trace with its views; the newest trace of the other mode, if any, feeds the comparison question.

    ``?kinds=a,b`` keeps only those quiz kinds (a lesson asks for the ones it teaches).
    """
    trace = tracer().get(trace_id)
    if trace is None:
        raise BadInput(f"no trace {trace_id!r}: it never existed or is older than the newest {TRACES_KEPT}", 404)
    kinds = [k for k in request.args.get("kinds", "").split(",") if k] or QUIZ_KINDS
    unknown = [k for k in kinds if k not in QUIZ_KINDS]
    if unknown:
        raise BadInput(f"unknown quiz kinds {', '.join(unknown)}; known: {', '.join(QUIZ_KINDS)}")
    other_mode = COMPARED_WITH.get(trace.mode)
    return report(trace, other=tracer().latest(other_mode) if other_mode else None, kinds=kinds)


@bp.get("/api/traces/<trace_id>")
def trace_json(trace_id: str) -> Response:
    return jsonify(trace_document(trace_report(trace_id)))


@bp.get("/traces/<trace_id>")
def trace_page(trace_id: str) -> Response:
    nonce = secrets.token_urlsafe(16)
    embedded = request.args.get("embedded") == "1"
    back = None if embedded else url_for("sandbox.index")
    page = render_trace_page(trace_report(trace_id), nonce=nonce, back_link=back, back_label="Back to the sandbox")
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
    return response


@bp.get("/api/ping")
def ping() -> Response:
    return jsonify(ok=True, time=time.time())


@bp.get("/api/messages")
def messages() -> Response:
    newest_first = reversed(current_sink().mailbox.messages())
    return jsonify(messages=[m.summary() for m in newest_first])


@bp.get("/api/messages/<int:message_id>")
def message_json(message_id: int) -> Response:
    return jsonify(stored_message(message_id).parts())


@bp.get("/mailbox")
def mailbox_page() -> str:
    newest_first = list(reversed(current_sink().mailbox.messages()))
    return render_template("pages/mailbox.html", messages=newest_first)


@bp.get("/mailbox/<int:message_id>")
def message_page(message_id: int) -> str:
    return render_template("pages/message.html", message=stored_message(message_id).parts())


@bp.get("/mailbox/<int:message_id>/html")
def message_html(message_id: int) -> Response:
    """The email's HTML part, for a sandboxed iframe: the CSP sandbox forbids scripts even if opened directly."""
    response = Response(stored_message(message_id).parts()["html"], mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    )
    return response


def stored_message(message_id: int) -> StoredMessage:
    message = current_sink().mailbox.get(message_id)
    if message is None:
        raise BadInput(f"no message #{message_id} in the mailbox (it keeps the newest {MAILBOX_SIZE})", 404)
    return message


@bp.get("/api/sink")
def sink_settings() -> Response:
    return jsonify(current_sink().settings())


@bp.put("/api/sink")
def change_sink() -> Response:
    sink = current_sink()
    changes = request.get_json(silent=True)
    if not isinstance(changes, dict):
        raise BadInput('send a JSON object, e.g. {"delay_s": 1.5}')
    try:
        return jsonify(sink.update_settings(changes))
    except ConfigError as err:
        raise BadInput(str(err)) from err


@bp.get("/api/failures")
def failures() -> Response:
    return jsonify(failures=[f.to_dict() for f in delivery_log().failures()])


@bp.get("/api/stats")
def stats() -> Response:
    return jsonify(delivery_log().stats())


def current_sink(required: bool = True) -> Sink | None:
    """The embedded sink, or a 404 explaining that mail goes to an outside server whose mailbox we cannot read."""
    sink = current_app.extensions.get("sandbox.sink")
    if sink is None and required:
        server = f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"
        raise BadInput(f"no embedded sink: this sandbox sends to {server}, whose mailbox is not visible here", 404)
    return sink
