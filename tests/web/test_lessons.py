from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.client import call
from sandbox.smtp.sink import Sink
from sandbox.strategies.modes import (
    ASYNC_BLOCKING,
    ASYNC_MODE,
    FORGOTTEN_TASK,
    FORGOTTEN_THREAD_TASK,
    SEND_MODES,
)
from sandbox.trace.facts import Facts, observed_server
from sandbox.trace.quiz import QUIZ_KINDS
from sandbox.web.lessons import LESSONS_DIR, LessonError, load_lessons, parse_lesson
from sandbox.web.predictions import CHECKS
from sandbox.web.serving import AppServer
from tests.conftest import record_trace

MODES = frozenset(SEND_MODES)
PREDICT = "predict: {question: q, check: answer_before_acceptance, options: {answer_first: a, email_first: e}}\n"
FRONT = "title: x\nsummary: y\norder: 1\nobjective: o\n" + PREDICT + "quiz: [wait_time]\n"
STEP = "scenario: {description: d, steps: [{title: t, modes: [sync]}]}\n"
BOTH = "modes: [sync, thread]"


def by_slug(slug: str):
    return next(lesson for lesson in load_lessons(LESSONS_DIR, MODES) if lesson.slug == slug)


def test_every_lesson_loads_with_a_runnable_scenario() -> None:
    lessons = load_lessons(LESSONS_DIR, MODES)
    assert [lesson.order for lesson in lessons] == list(range(1, len(lessons) + 1))
    assert len({lesson.slug for lesson in lessons}) == len(lessons)
    for lesson in lessons:
        assert lesson.quiz and set(lesson.quiz) <= set(QUIZ_KINDS), lesson.slug
        assert lesson.steps, lesson.slug
        for step in lesson.steps:
            assert step["modes"] and set(step["modes"]) <= MODES
            assert isinstance(step["sink"]["listening"], bool) and "delay_s" in step["sink"]
            assert step["sink_text"]
        assert "<h1>" in lesson.html and "<script" not in lesson.html


def test_the_lessons_run_what_they_teach() -> None:
    blocking = by_slug("why-blocking-blocks")
    assert any(step["ping"] and "sync" in step["modes"] for step in blocking.steps)
    visitors = blocking.steps[blocking.quiz_step - 1]
    assert visitors["server"] == "single" and visitors["clients"] >= 3 and visitors["modes"] == ["sync"]
    context_modes = {mode for step in by_slug("application-context").steps for mode in step["modes"]}
    assert {"thread-no-context", "thread-proxy", "thread"} <= context_modes
    wrong = by_slug("failures-and-timeouts").steps
    assert any(step["sink"]["reject_probability"] == 1 and step["sink"]["reject_code"] == 451 for step in wrong)
    assert any(step["sink"]["reject_probability"] == 1 and step["sink"]["reject_code"] >= 500 for step in wrong)
    assert any(step["sink"]["listening"] is False for step in wrong)
    assert {"pool", "thread"} <= {mode for step in wrong for mode in step["modes"]}
    slow = wrong[-1]
    assert slow["sink"]["greet_delay_s"] > slow["app"]["smtp_timeout_s"] and "sync" in slow["modes"]
    side_by_side = by_slug("threads-in-flask")
    assert "other_mode" in side_by_side.quiz and any(step["compare"] for step in side_by_side.steps)
    burst = by_slug("a-pool-of-threads").steps[0]
    assert burst["app"]["pool_backlog"] is not None and burst["clients"] > 4 + burst["app"]["pool_backlog"]
    assert {"sync", "thread", "pool", "queue"} <= set(by_slug("summary").steps[0]["modes"])
    [axis] = by_slug("is-async-def-the-answer").steps
    assert axis["compare"] and {"sync", "thread", *ASYNC_VIEWS} <= set(axis["modes"])


ASYNC_VIEWS = (ASYNC_MODE, ASYNC_BLOCKING, FORGOTTEN_TASK, FORGOTTEN_THREAD_TASK)


