"""The concurrency sandbox: a Flask app that sends real email to a slow local sink by several strategies."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

from sandbox.config import Settings
from sandbox.strategies.delivery import DeliveryLog
from sandbox.trace.gates import Scheduler
from sandbox.trace.tracer import Tracer

if TYPE_CHECKING:
    from sandbox.smtp.sink import Sink
    from sandbox.trace.store import TraceStore

MAX_BODY_BYTES = 16 * 1024
# Building an app compiles its URL rules with ast.parse, which on CPython 3.11 may raise a spurious "AST constructor
# recursion depth mismatch" SystemError when two threads parse at once (python/cpython#106905). Apps built side by
# side (the truth matrix starts several sandboxes at a time) are built one at a time.
_BUILDING = threading.Lock()


def create_app(test_config: Mapping[str, Any] | None = None, *, sink: Sink | None = None) -> Flask:
    """Build the app: defaults, then ``SANDBOX_*`` variables, then the embedded ``sink``, then ``test_config``."""
    with _BUILDING:
        return _build_app(test_config, sink)


def _build_app(test_config: Mapping[str, Any] | None, sink: Sink | None) -> Flask:
    from sandbox.strategies.watch import WatchedFlask

    app = WatchedFlask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config.from_mapping(
        {"MAX_CONTENT_LENGTH": MAX_BODY_BYTES, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 25}
        | Settings.from_env().flask_config()
    )
    if sink is not None:
        app.config.update(MAIL_SERVER=sink.host, MAIL_PORT=sink.port)
    if test_config is not None:
        app.config.update(test_config)

    # Imported here, not at the top: the command lines that need no app (``python -m sandbox.sink``) stay light.
    from sandbox.app.emails import mail
    from sandbox.strategies import counting, watch, watched_pool
    from sandbox.strategies.pool import MailPool
    from sandbox.strategies.queue import MailQueue
    from sandbox.web import routes
    from sandbox.web.security import allow_own_origins, refuse_cross_site, refuse_unclear_length, refuse_untrusted_host

    tracer = Tracer(enabled=app.config["SANDBOX_TRACE"])
    app.extensions["sandbox.tracer"] = tracer
    store = trace_store(app)
    if store is not None:
        tracer.keep_in(store)
    app.extensions["sandbox.delivery"] = DeliveryLog()
    app.extensions["sandbox.sink"] = sink
    scheduler = app.extensions["sandbox.scheduler"] = Scheduler(float(app.config["SANDBOX_GATE_BOUND"]))
    if sink is not None:
        sink.handler.on_event = tracer.record
        sink.handler.before_answer = scheduler.sink_gate(tracer)
    backlog = app.config.get("SANDBOX_POOL_BACKLOG")
    app.extensions["sandbox.pool"] = MailPool(
        int(app.config["SANDBOX_POOL_SIZE"]),
        None if backlog is None else int(backlog),
        attempts=int(app.config["SANDBOX_POOL_ATTEMPTS"]),
        backoff_s=float(app.config["SANDBOX_RETRY_BACKOFF"]),
    )
    app.extensions["sandbox.queue"] = MailQueue(app)
    for refuse in (refuse_untrusted_host, refuse_unclear_length, refuse_cross_site):  # before any route runs
        app.before_request(refuse)
    app.after_request(allow_own_origins)
    mail.init_app(app)  # the student's Flask-Mail
    watch.watch_signals(app)
    counting.watch_counting()
    watched_pool.watch_pools()

    routes.init_app(app)
    return app


def trace_store(app: Flask) -> TraceStore | None:
    """Where the traces are kept (``SANDBOX_STORE_URL``; else the queue's Redis; else ``instance/traces.db``), or
    None when traces are off or kept in memory only."""
    from sandbox.config import MEMORY_STORE, REDIS_URL_PREFIXES
    from sandbox.trace.store import open_store

    url = app.config.get("SANDBOX_STORE_URL")
    if not app.config["SANDBOX_TRACE"] or url == MEMORY_STORE:
        return None
    queue_url = app.config.get("SANDBOX_QUEUE_URL") or ""
    if url is None and queue_url.startswith(REDIS_URL_PREFIXES):
        url = queue_url
    return open_store(url, app.instance_path)
