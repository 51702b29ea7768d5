from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask

from sandbox import create_app
from sandbox.client import call
from sandbox.render.document import report, trace_document
from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from sandbox.trace.facts import Facts
from sandbox.trace.quiz import (
    ANSWERED_MEANWHILE,
    ASYNC_BACKGROUND,
    ASYNC_NO,
    ASYNC_TASK,
    ASYNC_UNSUPPORTED,
    KILL_FATES,
    QUIZ_KINDS,
    TASK_AFTER,
    TASK_BACKGROUND,
    TASK_HELD,
    TASK_NEVER,
    WAITED_MEANWHILE,
    make_quiz,
)
from sandbox.trace.steps import rows_from
from sandbox.trace.tracer import Event, Trace
from tests.conftest import record_trace, settings_for_tests
from tests.trace.truth import evaluate


def quiz_of(trace, other=None, seed=0, kinds=QUIZ_KINDS):
    facts = Facts(trace)
    other_facts = Facts(other, prefix="other:") if other is not None else None
    return make_quiz(facts, rows_from(facts), seed, other_facts, kinds)


def test_every_option_and_feedback_carries_claims_that_hold(recorded_traces) -> None:
    checked = 0
    for sync, thread in recorded_traces:
        for trace, other in ((sync, thread), (thread, sync)):
            for seed in range(3):
                document = trace_document(report(trace, seed, other))
                for question in report(trace, seed, other).quiz:
                    assert len(question.options) == len(set(question.options)) >= 3
                    assert question.misconceptions[question.answer] is None
                    assert all(m for i, m in enumerate(question.misconceptions) if i != question.answer)
                    assert len(question.feedback) == len(question.options)
                    for key, claims in question.claims.items():
                        assert claims, (question.kind, key)
                        for claim in claims:
                            assert evaluate(claim, document), (question.kind, key, claim)
                            checked += 1
    assert checked > 500


def test_wrong_feedback_names_the_misconception_and_the_fact(recorded_traces) -> None:
    sync, thread = recorded_traces[2]
    question = next(q for q in quiz_of(thread, sync) if q.kind == "response_step")
    wrong = [f for i, f in enumerate(question.feedback) if i != question.answer]
    assert all(f.startswith(("You may believe ", "You may have read the table too quickly")) for f in wrong)
    assert any("You may believe the answer waits for the email to be accepted" in f for f in wrong)
    assert not any("believes" in f.lower() for f in wrong), "a misconception tag must not be pasted in as it is"


def test_same_trace_and_seed_give_the_same_quiz(recorded_traces) -> None:
    sync, thread = recorded_traces[0]
    assert quiz_of(thread, sync, 3) == quiz_of(thread, sync, 3)
    orders = {tuple(tuple(q.options) for q in quiz_of(thread, sync, seed)) for seed in range(10)}
    assert len(orders) > 1, "different seeds should shuffle differently"


def test_the_what_if_question_needs_a_partner_of_the_other_kind(recorded_traces) -> None:
    sync_a, thread_a = recorded_traces[0]
    assert "other_mode" not in {q.kind for q in quiz_of(thread_a)}
    assert "other_mode" in {q.kind for q in quiz_of(sync_a, thread_a)}


def test_the_what_if_answer_follows_the_partners_fate(recorded_traces) -> None:
    sync_ok, _ = recorded_traces[0]
    _, thread_dead = recorded_traces[-1]  # the sink was down: the thread's email was not delivered
    question = next(q for q in quiz_of(sync_ok, thread_dead) if q.kind == "other_mode")
    assert question.options[question.answer].endswith("the email was not delivered")


@pytest.mark.parametrize(
    ("mode", "fate"),
    [
        ("sync", KILL_FATES[0][0]),
        ("async-await", KILL_FATES[0][0]),
        ("thread", KILL_FATES[1][0]),
        ("pool", KILL_FATES[1][0]),
    ],
)
def test_killed_at_answers_from_where_the_send_lived(app: Flask, sink: Sink, mode: str, fate: str) -> None:
    sink.handler.delay_s = 0.1
    trace = record_trace(app, mode)
    [question] = [q for q in quiz_of(trace, None) if q.kind == "killed_at"]
    assert question.options[question.answer] == fate
    assert "Nothing happens to it: the server had already answered 250" in question.options


@pytest.mark.parametrize("mode", ["thread-proxy", "thread-no-context"])
def test_why_no_context_points_at_the_workers_missing_context(app: Flask, mode: str) -> None:
    trace = record_trace(app, mode)
    [question] = [q for q in quiz_of(trace) if q.kind == "why_no_context"]
    assert question.options[question.answer].startswith("current_app finds the app through the current thread's")
    assert all(f.startswith("You may ") for i, f in enumerate(question.feedback) if i != question.answer)


def test_a_working_worker_gets_no_why_no_context_question(app: Flask) -> None:
    assert not [q for q in quiz_of(record_trace(app, "thread")) if q.kind == "why_no_context"]


@pytest.mark.parametrize(
    ("server", "threads", "right"),
    [
        ("threaded", 1, ANSWERED_MEANWHILE),
        ("single", 1, WAITED_MEANWHILE),
        ("pooled", 2, ANSWERED_MEANWHILE),  # a thread was free for the pings
        ("pooled", 1, WAITED_MEANWHILE),  # the send held the pool's only thread
    ],
)
def test_who_waits_is_answered_by_the_server_that_really_ran(
    server: str, threads: int, right: str, tmp_path: Path
) -> None:
    queue_url = f"sqlite:///{tmp_path}/q.db"
    settings = settings_for_tests(delay_s=0.4, server=server, http_threads=threads, queue_url=queue_url)
    with Sandbox(settings) as sandbox, ThreadPoolExecutor(3) as clients:
        blocking = clients.submit(call, f"{sandbox.url}send-email/sync", "POST", {})
        time.sleep(0.1)
        pings = [clients.submit(call, f"{sandbox.url}api/ping") for _ in range(2)]
        trace_id = blocking.result().body["trace_id"]
        assert all(p.result().status == 200 for p in pings)
        document = call(f"{sandbox.url}api/traces/{trace_id}").body
    [question] = [q for q in document["quiz"] if q["kind"] == "who_waits"]
    assert question["options"][question["answer"]] == right