def test_every_claim_of_the_async_lesson_is_shown_by_its_run(sink: Sink) -> None:
    """The lesson's scenario, sent as the page sends it, and each of its sentences about the routes checked on the
    traces: who waited in ensure_sync, which thread sent, what became of each task and its email."""
    [step] = by_slug("is-async-def-the-answer").steps
    sink.update_settings(step["sink"])
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False}, sink=sink)
    runs = {mode: Facts(record_trace(app, mode)) for mode in step["modes"]}
    for mode in ASYNC_VIEWS:  # the request's thread calls the coroutine, waits, and goes on once the loop closed
        facts = runs[mode]
        assert facts.on_request(facts.awaited_call) and not facts.on_request(facts.coroutine), mode
        assert facts.coroutine.thread.startswith("ThreadPoolExecutor-"), mode
        assert facts.on_request(facts.loop_closed) and facts.position(facts.loop_closed) < facts.position(
            facts.response
        )
    awaited, blocking = runs[ASYNC_MODE], runs[ASYNC_BLOCKING]
    assert awaited.send.thread.startswith("asyncio_") and awaited.in_coroutine(awaited.send)
    assert blocking.loop_sent
    for facts in (runs["sync"], awaited, blocking):  # the answer after the email's acceptance
        assert facts.position(facts.accepted) < facts.position(facts.response), facts.trace.mode
    forgotten = runs[FORGOTTEN_TASK]
    assert forgotten.in_order(forgotten.coroutine_end, forgotten.task_started, forgotten.task_end)
    assert forgotten.task_end.kind == "task.cancelled" and forgotten.send is None and forgotten.unsent is not None
    assert forgotten.status == 202 and sink.mailbox.copies(forgotten.trace.trace_id) == 0
    assert forgotten.trace.trace_id in {f.trace_id for f in app.extensions["sandbox.delivery"].failures()}
    handed = runs[FORGOTTEN_THREAD_TASK]
    assert handed.in_order(handed.task_send, handed.task_end, handed.task_send_end, handed.loop_closed, handed.response)
    assert handed.task_end.kind == "task.cancelled" and handed.status == 202
    assert runs["thread"].handoff is not None and runs["thread"].handoff.kind == "worker.spawned"
    ids = ",".join(f.trace.trace_id for f in runs.values())
    verdict = app.test_client().get(f"/api/lessons/is-async-def-the-answer/verdict?traces={ids}").get_json()
    assert verdict["answer"] == "never", verdict
    assert "before any mail.send() began" in verdict["evidence"] and "For contrast" in verdict["evidence"]


def test_every_prediction_check_is_asked_by_a_lesson() -> None:
    asked = {lesson.predict["check"] for lesson in load_lessons(LESSONS_DIR, MODES)}
    assert asked == set(CHECKS)


# Sentences a run can contradict: the lessons must point at the run instead.
RUN_DEPENDENT = [
    r"error happens later",
    r"answers? in (a few )?milliseconds",
    r"the user never knows",
    r"always arrives",
    r"a little over the sink delay",
    r"main_app_at",
]


@pytest.mark.parametrize("pattern", RUN_DEPENDENT)
def test_no_lesson_asserts_what_only_a_run_can_show(pattern: str) -> None:
    for path in sorted(LESSONS_DIR.glob("*.md")):
        assert not re.search(pattern, path.read_text(encoding="utf-8"), re.IGNORECASE), f"{path.name}: {pattern}"


