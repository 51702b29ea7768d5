"""The app's email routes, as a student writes them: build the message, then send it one way or another.

Every route builds the same welcome email. What differs is who sends it and who waits: the request itself, a new
thread, a pool of threads, a queue's worker. Six routes carry a classic mistake on purpose (one of them beside its
fix), and three show what does not help (computing in the worker, and two ``async def`` views). The sandbox
measures each from outside.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Lock, Thread

from flask import Blueprint, current_app, render_template

from sandbox.smtp.client import Mail, Message
from sandbox.strategies.cpu import busy_work
from sandbox.strategies.pool import mail_pool
from sandbox.strategies.queue import mail_queue
from sandbox.web.send_request import request_fields

bp = Blueprint("emails", __name__, template_folder="templates")
mail = Mail()  # Flask-Mail's Mail; the sandbox's version gives each connection a timeout
CPU_WORK_S = 1.5
ATTEMPTS = 3
PAUSE_S = 0.2


def welcome_email(to, subject, name, link):
    config = current_app.config
    msg = Message(config["SANDBOX_SUBJECT_PREFIX"] + subject, sender=config["MAIL_DEFAULT_SENDER"], recipients=[to])
    msg.body = render_template("email/welcome.txt", name=name, link=link)
    msg.html = render_template("email/welcome.html", name=name, link=link)
    return msg


# Blocking: the request sends, so the answer waits for the mail server.
@bp.post("/send-email/sync")
def send_sync():
    msg = welcome_email(**request_fields())
    mail.send(msg)
    return {"status": "sent"}, 200


# A thread per email: hand the real app object and the message to a new thread, answer at once.
@bp.post("/send-email/thread")
def send_thread():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    thr = Thread(target=send_async_email, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


def send_async_email(app, msg):
    with app.app_context():
        mail.send(msg)


# A pool: a few threads take the emails in turn; the rest wait in the pool's queue.
@bp.post("/send-email/pool")
def send_pool():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    mail_pool(app).submit(send_async_email, app, msg)
    return {"status": "queued"}, 202


# A task queue: the email is stored first; a consumer's worker runs send_async_email later.
@bp.post("/send-email/queue")
def send_queue():
    msg = welcome_email(**request_fields())
    mail_queue(current_app).enqueue(send_async_email, msg)
    return {"status": "queued"}, 202


# Mistake 1: the thread gets only the message, so it has no app to push a context for.
@bp.post("/send-email/thread-no-context")
def send_thread_no_context():
    msg = welcome_email(**request_fields())
    thr = Thread(target=send_without_context, args=[msg])
    thr.start()
    return {"status": "queued"}, 202


def send_without_context(msg):
    mail.send(msg)


# Mistake 2: the thread gets current_app, a proxy that only works where a context is active.
@bp.post("/send-email/thread-proxy")
def send_thread_proxy():
    msg = welcome_email(**request_fields())
    app = current_app
    thr = Thread(target=send_async_email, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


# The worker computes before it sends: pure Python holds the GIL that the other threads need.
@bp.post("/send-email/thread-cpu")
def send_thread_cpu():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    thr = Thread(target=compute_then_send, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


def compute_then_send(app, msg):
    with app.app_context():
        busy_work(CPU_WORK_S)
        mail.send(msg)


# The worker retries on any error: safe when the email surely did not arrive, a duplicate when it may have.
@bp.post("/send-email/thread-retry")
def send_thread_retry():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    thr = Thread(target=send_with_retries, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


def send_with_retries(app, msg):
    with app.app_context():
        for attempt in range(1, ATTEMPTS + 1):
            try:
                mail.send(msg)
                return
            except Exception:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(PAUSE_S)


# An async def view: the send runs on another thread, but the view, and so the answer, still waits for it.
@bp.post("/send-email/async-await")
async def send_async_await():
    msg = welcome_email(**request_fields())
    await asyncio.to_thread(mail.send, msg)
    return {"status": "sent"}, 200


# An async def view that calls mail.send itself: nothing is awaited, so its event loop's thread sends, and the
# answer waits all the same.
@bp.post("/send-email/async-blocking")
async def send_async_blocking():
    msg = welcome_email(**request_fields())
    mail.send(msg)
    return {"status": "sent"}, 200


# Mistake 3: each worker counts its email by reading the count, then writing it back one higher. Two workers that
# both read before either writes put back the same number: one email goes uncounted.
stats = {"sent": 0}
stats_lock = Lock()


@bp.post("/send-email/thread-count")
def send_thread_count():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    thr = Thread(target=send_and_count, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


def send_and_count(app, msg):
    with app.app_context():
        mail.send(msg)
        sent = stats["sent"]
        stats["sent"] = sent + 1


# The fix: while one worker holds the lock, between its read and its write, any other worker waits for it.
@bp.post("/send-email/thread-count-locked")
def send_thread_count_locked():
    msg = welcome_email(**request_fields())
    app = current_app._get_current_object()
    thr = Thread(target=send_and_count_locked, args=[app, msg])
    thr.start()
    return {"status": "queued"}, 202


def send_and_count_locked(app, msg):
    with app.app_context():
        mail.send(msg)
        with stats_lock:
            sent = stats["sent"]
            stats["sent"] = sent + 1


# Mistake 4: a task on a pool of one thread hands part of its work to the same pool and waits for it. The only
# thread is the one waiting, so that part never gets a thread: the send waits until its patience runs out.
render_pool = ThreadPoolExecutor(max_workers=1)
RENDER_TIMEOUT_S = 5


@bp.post("/send-email/pool-starved")
def send_pool_starved():
    fields = request_fields()
    app = current_app._get_current_object()
    render_pool.submit(render_then_send, app, fields)
    return {"status": "queued"}, 202


def render_then_send(app, fields):
    rendering = render_pool.submit(render_welcome, app, fields)
    msg = rendering.result(timeout=RENDER_TIMEOUT_S)
    with app.app_context():
        mail.send(msg)


def render_welcome(app, fields):
    with app.app_context():
        return welcome_email(**fields)


# Mistake 5: the view creates a task to send after the answer, and returns. But Flask's event loop lives only as
# long as the view: when the view returns, the loop cancels every task still waiting, and this one never sends.
@bp.post("/send-email/async-fire-and-forget")
async def send_async_fire_and_forget():
    msg = welcome_email(**request_fields())
    asyncio.create_task(send_after_answer(msg))
    return {"status": "queued"}, 202


async def send_after_answer(msg):
    await asyncio.sleep(0)  # meant to let the view answer first
    mail.send(msg)


# Mistake 6: the task hands the send to a thread. The closing loop cancels the task, yet it waits for the thread
# before it lets the view's answer go: the user waits for the mail server all the same.
@bp.post("/send-email/async-to-thread-and-forget")
async def send_async_to_thread_and_forget():
    msg = welcome_email(**request_fields())
    asyncio.create_task(send_in_thread(msg))
    return {"status": "queued"}, 202


async def send_in_thread(msg):
    await asyncio.to_thread(mail.send, msg)