@pytest.mark.parametrize("mode", ["sync", "async-await"])
def test_async_def_is_answered_by_the_run_of_a_send_the_route_waited_for(app: Flask, sink: Sink, mode: str) -> None:
    sink.handler.delay_s = 0.1
    trace = record_trace(app, mode)
    [question] = [q for q in quiz_of(trace) if q.kind == "async_def"]
    assert question.options[question.answer] == ASYNC_NO
    assert set(question.options) == {ASYNC_NO, ASYNC_BACKGROUND, ASYNC_TASK, ASYNC_UNSUPPORTED}
    assert question.misconceptions[question.answer] is None
    assert all(question.misconceptions[i] for i in range(len(question.options)) if i != question.answer)
    assert all(f.startswith("You may believe ") for i, f in enumerate(question.feedback) if i != question.answer)
    facts = Facts(trace)
    answered, ended = facts.step(facts.response), facts.step(facts.send_end)
    assert ended < answered and question.step == answered
    assert f"step {ended}" in question.explanation and f"step {answered}" in question.explanation
    if mode == "sync":
        assert "on the request's thread" in question.explanation
    else:
        assert question.question.startswith("This route is written as async def")
        assert "waited in app.ensure_sync()" in question.explanation
    document = trace_document(report(trace))
    for claims in question.claims.values():
        assert claims and all(evaluate(claim, document) for claim in claims)


@pytest.mark.parametrize(
    ("mode", "dead", "right"),
    [
        ("async-fire-and-forget", False, TASK_NEVER),
        ("async-fire-and-forget", True, TASK_NEVER),
        ("async-to-thread-and-forget", False, TASK_HELD),
        ("async-to-thread-and-forget", True, TASK_HELD),  # a refused send ran to its end too, while the answer waited
    ],
)
def test_created_task_is_answered_by_the_tasks_fate(
    app: Flask, sink: Sink, closed_port: int, mode: str, dead: bool, right: str
) -> None:
    sink.handler.delay_s = 0.1
    if dead:
        app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": closed_port})
    trace = record_trace(app, mode)
    [question] = [q for q in quiz_of(trace) if q.kind == "created_task"]
    assert question.options[question.answer] == right
    assert set(question.options) == {TASK_NEVER, TASK_AFTER, TASK_HELD, TASK_BACKGROUND}
    misconceptions = {question.options[i]: m for i, m in enumerate(question.misconceptions)}
    assert misconceptions[TASK_AFTER] == "Believes a task created in a view runs after the response"
    assert misconceptions[TASK_BACKGROUND] == "Believes async def makes Flask non-blocking"
    document = trace_document(report(trace))
    for claims in question.claims.values():
        assert claims and all(evaluate(claim, document) for claim in claims)
    assert not [q for q in quiz_of(record_trace(app, "async-await")) if q.kind == "created_task"]


def test_async_def_is_not_asked_when_the_run_cannot_decide_it(app: Flask, closed_port: int) -> None:
    # A send handed to a worker: the answer did not wait for it, so the question is not about this route.
    assert not [q for q in quiz_of(record_trace(app, "thread")) if q.kind == "async_def"]
    # No 250 ever came: "before the mail server's 250" has no answer in this run.
    dead = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "MAIL_PORT": closed_port})
    for mode in ("sync", "async-await"):
        trace = record_trace(dead, mode)
        assert trace.first("smtp.failed") is not None
        assert not [q for q in quiz_of(trace) if q.kind == "async_def"]


def test_async_def_is_not_asked_of_a_send_that_has_not_ended() -> None:
    events = [
        Event(t * 1_000_000, thread, tid, kind, details, "sandbox/x.py", 1, "f")
        for t, thread, tid, kind, details in (
            (0, "request-1", 1, "request.received", {"method": "POST", "path": "/send-email/async-await"}),
            (1, "request-1", 1, "message.built", {}),
            (2, "request-1", 1, "coroutine.called", {"function": "send_and_await", "via": "app.ensure_sync"}),
            (3, "loop-1", 2, "coroutine.started", {"function": "send_and_await", "loop": "loop-1"}),
            (4, "asyncio_0", 3, "send.started", {"via": "asyncio.to_thread"}),
            (5, "asyncio_0", 3, "smtp.data_sent", {"size": 1}),
        )
    ]
    trace = Trace("t", "async-await", "threaded", 0.0, {}, {}, events)
    assert not [q for q in quiz_of(trace) if q.kind == "async_def"]


def test_an_async_views_send_is_placed_on_its_executor_thread_and_its_request_waits(app: Flask, sink: Sink) -> None:
    sink.handler.delay_s = 0.1
    trace = record_trace(app, "async-await")
    questions = {q.kind: q for q in quiz_of(trace)}
    send_thread = questions["send_thread"]
    executor = trace.first("send.started").thread
    assert send_thread.options[send_thread.answer] == f"{executor} (an executor thread the coroutine awaited)"
    assert any(o.endswith("(the event loop's thread, where the coroutine ran)") for o in send_thread.options)
    at = questions["request_thread_at"]
    assert at.options[at.answer] == "Waiting in app.ensure_sync() for the coroutine to finish"
    assert "who_waits" not in questions and "why_no_context" not in questions