@pytest.mark.parametrize(
    ("front", "words"),
    [
        (FRONT, "lacks scenario"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [fax]}]}\n", r"steps\[0\]\.modes"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], sink: {delay_s: 99}}]}\n", "delay_s"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], sink: {colour: red}}]}\n", "colour"),
        (
            FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], sink: {listening: no_}}]}\n",
            "listening",
        ),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], ping: maybe}]}\n", "ping"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], compare: true}]}\n", "compare"),
        (FRONT + "scenario: {description: d, steps: [{modes: [sync]}]}\n", "title"),
        (FRONT + "scenario: {description: d, steps: []}\n", "at least one step"),
        (FRONT.replace("objective: o", "objective: ''") + STEP, "objective"),
        (FRONT.replace("answer_before_acceptance", "guesswork") + STEP, "predict.check"),
        (FRONT.replace("email_first: e", "later: e") + STEP, "predict.options"),
        (FRONT.replace(PREDICT, "predict: {question: q}\n") + STEP, "predict.check"),
        (FRONT.replace(PREDICT, "") + STEP, "lacks predict"),
        (FRONT + "quiz_mode: thread\n" + STEP, "quiz_mode"),
        (FRONT + "quiz_step: 2\n" + STEP, "quiz_step"),
        (FRONT + "quiz_step: true\n" + STEP, "quiz_step"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], server: gunicorn}]}\n", "server"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [pool], clients: 0}]}\n", "clients"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [pool], clients: 21}]}\n", "clients"),
        (FRONT + "scenario: {description: d, steps: [{title: t, modes: [sync], clients: 3, ping: true}]}\n", "ping"),
        (FRONT + "scenario: {modes: [sync], delay_s: 1}\n", "unknown keys"),
        (
            FRONT.replace("wait_time", "guess") + "scenario: {description: d, steps: [{title: t, modes: [sync]}]}\n",
            "quiz kinds",
        ),
        (
            FRONT.replace("wait_time", "other_mode") + f"scenario: {{description: d, steps: [{{title: t, {BOTH}}}]}}\n",
            "other_mode needs",
        ),
        ("title: x\nsummary: y\norder: 1\nquiz: [wait_time]\nscenario: [\n", "not valid YAML"),
    ],
)
def test_malformed_lessons_fail_loudly_naming_the_file(tmp_path: Path, front: str, words: str) -> None:
    path = tmp_path / "01-bad.md"
    path.write_text(f"---\n{front}---\n# Text\n")
    with pytest.raises(LessonError, match=words) as excinfo:
        parse_lesson(path, MODES)
    assert str(excinfo.value).startswith("01-bad.md: ")


def test_a_step_leaves_nothing_to_the_visitors_settings(tmp_path: Path) -> None:
    path = tmp_path / "01-ok.md"
    path.write_text(
        f"---\n{FRONT}scenario:\n  description: d\n  steps:\n    - title: t\n      modes: [pool]\n"
        "      sink: {reject_probability: 1, reject_stage: rcpt}\n---\n# Text\n"
    )
    [step] = parse_lesson(path, MODES).steps
    assert step["sink"] == {
        "delay_s": 0.0,
        "greet_delay_s": 0.0,
        "jitter_s": 0.0,
        "reject_probability": 1.0,
        "reject_code": 451,
        "reject_stage": "RCPT",
        "disconnect_probability": 0.0,
        "seed": None,
        "lose_reply_probability": 0.0,
        "dedupe_message_id": False,
        "listening": True,
    }
    assert step["ping"] is False and step["compare"] is False and "rejects 100% at RCPT with 451" in step["sink_text"]


def test_lesson_pages(client: FlaskClient) -> None:
    listing = client.get("/lessons").get_data(as_text=True)
    assert listing.count('href="/lessons/') == len(load_lessons(LESSONS_DIR, MODES))
    page = client.get("/lessons/application-context")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Run it" in html and "Working outside of application context" in html
    assert 'data-scenario="{&#34;' in html and 'data-server="threaded"' in html
    assert "Sink: delay 1 s" in html and "put back when it ends" in html
    assert client.get("/lessons/nope").status_code == 404


def test_a_lesson_page_says_where_its_steps_send_and_lets_the_browser_go_there(app: Flask) -> None:
    client = app.test_client()
    alone = client.get("/lessons/why-blocking-blocks")
    html = alone.get_data(as_text=True)
    assert 'id="ping-report"' in html and "a server this sandbox does not run" in html
    assert "connect-src" not in alone.headers["Content-Security-Policy"]
    assert 'id="ping-report"' not in client.get("/lessons/threads-in-flask").get_data(as_text=True)
    app.config["SANDBOX_SERVER_PORTS"] = {"threaded": 80, "single": 8081}
    both = client.get("/lessons/why-blocking-blocks")
    html = both.get_data(as_text=True)
    assert "the steps on its single server send to\n      http://localhost:8081" in html
    assert "&#34;single&#34;: &#34;http://localhost:8081&#34;" in html and "on the sandbox's single server" in html
    assert both.headers["Content-Security-Policy"].endswith("; connect-src 'self' http://localhost:8081")


def test_visitors_on_the_single_server_are_answered_in_turn_and_the_verdict_says_when(
    app: Flask, sink: Sink, live_server: Callable[[str], AppServer]
) -> None:
    """The two servers share one requests log; each trace sees only its own server's other requests."""
    sink.handler.delay_s = 0.3
    single, threaded = live_server("single"), live_server("threaded")

    def burst(server: AppServer) -> list[str]:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: call(server.url + "send-email/sync", "POST", {}), range(3)))
        return [reply.body["trace_id"] for reply in answers]

    ids = burst(single) + burst(threaded)
    verdict = app.test_client().get(f"/api/lessons/why-blocking-blocks/verdict?traces={','.join(ids)}").get_json()
    assert verdict["answer"] == "in_turn", verdict
    assert "On the single server, the 3 visitors were answered" in verdict["evidence"]
    assert "For contrast, on the threaded server, the 3 visitors were answered" in verdict["evidence"]
    tracer, log = app.extensions["sandbox.tracer"], app.extensions["sandbox.requests"]
    for trace_id, kind in zip(ids, ["single"] * 3 + ["threaded"] * 3, strict=True):
        trace = tracer.get(trace_id)
        assert trace.server == kind
        others = observed_server(trace, log).requests
        assert all(r.path == "/send-email/sync" for r in others)
        assert len(others) <= 2 and all(o.id in {e.id for e in log.between(0, 2**63, server=kind)} for o in others)
    together = app.test_client().get(f"/api/lessons/why-blocking-blocks/verdict?traces={','.join(ids[3:])}")
    assert together.get_json()["answer"] is None, "no single-server sends: nothing to judge the prediction by"


def test_the_dead_server_lesson_says_what_it_does_to_the_sink(client: FlaskClient) -> None:
    html = client.get("/lessons/failures-and-timeouts").get_data(as_text=True)
    assert "not listening: every connection is refused" in html
    assert "rejects 100% at RCPT with 451" in html and "rejects 100% at RCPT with 550" in html


def test_every_lesson_states_an_objective_and_a_prediction_its_run_can_judge() -> None:
    for lesson in load_lessons(LESSONS_DIR, MODES):
        assert lesson.objective and lesson.predict["question"].endswith("?"), lesson.slug
        assert len(lesson.predict["options"]) >= 2


def test_the_verdict_names_what_the_run_showed(app: Flask, client: FlaskClient) -> None:
    sync, thread, pool = record_trace(app, "sync"), record_trace(app, "thread"), record_trace(app, "pool")
    summary = client.get(f"/api/lessons/summary/verdict?traces={sync.trace_id},{thread.trace_id},{pool.trace_id}")
    verdict = summary.get_json()
    assert summary.status_code == 200 and verdict["check"] == "only_blocking_waits"
    assert verdict["answer"] == "only_blocking", verdict
    assert "sync: mail.send() ran on the request's thread" in verdict["evidence"]
    assert (
        "thread: mail.send() ran on Thread-" in verdict["evidence"]
        and "pool: mail.send() ran on pool" in verdict["evidence"]
    )
    awaited = record_trace(app, "async-await")
    both = f"{sync.trace_id},{awaited.trace_id},{thread.trace_id}"
    undecided = client.get(f"/api/lessons/summary/verdict?traces={both}").get_json()
    assert undecided["answer"] is None, "an async def route waits too: neither option is what this run shows"
    order = client.get(f"/api/lessons/threads-in-flask/verdict?traces={thread.trace_id}").get_json()
    assert order["answer"] in ("answer_first", "email_first") and order["answer_text"]


def test_a_server_slower_than_the_timeout_makes_the_blocking_route_give_up(sink: Sink) -> None:
    sink.update_settings({"greet_delay_s": 0.6})
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 0.2}, sink=sink)
    sync, thread = record_trace(app, "sync"), record_trace(app, "thread")
    verdict = app.test_client().get(
        f"/api/lessons/failures-and-timeouts/verdict?traces={sync.trace_id},{thread.trace_id}"
    )
    body = verdict.get_json()
    assert body["answer"] == "gives_up", body
    assert "The blocking route answered HTTP 504" in body["evidence"] and "SMTP timeout was 0.2 s" in body["evidence"]
    assert "its worker recorded the failure" in body["evidence"] and "after that answer left" in body["evidence"]
    assert sink.mailbox.messages() == []


def test_the_queue_verdict_names_the_consumer_thread(app: Flask, client: FlaskClient) -> None:
    app.extensions["sandbox.queue"].start_consumer(1)
    try:
        queued, thread = record_trace(app, "queue"), record_trace(app, "thread")
    finally:
        app.extensions["sandbox.queue"].stop_consumer(5)
    verdict = client.get(f"/api/lessons/a-task-queue/verdict?traces={queued.trace_id},{thread.trace_id}").get_json()
    assert verdict["answer"] == "consumer", verdict
    assert "a worker of the queue's consumer" in verdict["evidence"]
    assert "a thread that route started itself" in verdict["evidence"]


def test_a_run_that_cannot_decide_says_so(app: Flask, client: FlaskClient) -> None:
    sync = record_trace(app, "sync")
    verdict = client.get(f"/api/lessons/threads-in-flask/verdict?traces={sync.trace_id}").get_json()
    assert verdict["answer"] is None and verdict["answer_text"] is None
    assert "no thread send" in verdict["evidence"]
    visitors = client.get(f"/api/lessons/why-blocking-blocks/verdict?traces={sync.trace_id}").get_json()
    assert visitors["answer"] is None, "one blocking send, on no single server: nothing to judge the prediction by"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/lessons/nope/verdict?traces=a", 404),
        ("/api/lessons/threads-in-flask/verdict", 400),
        ("/api/lessons/threads-in-flask/verdict?traces=" + ",".join(["x"] * 21), 400),
        ("/api/lessons/threads-in-flask/verdict?traces=0123", 404),
    ],
)
def test_bad_verdict_requests_are_4xx_with_a_message(client: FlaskClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status and response.get_json()["error"]


@pytest.mark.parametrize(("backlog", "answer"), [(1, "refused"), (None, "queued")])
def test_the_pool_verdict_counts_refusals_and_what_the_pool_ran_at_once(
    sink: Sink, backlog: int | None, answer: str
) -> None:
    sink.handler.delay_s = 0.3
    config = {"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_POOL_SIZE": 2, "SANDBOX_POOL_BACKLOG": backlog}
    app = create_app(config, sink=sink)
    client = app.test_client()
    ids = [client.post("/send-email/pool", json={}).get_json()["trace_id"] for _ in range(6)]
    assert app.extensions["sandbox.delivery"].wait_settled(15)
    time.sleep(0.1)
    verdict = client.get(f"/api/lessons/a-pool-of-threads/verdict?traces={','.join(ids)}").get_json()
    assert verdict["answer"] == answer, verdict
    assert "It sent at most 2 at the same time (it has 2 threads)" in verdict["evidence"]
    if backlog is not None:
        assert "the pool took 3 and refused 3 at once with HTTP 503" in verdict["evidence"]
        assert len(sink.mailbox.messages()) == 3
    later = [client.post("/send-email/pool", json={}).get_json()["trace_id"] for _ in range(2)]
    assert app.extensions["sandbox.delivery"].wait_settled(15)
    both = client.get(f"/api/lessons/a-pool-of-threads/verdict?traces={','.join(ids + later)}").get_json()
    assert both["evidence"] == verdict["evidence"], "a later burst is not part of the first one"
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])


def test_every_python_block_in_the_lessons_is_valid_python() -> None:
    fence = "`" * 3
    for path in sorted(LESSONS_DIR.glob("*.md")):
        blocks = re.findall(rf"^{fence}python\n(.*?)^{fence}", path.read_text(encoding="utf-8"), re.M | re.S)
        for block in blocks:
            try:
                ast.parse(block)
            except SyntaxError as err:
                raise AssertionError(f"{path.name}: a Python block does not parse: {err}\n{block}") from err


def test_a_lesson_shows_the_students_code_as_the_file_has_it(tmp_path) -> None:
    from sandbox.render.code_panes import APP_FILE
    from sandbox.web.lessons import LessonError, with_student_code

    shown = with_student_code(tmp_path / "x.md", "Before\n<!-- code: send_async_email -->\nAfter")
    source = (Path(__file__).resolve().parents[2] / APP_FILE).read_text(encoding="utf-8")
    code = shown.split("```python\n")[1].split("\n```")[0]
    assert code in source and code.startswith("def send_async_email(app, msg):")
    with pytest.raises(LessonError, match="no function nowhere"):
        with_student_code(tmp_path / "x.md", "<!-- code: nowhere -->")
