"""Every sentence a student reads is checked, claim by claim, against the events that were recorded.

Three layers:

- the checker itself (``tests/truth.py``) on small hand-made documents: each operation true and false, so the
  checker cannot pass everything silently;
- Hypothesis-made traces of a thread-style and a sync-style send, with every interleaving of the worker, the sink
  and the response, equal timestamps, zero delays and failures (a lost reply among them), rendered and checked; of
  an async def view (the request's thread, the event loop's, the executor's and the sink's, in any causal order);
  and of a blind retrier's attempts, each with its own sink lane that stores, recognises by Message-ID or loses its
  250;
- the live matrix: every mode and variant x sink column x fault (lost replies, with and without a deduping sink,
  among them) x server kind, real sends to real sinks.
"""

from __future__ import annotations

import copy
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.app import emails
from sandbox.client import call
from sandbox.config import Settings
from sandbox.render.document import report, trace_document
from sandbox.runtime import Sandbox
from sandbox.testing import free_port
from sandbox.trace.tracer import Event, Trace
from tests.app.student_lines import unlit_events
from tests.conftest import settings_for_tests
from tests.trace.truth import (
    ClaimError,
    check_document,
    claim_values,
    durations,
    evaluate,
    negative_durations,
    parse,
    verdict,
)

# ----------------------------------------------------------------------------------------------- hand-made doc

REQ, WORKER, SINK = ("Thread-3 (process_request_thread)", 11), ("mail-1", 12), ("smtp-sink", 13)


def _event(t_ms: float, lane: tuple[str, int], kind: str, **details: Any) -> dict[str, Any]:
    return {"t_ms": t_ms, "thread": lane[0], "thread_id": lane[1], "kind": kind, "details": details}


def _steps_of(events: list[dict[str, Any]], hidden: tuple[str, ...] = ("smtp.command",)) -> list[dict[str, Any]]:
    shown = [e for e in events if e["kind"] not in hidden]
    return [
        {
            "step": n,
            "kind": e["kind"],
            "t_ms": e["t_ms"],
            "thread": e["thread"],
            "action": f"{e['kind']} happens",
            "thread_state": "",
            "main_app_state": "",
            "output": "",
        }
        for n, e in enumerate(shown, start=1)
    ]


def make_doc() -> dict[str, Any]:
    """A threaded send: the response leaves at 1.2 ms, the same millisecond the worker calls mail.send()."""
    events = [
        _event(0.0, REQ, "request.received", method="POST", path="/send-email/thread"),  # 0
        _event(0.5, REQ, "message.built"),  # 1
        _event(0.7, REQ, "worker.spawned", worker="mail-1"),  # 2
        _event(0.9, WORKER, "worker.started", worker="mail-1"),  # 3
        _event(1.2, REQ, "response.sent", status=202),  # 4
        _event(1.2, WORKER, "send.started"),  # 5: same t_ms, after in list order
        _event(2.0, WORKER, "smtp.command", command="MAIL"),  # 6
        _event(2.5, WORKER, "smtp.command", command="RCPT"),  # 7
        _event(302.345, SINK, "sink.accepted", message_id=1, reply="250 Message accepted for delivery"),  # 8
        _event(303.0, WORKER, "smtp.accepted", recipients=["student@example.com"]),  # 9
        _event(303.5, WORKER, "worker.finished", final=False, delay_s=0.3),  # 10
    ]
    other_events = [
        _event(0.0, REQ, "request.received"),
        _event(0.3, REQ, "send.started"),
        _event(300.1, SINK, "sink.accepted", message_id=2),
        _event(300.5, REQ, "smtp.accepted"),
        _event(301.0, REQ, "response.sent", status=200),
    ]
    requests = [
        # answered between request.received (0) and response.sent (1.2), after 5.4 ms
        {"id": 1, "method": "GET", "path": "/api/ping", "arrived_ms": -5.0, "started_ms": -4.0, "finished_ms": 0.4},
        # waiting at worker.started (0.9) for 0.3 ms; busy from 1.5 to 2.2; answered after response.sent, after 1.6 ms
        {"id": 2, "method": "GET", "path": "/api/ping", "arrived_ms": 0.6, "started_ms": 1.5, "finished_ms": 2.2},
        # waiting from 1.0 on, never started
        {"id": 3, "method": "GET", "path": "/", "arrived_ms": 1.0, "started_ms": None, "finished_ms": None},
    ]
    return {
        "trace_id": "t1",
        "mode": "thread",
        "events": events,
        "steps": _steps_of(events),
        "server": {"kind": "single", "observed": True, "requests": requests},
        "compared_with": {
            "trace_id": "t0",
            "mode": "sync",
            "events": other_events,
            "steps": _steps_of(other_events),
        },
        "key_moments": [],
        "quiz": [],
        "claims": [],
    }


DOC = make_doc()

# Each operation, true and false. The steps: 1 request.received, 2 message.built, 3 worker.spawned,
# 4 worker.started, 5 response.sent, 6 send.started, 7 sink.accepted, 8 smtp.accepted, 9 worker.finished.
TRUE_CLAIMS = [
    "happened(response.sent)",
    "happened(smtp.command#2)",
    "happened(last:smtp.command)",
    "happened(@9)",
    "happened(other:sink.accepted)",
    "happened(other:@5)",
    "absent(smtp.failed)",
    "absent(other:worker.started)",
    "count(smtp.command, 2)",
    "count(response.sent, 1)",
    "count(other:response.sent, 1)",
    "before(response.sent, sink.accepted)",
    "before(response.sent, send.started)",  # equal t_ms: list order decides
    "before(smtp.command, smtp.command#2)",
    "before(smtp.command, last:smtp.command)",
    "before(@1, @2)",
    "before(response.sent, other:response.sent)",  # across traces: t_ms from each start
    "none_before(response.sent, response.sent)",
    "none_before(smtp.accepted, sink.accepted)",
    "none_before(smtp.command, send.started)",
    "none_between(sink.accepted, response.sent, send.started)",
    "none_between(response.sent, worker.started, response.sent)",  # e2 itself does not count
    "none_between(smtp.command, smtp.command, last:smtp.command)",
    "none_between(other:smtp.accepted, other:request.received, other:sink.accepted)",
    "same_thread(send.started, worker.finished)",
    "same_thread(@1, response.sent)",
    "other_thread(response.sent, send.started)",
    "other_thread(sink.accepted, smtp.accepted)",
    "at_ms(response.sent, 1.2, 0)",
    "at_ms(sink.accepted, 302.3, 0.05)",
    "at_ms(sink.accepted, 302.346, 0)",  # within the rounding of t_ms
    "at_ms(other:response.sent, 301, 0)",
    "gap_ms(response.sent, sink.accepted, 301.145, 0)",
    "gap_ms(response.sent, send.started, 0, 0)",
    "gap_ms(send.started, response.sent, 0, 0)",  # equal times: a gap of 0 either way
    "gap_ms(other:request.received, other:response.sent, 300, 1)",
    "within_ms(request.received, response.sent, 0, 10)",
    "within_ms(request.received, sink.accepted, 100, 1000)",
    "within_ms(request.received, worker.finished, 0, inf)",
    "within_ms(response.sent, send.started, 0, 10)",
    "detail(response.sent, status, 202)",
    "detail(response.sent, status, 202.0)",
    'detail(request.received, path, "/send-email/thread")',
    'detail(request.received, "method", "POST")',
    'detail(smtp.accepted, recipients, ["student@example.com"])',
    "detail(worker.finished, final, false)",
    'detail(sink.accepted, reply, "250 Message accepted for delivery")',
    "detail(other:response.sent, status, 200)",
    "step(5, response.sent)",
    "step(1, request.received)",
    "step(7, sink.accepted)",
    "step(4, other:smtp.accepted)",
    "threads(3)",
    "server_observed()",
    "server_answered(request.received, response.sent, 1, 5.4, 0)",
    "server_answered(response.sent, worker.finished, 1, 1.6, 0.01)",
    "server_answered(request.received, worker.finished, 2, 5.4, 0)",
    "server_answered(response.sent, send.started, 0, 0, 0)",
    "server_waiting(worker.started, 1, 0.3, 0)",
    "server_waiting(response.sent, 2, 0.6, 0)",
    "server_waiting(request.received, 0, 0, 0)",
    "server_waiting(worker.finished, 1, 302.5, 0)",
    "server_busy(request.received, 1)",
    "server_busy(response.sent, 0)",
    "server_busy(smtp.command, 1)",
    "server_busy(last:smtp.command, 0)",
    "not(before(sink.accepted, response.sent))",
    "not(happened(smtp.failed))",  # a missing event is false, so its negation is true
    "not(before(smtp.failed, response.sent))",
    "not(at_ms(response.sent, 5000, 1))",
    "any(before(sink.accepted, response.sent), before(response.sent, sink.accepted))",
    "any(happened(smtp.failed), absent(smtp.failed))",
    "not(not(happened(@1)))",
]
FALSE_CLAIMS = [
    "happened(smtp.failed)",
    "happened(smtp.command#3)",
    "happened(last:smtp.failed)",
    "happened(@10)",
    "happened(other:worker.started)",
    "absent(response.sent)",
    "absent(other:response.sent)",
    "count(smtp.command, 1)",
    "count(smtp.failed, 1)",
    "before(sink.accepted, response.sent)",
    "before(send.started, response.sent)",  # equal t_ms, but later in the list
    "before(response.sent, response.sent)",
    "before(response.sent, smtp.failed)",  # an event that did not happen makes the claim false
    "before(smtp.failed, response.sent)",
    "before(other:response.sent, response.sent)",
    "none_before(smtp.command, smtp.accepted)",
    "none_before(request.received, response.sent)",
    "none_before(smtp.failed, smtp.failed)",
    "none_between(smtp.command, response.sent, sink.accepted)",
    "none_between(response.sent, request.received, worker.finished)",
    "none_between(smtp.failed, response.sent, smtp.failed)",
    "same_thread(response.sent, send.started)",
    "same_thread(sink.accepted, smtp.failed)",
    "other_thread(send.started, worker.finished)",
    "other_thread(response.sent, smtp.failed)",
    "at_ms(response.sent, 1.3, 0.05)",
    "at_ms(sink.accepted, 302.3, 0.04)",
    "at_ms(sink.accepted, 5000, 1)",
    "at_ms(smtp.failed, 0, 1000000)",
    "gap_ms(response.sent, sink.accepted, 300, 1)",
    "gap_ms(sink.accepted, response.sent, 301.145, 0)",  # negative
    "gap_ms(sink.accepted, response.sent, -301.145, 0)",  # never negative, whatever v says
    "gap_ms(response.sent, smtp.failed, 0, 1000)",
    "within_ms(request.received, response.sent, 10, 100)",
    "within_ms(request.received, sink.accepted, 0, 302.345)",  # hi excluded
    "within_ms(sink.accepted, response.sent, 0, inf)",
    "within_ms(request.received, smtp.failed, 0, inf)",
    "detail(response.sent, status, 200)",
    'detail(response.sent, status, "202")',
    "detail(response.sent, code, 202)",
    "detail(worker.finished, final, 0)",  # false is not 0
    'detail(smtp.accepted, recipients, ["someone@example.com"])',
    "detail(smtp.failed, code, 451)",
    "step(5, send.started)",
    "step(4, response.sent)",
    "step(11, response.sent)",
    "step(5, smtp.failed)",
    "threads(2)",
    "threads(4)",
    "server_answered(request.received, response.sent, 2, 5.4, 0)",
    "server_answered(request.received, response.sent, 1, 5.0, 0.1)",
    "server_answered(response.sent, send.started, 0, 5, 1)",
    "server_answered(request.received, smtp.failed, 0, 0, 0)",
    "server_waiting(worker.started, 0, 0, 0)",
    "server_waiting(response.sent, 2, 0.2, 0.1)",
    "server_waiting(smtp.failed, 0, 0, 0)",
    "server_busy(request.received, 0)",
    "server_busy(response.sent, 1)",
    "not(before(response.sent, sink.accepted))",
    "not(absent(smtp.failed))",
    "any(before(sink.accepted, response.sent), happened(smtp.failed))",
    "any(not(happened(@1)))",
]


@pytest.mark.parametrize("claim", TRUE_CLAIMS)
def test_true_claims(claim: str) -> None:
    result = verdict(claim, DOC)
    assert result.ok, f"{claim} should be true: {result.why}"


@pytest.mark.parametrize("claim", FALSE_CLAIMS)
def test_false_claims(claim: str) -> None:
    result = verdict(claim, DOC)
    assert not result.ok, f"{claim} should be false: {result.why}"


def test_every_operation_is_tested_both_ways() -> None:
    ops = {
        "happened", "absent", "count", "before", "none_before", "none_between", "same_thread", "other_thread",
        "at_ms", "gap_ms", "within_ms", "detail", "step", "threads", "server_observed", "server_answered",
        "server_waiting", "server_busy", "not", "any",
    }  # fmt: skip
    assert {parse(c).op for c in TRUE_CLAIMS} == ops
    assert {parse(c).op for c in FALSE_CLAIMS} == ops - {"server_observed"}  # its false case is below


def test_server_observed_is_false_without_a_log() -> None:
    for server in (None, "threaded", {"kind": "threaded", "observed": False, "requests": []}, {"kind": "single"}):
        doc = {**DOC, "server": server}
        assert not evaluate("server_observed()", doc)
        assert not evaluate("server_busy(request.received, 0)", doc)
        assert not evaluate("server_waiting(request.received, 0, 0, 0)", doc)
        assert not evaluate("server_answered(request.received, response.sent, 0, 0, 0)", doc)


def test_other_refs_are_false_without_a_compared_trace() -> None:
    doc = {**DOC, "compared_with": None}
    assert not evaluate("happened(other:response.sent)", doc)
    assert not evaluate("before(request.received, other:response.sent)", doc)
    assert evaluate("not(happened(other:response.sent))", doc)


def test_a_step_that_shows_no_recorded_event_names_nothing() -> None:
    doc = copy.deepcopy(DOC)
    doc["steps"][4]["t_ms"] = 1.25
    assert not evaluate("happened(@5)", doc)
    assert not evaluate("step(5, response.sent)", doc)
    problems = check_document(doc)
    assert any("step 5 shows response.sent at 1.25 ms" in p for p in problems), problems


def test_step_refs_match_the_first_event_with_the_same_kind_time_and_thread() -> None:
    doc = copy.deepcopy(DOC)
    doc["events"].insert(5, _event(1.2, REQ, "response.sent", status=500))  # a twin: same kind, time, thread
    doc["steps"] = _steps_of(doc["events"])
    assert evaluate("detail(@5, status, 202)", doc)
    assert evaluate("detail(@6, status, 202)", doc)  # step 6 shows the twin, but it names the first match
    assert evaluate("detail(response.sent#2, status, 500)", doc)


@pytest.mark.parametrize(
    "claim",
    [
        "",
        "happened",
        "happened(response.sent",
        "happened(response.sent))",
        "happened(response.sent) and more",
        "frobnicate(response.sent)",
        "happened()",
        "happened(response.sent, sink.accepted)",
        "before(response.sent)",
        "happened(response sent)",
        "happened(@x)",
        "happened(response.sent#x)",
        "happened(response.sent#0)",
        "at_ms(response.sent, soon, 1)",
        "at_ms(response.sent, 1.2, -1)",
        "at_ms(response.sent, 1.2, nan)",
        "count(smtp.command, 1.5)",
        "detail(response.sent, status, two hundred)",
        'detail(response.sent, status, "202)',
        "detail(response.sent, bad key, 202)",
        "within_ms(request.received, response.sent, 10, 0)",
        "not(happened(response.sent), happened(sink.accepted))",
        "any()",
        "not(frobnicate(x))",
        "any(happened(response.sent), nonsense)",
        "server_observed(response.sent)",
        "happened(response.sent,)",
    ],
)
def test_unreadable_claims_are_checker_errors(claim: str) -> None:
    with pytest.raises(ClaimError):
        evaluate(claim, DOC)


def test_arguments_respect_nesting_and_json_strings() -> None:
    doc = copy.deepcopy(DOC)
    doc["events"][9]["details"]["note"] = 'a, b (c) "d" [e'
    assert evaluate(r'detail(smtp.accepted, note, "a, b (c) \"d\" [e")', doc)
    assert evaluate('any(detail(smtp.accepted, note, "x, y)"), before(response.sent, sink.accepted))', doc)
    assert evaluate(" before ( response.sent ,  sink.accepted ) ", doc)
    assert evaluate('detail(smtp.accepted, recipients, [ "student@example.com" ])', doc)


def test_durations_in_texts() -> None:
    found = [(d.written, round(d.ms, 6)) for d in durations("3.8 ms, then 2.01 s; 120 µs and 0.04 ms")]
    assert found == [("3.8 ms", 3.8), ("2.01 s", 2010.0), ("120 µs", 0.12), ("0.04 ms", 0.04)]
    assert [d.ms for d in durations("about 1 to 3 s")] == [1000.0, 3000.0]
    assert [d.ms for d in durations("under 10 ms")] == [10.0]
    assert [d.ms for d in durations("0.1 to 1 s")] == [100.0, 1000.0]
    assert [d.ms for d in durations("a fixed 5 s wait, 1,200.5 ms")] == [5000.0, 1200.5]
    assert durations("Step 5 of 12, HTTP 202, 4 sends, 3 steps, 2 sinks, pool of 4 threads") == []
    assert negative_durations("it took −3.2 ms") == ["−3.2 ms"]
    assert negative_durations("it took -0.5 s") == ["-0.5 s"]
    assert negative_durations("1-3 s, step-2, 2 s - 1 s") == []


def test_claim_values() -> None:
    values = [(b.ms, b.tol) for b in claim_values("not(any(at_ms(e, 3.8, 0.05), gap_ms(a, b, 2010, 5)))")]
    assert values == [(3.8, 0.05), (2010.0, 5.0)]
    assert [b.ms for b in claim_values("within_ms(a, b, 1000, 3000)")] == [1000.0, 3000.0]
    assert [b.ms for b in claim_values("detail(sink.delay_started, delay_s, 0.3)")] == [300.0]
    assert claim_values("detail(smtp.failed, code, 451)") == []
    quoted = 'detail(smtp.failed, error, "the SMTP server did not answer within 2 s")'
    assert [b.ms for b in claim_values(quoted)] == [2000.0]
    assert [b.ms for b in claim_values("server_answered(a, b, 2, 41.5, 0.05)")] == [41.5]
    assert [b.ms for b in claim_values("server_waiting(a, 2, 12, 0.05)")] == [12.0]


# ----------------------------------------------------------------------------------------------- check_document


def _with_claims(doc: dict[str, Any], *entries: tuple[str, str, list[str]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["claims"] = [{"where": w, "text": t, "claims": c} for w, t, c in entries]
    return doc


def _covered(doc: dict[str, Any]) -> dict[str, Any]:
    """DOC with one true claim for every step action (the only texts its steps show)."""
    doc = copy.deepcopy(doc)
    doc["claims"] = [
        {"where": f"steps[{i}].action", "text": row["action"], "claims": [f"step({row['step']}, {row['kind']})"]}
        for i, row in enumerate(doc["steps"])
    ]
    doc["key_moments"] = [{"title": "Why didn't the main app wait?", "text": "The response left at 1.2 ms.", "step": 5}]
    doc["claims"].append(
        {"where": "key_moments[0].text", "text": "The response left at 1.2 ms.", "claims": ["at_ms(@5, 1.2, 0.05)"]}
    )
    doc["quiz"] = [
        {
            "kind": "wait_time",
            "question": "About how long did the user wait?",
            "options": ["under 10 ms", "1 to 3 s"],
            "feedback": ["Right: 1.2 ms.", "No: the sink's 0.3 s wait came after the answer."],
            "answer": 0,
            "explanation": "The answer left after 1.2 ms.",
        }
    ]
    doc["claims"] += [
        {"where": "quiz[0].question", "text": "About how long did the user wait?", "claims": ["happened(@5)"]},
        {"where": "quiz[0].options[0]", "text": "under 10 ms", "claims": ["within_ms(@1, @5, 0, 10)"]},
        {"where": "quiz[0].options[1]", "text": "1 to 3 s", "claims": ["not(within_ms(@1, @5, 1000, 3000))"]},
        {"where": "quiz[0].feedback[0]", "text": "Right: 1.2 ms.", "claims": ["gap_ms(@1, @5, 1.2, 0.05)"]},
        {
            "where": "quiz[0].feedback[1]",
            "text": "No: the sink's 0.3 s wait came after the answer.",
            "claims": ["detail(worker.finished, delay_s, 0.3)", "before(response.sent, sink.accepted)"],
        },
        {"where": "quiz[0].explanation", "text": "The answer left after 1.2 ms.", "claims": ["at_ms(@5, 1.2, 0.05)"]},
    ]
    return doc


def _entry(doc: dict[str, Any], where: str) -> dict[str, Any]:
    return next(e for e in doc["claims"] if e["where"] == where)


def _set_moment(doc: dict[str, Any], text: str) -> dict[str, Any]:
    doc["key_moments"][0]["text"] = _entry(doc, "key_moments[0].text")["text"] = text
    return _entry(doc, "key_moments[0].text")


def test_a_fully_covered_true_document_has_no_problem() -> None:
    assert check_document(_covered(DOC), "hand-made") == []


def test_false_claims_are_reported_with_cell_where_text_claim_and_actual_values() -> None:
    doc = _covered(DOC)
    doc["claims"][1]["claims"].append("before(sink.accepted, response.sent)")
    problems = check_document(doc, "cell-A")
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.startswith("[cell-A] steps[1].action: 'message.built happens'")
    assert "claim before(sink.accepted, response.sent)" in problem
    assert "sink.accepted (event 8) at 302.345 ms" in problem and "response.sent (event 4) at 1.2 ms" in problem


def test_a_duration_backed_by_no_claim_is_a_problem() -> None:
    doc = _covered(DOC)
    entry = _set_moment(doc, "The response left at 1.2 ms, after a fixed 5 s.")
    problems = check_document(doc, "c")
    assert len(problems) == 1 and "'5 s' (5000 ms) backed by no claim" in problems[0], problems
    entry["claims"].append("not(within_ms(@1, @5, 5000, inf))")
    assert check_document(doc, "c") == []


def test_a_duration_outside_its_claims_tolerance_is_a_problem() -> None:
    doc = _covered(DOC)
    _set_moment(doc, "The response left at 1.4 ms.")
    problems = check_document(doc, "c")
    assert len(problems) == 1 and "'1.4 ms'" in problems[0], problems


def test_a_negative_duration_is_a_problem() -> None:
    doc = _covered(DOC)
    _set_moment(doc, "The response left at 1.2 ms, \u22121.2 ms later.")
    problems = check_document(doc, "c")
    assert any("negative duration" in p for p in problems), problems


def test_texts_without_claims_and_missing_keys_are_problems() -> None:
    doc = _covered(DOC)
    del doc["claims"][0]
    doc["claims"][0]["claims"] = []
    doc["claims"].append({"where": "takeaway", "text": "", "claims": ["happened(@1)"]})
    problems = check_document(doc, "c")
    assert any("steps[0].action" in p and "no entry in 'claims'" in p for p in problems), problems
    assert any("steps[1].action" in p and "carries no claim" in p for p in problems), problems
    assert any("takeaway" in p and "has no text" in p for p in problems), problems

    no_feedback = _covered(DOC)
    del no_feedback["quiz"][0]["feedback"]
    problems = check_document(no_feedback, "c")
    assert any("quiz[0] (wait_time) has no 'feedback' list" in p for p in problems), problems

    no_claims = _covered(DOC)
    del no_claims["claims"]
    problems = check_document(no_claims, "c")
    assert any("no 'claims' list" in p for p in problems), problems


def test_a_claimed_text_that_differs_from_the_shown_text_is_a_problem() -> None:
    doc = _covered(DOC)
    doc["steps"][2]["action"] = "something else entirely"
    problems = check_document(doc, "c")
    assert len(problems) == 1 and "steps[2].action" in problems[0] and "another text" in problems[0], problems


def test_unreadable_claims_are_reported_loudly() -> None:
    doc = _covered(DOC)
    doc["claims"][0]["claims"].append("happend(@1)")
    problems = check_document(doc, "c")
    assert len(problems) == 1 and "CHECKER ERROR" in problems[0] and "happend" in problems[0], problems


# ----------------------------------------------------------------------------------------------- synthetic traces

REQUEST_LANE = ("Thread-7 (process_request_thread)", 7001)
ACCEPT_LANE = ("http-server", 0)  # where the web server records an arrival when the request's thread is not known
SINK_LANE = ("smtp-sink", 7003)
WORKER_NAME = "mail-5eed5eed"
WORKER_LANE = (WORKER_NAME, 7002)
SERVER = "127.0.0.1:2525"
TIMEOUT_S = 2.0
OUTCOMES = (
    "accepted",
    "rejected_rcpt",
    "rejected_data",
    "disconnected",
    "refused",
    "timeout",
    "answer_lost",
    "reply_lost",
)
UNKNOWN_FATE = {"disconnected", "timeout", "answer_lost", "reply_lost"}  # the whole message went out, no answer came
LOST_CONNECTION = (
    "the whole message was sent, then the connection was lost before any answer (the SMTP server hung up: "
    "Connection unexpectedly closed): the sender cannot tell whether it arrived"
)

Step = tuple[str, dict[str, Any]]  # (kind, details)


def _smtp_events(outcome: str, code: int) -> tuple[list[Step], list[Step], str | None]:
    """The sending thread's SMTP events, the sink's events, and the error if the send failed."""
    connect: list[Step] = [("smtp.connecting", {"server": SERVER})]
    connected = [*connect, ("smtp.connected", {"server": SERVER})]
    data = [*connected, ("smtp.data_sent", {"size": 2150})]
    arrived: list[Step] = [("sink.data_received", {"size": 2150, "peer": "127.0.0.1:40000"})]
    if outcome == "accepted":
        sink = [*arrived, ("sink.accepted", {"message_id": 1, "reply": "250 Message accepted for delivery"})]
        return [*data, ("smtp.accepted", {"recipients": ["student@example.com"]})], sink, None
    if outcome == "rejected_rcpt":
        error = "the SMTP server rejected the recipient: 451 4.3.0 Temporary failure injected by the sandbox"
        return [*connected, ("smtp.failed", {"error": error, "code": 451})], [], error
    if outcome == "rejected_data":
        reply = f"{code} Failure injected by the sandbox"
        error = f"the SMTP server rejected the message: {reply}"
        sink = [*arrived, ("sink.rejected", {"reply": reply, "stage": "DATA"})]
        return [*data, ("smtp.failed", {"error": error, "code": code})], sink, error
    if outcome in ("disconnected", "reply_lost"):
        end = (
            ("sink.disconnected", {})
            if outcome == "disconnected"
            else ("sink.reply_lost", {"message_id": 1, "stored": True})
        )
        failed = ("smtp.failed", {"error": LOST_CONNECTION, "code": None, "outcome": "unknown"})
        return [*data, failed], [*arrived, end], LOST_CONNECTION
    if outcome == "refused":
        error = "the SMTP server refused the connection (is it running?)"
        return [*connect, ("smtp.failed", {"error": error, "code": None})], [], error
    error = (
        f"the whole message was sent, but the server did not answer within {TIMEOUT_S:g} s: "
        "the sender cannot tell whether it arrived"
    )
    failed = ("smtp.failed", {"error": error, "code": None, "outcome": "unknown"})
    if outcome == "answer_lost":  # the sink stored it just as the client gave up: its 250 was never read
        return [*data, failed], [*arrived, ("sink.accepted", {"message_id": 1, "reply": "250 OK"})], error
    return [*data, failed], [*arrived, ("sink.client_left", {})], error


# (earlier kind, later kind): causality across threads
CAUSES = (
    ("request.arrived", "request.received"),
    ("worker.spawned", "worker.started"),
    ("smtp.data_sent", "sink.data_received"),
    ("sink.accepted", "smtp.accepted"),
    ("sink.rejected", "smtp.failed"),
    ("sink.disconnected", "smtp.failed"),
    ("sink.reply_lost", "smtp.failed"),
    ("smtp.failed", "sink.client_left"),
)
SINK_END_KINDS = ("sink.accepted", "sink.reply_lost", "sink.rejected", "sink.disconnected", "sink.client_left")
GAPS_NS = (0, 0, 1, 400, 30_000, 700_000, 4_000_000, 40_000_000)


def _interleave(
    draw: Callable[..., Any],
    lanes: dict[tuple[str, int], list[Step]],
    delay_s: float,
    causes: tuple[tuple[str, str], ...] = CAUSES,
) -> list[Event]:
    """One order of the lanes' events that keeps each lane's order and ``causes``, with drawn times."""
    position = dict.fromkeys(lanes, 0)
    placed: dict[str, int] = {}  # kind -> t_ns
    events: list[Event] = []
    t_ns = 10**12
    while any(position[lane] < len(steps) for lane, steps in lanes.items()):
        ready = [
            lane
            for lane, steps in lanes.items()
            if position[lane] < len(steps)
            and all(
                before in placed or not any(k == before for s in lanes.values() for k, _ in s)
                for before, after in causes
                if after == steps[position[lane]][0]
            )
        ]
        assert ready, "the causes deadlock"
        lane = ready[draw(st.integers(0, len(ready) - 1))] if len(ready) > 1 else ready[0]
        kind, details = lanes[lane][position[lane]]
        position[lane] += 1
        t_ns += draw(st.sampled_from(GAPS_NS))
        if kind in SINK_END_KINDS:
            t_ns = max(t_ns, placed["sink.delay_started"] + int(delay_s * 1e9))
        if kind == "smtp.failed" and "did not answer" in str(details.get("error")):
            t_ns = max(t_ns, placed.get("smtp.data_sent", t_ns) + int(TIMEOUT_S * 1e9))
        placed.setdefault(kind, t_ns)
        function = "send_async_email" if lane == WORKER_LANE else "send_email"
        events.append(Event(t_ns, lane[0], lane[1], kind, details, "sandbox/mailer.py", 100, function))
    return events


def _sink_lane(sink: list[Step], delay_s: float) -> list[Step]:
    if not sink:
        return []
    return [sink[0], ("sink.delay_started", {"delay_s": delay_s}), *sink[1:]]


def _trace(mode: str, server: str, delay_s: float, events: list[Event]) -> Trace:
    settings = {"smtp_timeout_s": TIMEOUT_S, "mail_server": SERVER}
    versions = {"python": "3.11", "flask": "3", "flask_mail": "0.10", "aiosmtpd": "1.4"}
    return Trace(uuid.uuid4().hex, mode, server, delay_s, settings, versions, events)


def _arrival(draw: Callable[..., Any], lanes: dict[tuple[str, int], list[Step]]) -> str:
    """Maybe a request.arrived first, on the request's thread or the server's; returns the server kind."""
    server, arrival = _arrival_details(draw)
    if draw(st.booleans()):
        lane = draw(st.sampled_from((REQUEST_LANE, ACCEPT_LANE)))
        lanes.setdefault(lane, []).insert(0, ("request.arrived", arrival))
    return server


def _arrival_details(draw: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """A server kind and the details its request.arrived records (the pooled server's its pool's size)."""
    server = draw(st.sampled_from(("threaded", "single", "pooled")))
    threads = {"threads": draw(st.integers(1, 4))} if server == "pooled" else {}
    return server, {"server": server, "request_id": 1, **threads}


@st.composite
def thread_style_traces(draw: Callable[..., Any]) -> tuple[str, Trace]:
    mode = draw(st.sampled_from(("thread", "thread-no-context")))
    outcome = "no_context" if mode == "thread-no-context" else draw(st.sampled_from(OUTCOMES))
    delay_s = (
        draw(st.sampled_from((0.0, 0.001, 0.3, 2.0)))
        if outcome not in ("timeout", "answer_lost")
        else {"timeout": 3.0, "answer_lost": TIMEOUT_S}[outcome]
    )
    code = draw(st.sampled_from((451, 550)))
    target = "send_async_email" if mode == "thread" else "send_async_email_without_context"
    request: list[Step] = [
        ("request.received", {"method": "POST", "path": f"/send-email/{mode}"}),
        ("message.built", {"templates": ["email/welcome.txt", "email/welcome.html"]}),
        ("worker.spawned", {"worker": WORKER_NAME, "target": target}),
        ("response.sent", {"status": 202}),
    ]
    worker: list[Step] = [("worker.started", {"worker": WORKER_NAME})]
    if mode == "thread":
        worker.append(("context.pushed", {"app": "sandbox"}))
    worker.append(("send.started", {}))
    if outcome == "no_context":
        sink: list[Step] = []
        worker.append(("worker.failed", {"error": "RuntimeError: Working outside of application context."}))
    else:
        smtp, sink, error = _smtp_events(outcome, code)
        worker += smtp
        if error is None:
            worker.append(("worker.finished", {}))
        else:
            fate = {"outcome": "unknown" if outcome in UNKNOWN_FATE else "failed"}
            worker.append(("worker.failed", {"error": error, **fate}))
    lanes = {REQUEST_LANE: request, WORKER_LANE: worker, SINK_LANE: _sink_lane(sink, delay_s)}
    server = _arrival(draw, lanes)
    events = _interleave(draw, lanes, delay_s)
    return f"synthetic/{server}/{mode}/{outcome}/delay {delay_s:g}", _trace(mode, server, delay_s, events)


def _answered_after_send(draw: Callable[..., Any]) -> tuple[str, float, list[Step], list[Step], str | None, int]:
    """A drawn outcome for a route that answers after its send: the delay, client and sink events, the error (None
    when it delivered), the status."""
    outcome = draw(st.sampled_from(OUTCOMES))
    delay_s = (
        draw(st.sampled_from((0.0, 0.001, 0.3, 2.0)))
        if outcome not in ("timeout", "answer_lost")
        else {"timeout": 3.0, "answer_lost": TIMEOUT_S}[outcome]
    )
    smtp, sink, error = _smtp_events(outcome, draw(st.sampled_from((451, 550))))
    status = 200 if error is None else 504 if outcome in ("timeout", "answer_lost") else 502
    return outcome, delay_s, smtp, sink, error, status


@st.composite
def sync_style_traces(draw: Callable[..., Any]) -> tuple[str, Trace]:
    outcome, delay_s, smtp, sink, error, status = _answered_after_send(draw)
    request: list[Step] = [
        ("request.received", {"method": "POST", "path": "/send-email/sync"}),
        ("message.built", {"templates": ["email/welcome.txt", "email/welcome.html"]}),
        ("send.started", {}),
        *smtp,
        ("response.sent", {"status": status}),
    ]
    lanes = {REQUEST_LANE: request, SINK_LANE: _sink_lane(sink, delay_s)}
    server = _arrival(draw, lanes)
    events = _interleave(draw, lanes, delay_s)
    return f"synthetic/{server}/sync/{outcome}/delay {delay_s:g}", _trace("sync", server, delay_s, events)


# An async def view: the request's thread hands the coroutine to app.ensure_sync and waits; the coroutine runs on the
# event loop's thread and awaits the send on an executor thread (asyncio.to_thread), then the answer leaves.
LOOP_LANE = ("ThreadPoolExecutor-5_0", 7004)
EXECUTOR_LANE = ("asyncio_0", 7005)
ASYNC_CAUSES = (
    *CAUSES,
    ("coroutine.called", "coroutine.started"),
    ("coroutine.started", "send.started"),
    ("smtp.accepted", "coroutine.finished"),
    ("smtp.failed", "coroutine.failed"),
    ("coroutine.finished", "response.sent"),
    ("coroutine.failed", "response.sent"),
)


@st.composite
def async_view_traces(draw: Callable[..., Any]) -> tuple[str, Trace]:
    outcome, delay_s, smtp, sink, error, status = _answered_after_send(draw)
    coroutine = {"function": "send_and_await"}
    request: list[Step] = [
        ("request.received", {"method": "POST", "path": "/send-email/async-await"}),
        ("message.built", {"templates": ["email/welcome.txt", "email/welcome.html"]}),
        ("coroutine.called", {**coroutine, "via": "app.ensure_sync"}),
        ("response.sent", {"status": status}),
    ]
    loop: list[Step] = [
        ("coroutine.started", {**coroutine, "loop": LOOP_LANE[0]}),
        ("coroutine.finished", {}) if error is None else ("coroutine.failed", {"error": error}),
    ]
    executor: list[Step] = [("send.started", {"via": "asyncio.to_thread"}), *smtp]
    lanes = {REQUEST_LANE: request, LOOP_LANE: loop, EXECUTOR_LANE: executor, SINK_LANE: _sink_lane(sink, delay_s)}
    server = _arrival(draw, lanes)
    events = _interleave(draw, lanes, delay_s, ASYNC_CAUSES)
    cell = f"synthetic/{server}/async-await/{outcome}/delay {delay_s:g}"
    return cell, _trace("async-await", server, delay_s, events)


# An async def view that creates a task for the send and returns without awaiting it: the loop cancels the task
# once the view has returned; a send the task handed to an executor thread may begin before or after that, or never
# (its work item cancelled while queued); the loop closes only after that thread, and then the request's thread goes
# on, recording a task whose send never began.
TASK_CAUSES = (
    *CAUSES,
    ("coroutine.called", "coroutine.started"),
    ("task.started", "send.started"),
    ("task.cancelled", "loop.closed"),
    ("smtp.accepted", "loop.closed"),
    ("smtp.failed", "loop.closed"),
)


@st.composite
def task_view_traces(draw: Callable[..., Any]) -> tuple[str, Trace]:
    mode = draw(st.sampled_from(("async-fire-and-forget", "async-to-thread-and-forget")))
    handed_on = mode == "async-to-thread-and-forget" and draw(st.integers(0, 3)) > 0
    outcome, delay_s, smtp, sink, _, _ = _answered_after_send(draw)
    function = "send_in_thread" if mode == "async-to-thread-and-forget" else "send_after_answer"
    view = {"function": "send_async_view"}
    request: list[Step] = [
        ("request.received", {"method": "POST", "path": f"/send-email/{mode}"}),
        ("coroutine.called", {**view, "via": "app.ensure_sync"}),
        ("loop.closed", {}),
    ]
    if not handed_on:
        error = "never sent: Task-6 was cancelled at line 231 of send_after_answer(), before any mail.send() began"
        request.append(("task.unsent", {"task": "Task-6", "error": error, "outcome": "failed"}))
    request.append(("response.sent", {"status": 202}))
    loop: list[Step] = [
        ("coroutine.started", {**view, "loop": LOOP_LANE[0]}),
        ("message.built", {"templates": ["email/welcome.txt", "email/welcome.html"]}),
        ("task.created", {"task": "Task-6", "function": function}),
        ("coroutine.finished", {}),
        ("task.started", {"function": function, "loop": LOOP_LANE[0]}),
        ("task.cancelled", {}),
    ]
    lanes = {REQUEST_LANE: request, LOOP_LANE: loop}
    if handed_on:
        lanes[EXECUTOR_LANE] = [("send.started", {"via": "asyncio.to_thread"}), *smtp]
        lanes[SINK_LANE] = _sink_lane(sink, delay_s)
    server = _arrival(draw, lanes)
    events = _interleave(draw, lanes, delay_s, TASK_CAUSES)
    sent = f"handed on/{outcome}" if handed_on else "never sent"
    return f"synthetic/{server}/{mode}/{sent}/delay {delay_s:g}", _trace(mode, server, delay_s, events)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_view_traces())
def test_every_claim_holds_on_synthetic_task_orders(case: tuple[str, Trace]) -> None:
    """A view's forgotten task, in any order its threads allow (its send begun before its cancellation, after it, or
    never): every sentence holds, and the email's fate follows the events."""
    cell, trace = case
    assert trace.complete
    doc = _render(trace)
    problems = check_document(doc, cell)
    assert not problems, _summary(problems, f"{cell}: {len(problems)} problem(s)")
    sent = any(e.kind == "send.started" for e in trace.events)
    assert (doc["outcome"] == "failed") if not sent else doc["outcome"] != "pending", doc["outcome"]


# A blind retrier's attempts, each with its own SMTP conversation and sink lane; the sink stores, recognises (with
# dedupe) or loses its reply. Attempts follow one another on the worker's lane, and the sink's sessions on its own.
RETRY_OUTCOMES = ("accepted", "reply_lost", "answer_lost", "timeout", "disconnected", "rejected_data", "refused")
RETRY_ATTEMPTS = 3
RETRY_PAUSE_S = 0.2
MESSAGE_ID = "<175.1.2@sandbox.example>"
Tagged = tuple[str, dict[str, Any], int]  # (kind, details, attempt); attempt 0: not part of any attempt

# (earlier kind, later kind) within one attempt: the causes after the request's own
ATTEMPT_CAUSES = CAUSES[2:]


def _retry_attempt(outcome: str, code: int, stored: list[int], dedupe: bool) -> tuple[list[Step], list[Step], str]:
    """One attempt's client events and sink events, and its error ("" when it got its 250); ``stored`` grows with
    each copy the sink keeps."""
    smtp, sink, error = _smtp_events(outcome, code)
    if sink:
        sink[0][1]["message_id_header"] = MESSAGE_ID
        end_kind, end = sink[-1]
        if end_kind in ("sink.accepted", "sink.reply_lost"):
            if dedupe and stored:
                details = {"message_id": stored[0], "stored": False, "duplicate_of": stored[0]}
            else:
                stored.append((stored[-1] if stored else 0) + 1)
                details = {"message_id": stored[-1], "stored": True}
            if end_kind == "sink.accepted":
                details["reply"] = "250 Message accepted for delivery"
            sink[-1] = (end_kind, details)
    return smtp, sink, error or ""


def _interleave_attempts(
    draw: Callable[..., Any], lanes: dict[tuple[str, int], list[Tagged]], delay_s: float
) -> list[Event]:
    """One order of the lanes' events keeping each lane's order, the causes within each attempt, the handoff, the
    sink's delay and the client's timeout, with drawn times."""
    position = dict.fromkeys(lanes, 0)
    placed: dict[tuple[str, int], int] = {}  # (kind, attempt) -> t_ns
    events: list[Event] = []
    t_ns = 10**12

    def ready(step: Tagged) -> bool:
        kind, _, attempt = step
        if kind == "worker.started" and ("worker.spawned", 0) not in placed:
            return False
        steps = [s for lane_steps in lanes.values() for s in lane_steps]
        if kind == "request.received" and any(s[0] == "request.arrived" for s in steps):
            return ("request.arrived", 0) in placed
        wanted = [
            (before, attempt)
            for before, after in ATTEMPT_CAUSES
            if after == kind and any(s[0] == before and s[2] == attempt for s in steps)
        ]
        return all(w in placed for w in wanted)

    while any(position[lane] < len(steps) for lane, steps in lanes.items()):
        candidates = [
            lane for lane, steps in lanes.items() if position[lane] < len(steps) and ready(steps[position[lane]])
        ]
        assert candidates, "the causes deadlock"
        lane = candidates[draw(st.integers(0, len(candidates) - 1))] if len(candidates) > 1 else candidates[0]
        kind, details, attempt = lanes[lane][position[lane]]
        position[lane] += 1
        t_ns += draw(st.sampled_from(GAPS_NS))
        if kind in SINK_END_KINDS:
            t_ns = max(t_ns, placed[("sink.delay_started", attempt)] + int(delay_s * 1e9))
        if kind == "smtp.failed" and "did not answer" in str(details.get("error")):
            t_ns = max(t_ns, placed.get(("smtp.data_sent", attempt), t_ns) + int(TIMEOUT_S * 1e9))
        if kind == "attempt.started" and attempt > 1:  # the worker's pause: attempts never share a microsecond
            t_ns = max(t_ns, placed[("attempt.failed", attempt - 1)] + int(RETRY_PAUSE_S * 1e9))
        placed.setdefault((kind, attempt), t_ns)
        events.append(Event(t_ns, lane[0], lane[1], kind, details, "sandbox/retrying.py", 40, "retry_blindly"))
    return events


@st.composite
def retry_style_traces(draw: Callable[..., Any]) -> tuple[str, Trace]:
    """A thread-retry send: up to three attempts, each drawn from RETRY_OUTCOMES, with or without dedupe."""
    dedupe = draw(st.booleans())
    outcomes = draw(st.lists(st.sampled_from(RETRY_OUTCOMES), min_size=1, max_size=RETRY_ATTEMPTS))
    if "accepted" in outcomes:
        outcomes = outcomes[: outcomes.index("accepted") + 1]  # the 250 ends the retries
    elif len(outcomes) < RETRY_ATTEMPTS:
        outcomes += ["refused"] * (RETRY_ATTEMPTS - len(outcomes))
    delay_s = TIMEOUT_S if {"timeout", "answer_lost"} & set(outcomes) else draw(st.sampled_from((0.0, 0.001, 0.3)))
    code = draw(st.sampled_from((451, 550)))
    request: list[Tagged] = [
        ("request.received", {"method": "POST", "path": "/send-email/thread-retry"}, 0),
        ("message.built", {"templates": ["email/welcome.txt", "email/welcome.html"]}, 0),
        ("worker.spawned", {"worker": WORKER_NAME, "target": "retry_blindly"}, 0),
        ("response.sent", {"status": 202}, 0),
    ]
    worker: list[Tagged] = [("worker.started", {"worker": WORKER_NAME}, 0), ("context.pushed", {"app": "sandbox"}, 0)]
    sink: list[Tagged] = []
    stored: list[int] = []
    unanswered: int | None = None
    error, last_fate = "", "failed"
    for attempt, outcome in enumerate(outcomes, start=1):
        smtp, lane, error = _retry_attempt(outcome, code, stored, dedupe)
        worker.append(("attempt.started", {"attempt": attempt, "attempts": RETRY_ATTEMPTS}, attempt))
        worker.append(("send.started", {}, attempt))
        worker += [(kind, details, attempt) for kind, details in smtp]
        sink += [(kind, details, attempt) for kind, details in _sink_lane(lane, delay_s)]
        if not error:
            break
        fate = "unknown" if outcome in UNKNOWN_FATE else "failed"
        final = attempt == RETRY_ATTEMPTS
        failed = {"attempt": attempt, "error": error, "final": final, "outcome": fate, "policy": "blind"}
        if not final:
            failed["retry_in_s"] = RETRY_PAUSE_S
            if fate == "unknown" and unanswered is None:
                unanswered = attempt
        worker.append(("attempt.failed", failed, attempt))
        last_fate = fate
    if not error:
        worker.append(("worker.finished", {}, 0))
    elif last_fate == "failed" and unanswered is not None:
        maybe = (
            f"{error}; but attempt {unanswered} had sent the whole message and got no answer, so it may have "
            "delivered a copy already: the sender cannot tell whether it arrived"
        )
        worker.append(("worker.failed", {"error": maybe, "outcome": "unknown", "answered": True}, 0))
    else:
        worker.append(("worker.failed", {"error": error, "outcome": last_fate}, 0))
    lanes = {REQUEST_LANE: request, WORKER_LANE: worker, SINK_LANE: sink}
    server, arrival = _arrival_details(draw)
    if draw(st.booleans()):
        lanes[REQUEST_LANE].insert(0, ("request.arrived", arrival, 0))
    events = _interleave_attempts(draw, lanes, delay_s)
    cell = f"synthetic/{server}/thread-retry/{'+'.join(outcomes)}{'/dedupe' if dedupe else ''}/delay {delay_s:g}"
    return cell, _trace("thread-retry", server, delay_s, events)


def _render(trace: Trace) -> dict[str, Any]:
    return trace_document(report(trace))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(thread_style_traces(), sync_style_traces(), retry_style_traces()))
def test_every_claim_holds_on_synthetic_event_orders(case: tuple[str, Trace]) -> None:
    cell, trace = case
    doc = _render(trace)
    problems = check_document(doc, cell)
    assert not problems, _summary(problems, f"{cell}: {len(problems)} problem(s)")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(async_view_traces())
def test_every_claim_holds_on_synthetic_async_view_orders(case: tuple[str, Trace]) -> None:
    """An async def view's trace, in any order its threads allow: every sentence holds, and the answer's wait for the
    awaited send is told, never a worker's hand-off."""
    cell, trace = case
    kinds = [e.kind for e in trace.events]
    for before, after in ASYNC_CAUSES:
        if before in kinds and after in kinds:
            assert kinds.index(before) < kinds.index(after), (before, after, kinds)
    assert trace.complete
    doc = _render(trace)
    problems = check_document(doc, cell) + misnamed_threads(doc, cell)
    assert not problems, _summary(problems, f"{cell}: {len(problems)} problem(s)")


def misnamed_threads(doc: dict[str, Any], cell: str) -> list[str]:
    """An async view's document never calls a thread a worker (nothing was handed off and left: the request's thread
    waited), nor the send's thread the request's own: every text it shows, and its tracker, say so or fail."""
    if doc.get("mode") != "async-await":
        return []
    texts = [(e["where"], e["text"]) for e in doc.get("claims") or []]
    texts += [("tracker", name) for name in doc["tracker"]["variables"]]
    texts += [(f"tracker.{name}", value) for name, values in doc["tracker"]["variables"].items() for value in values]
    return [
        f"[{cell}] {where}: {text!r}\n    -> names a worker, or the request's own thread, in an async view's run"
        for where, text in texts
        if "worker" in text.lower() or "request's own thread" in text
    ]


def test_the_synthetic_traces_are_causal() -> None:
    """The generator itself: each lane's order kept, causes respected, times never going back."""

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(thread_style_traces(), sync_style_traces()))
    def check(case: tuple[str, Trace]) -> None:
        _, trace = case
        kinds = [e.kind for e in trace.events]
        times = [e.t_ns for e in trace.events]
        assert times == sorted(times)
        for before, after in CAUSES:
            if before in kinds and after in kinds:
                assert kinds.index(before) < kinds.index(after), (before, after, kinds)
        assert kinds.count("response.sent") == 1
        assert trace.complete

    check()


# ----------------------------------------------------------------------------------------------- live matrix

MODES = (
    "sync",
    "thread",
    "pool",
    "queue",
    "thread-no-context",
    "thread-proxy",
    "thread-retry",
    "async-await",
    "async-blocking",
    "async-fire-and-forget",
    "async-to-thread-and-forget",
    "thread-count",
    "thread-count-locked",
    "pool-starved",
)
COLUMNS = {
    "delay 0": {"delay_s": 0.0, "jitter_s": 0.0},
    "delay 0.3 s": {"delay_s": 0.3, "jitter_s": 0.0},
    "jitter": {"delay_s": 0.1, "jitter_s": 0.4},
    # The sink answers around the client's 2 s timeout: delivered, lost, and answers the client never heard.
    "near the timeout": {"delay_s": 1.9, "jitter_s": 0.2},
}
FAULTLESS_ONLY = {"near the timeout"}
FAULTS = ("none", "rejection", "disconnect", "lost reply", "lost reply, dedupe")
# Settings the sink takes only while it runs (PUT /api/sink): every 250 lost after the store, with or without a
# receiver that recognises a Message-ID it already holds.
RECEIVING = {
    "lost reply": {"lose_reply_probability": 1.0},
    "lost reply, dedupe": {"lose_reply_probability": 1.0, "dedupe_message_id": True},
}
CLIENTS = {"threaded": 1, "single": 2, "pooled": 2}  # with every mode at once, still more than one at a time
POOLED_THREADS = 2  # fewer than the sends a cell makes at once: some wait in line for a thread, some find one free
SANDBOXES_AT_ONCE = 5
COMPLETE_WITHIN_S = 20.0
SHOWN_PROBLEMS = 40


@dataclass(frozen=True)
class Cell:
    server: str
    column: str
    fault: str

    @property
    def name(self) -> str:
        return f"{self.server}/{self.column}/{self.fault}" if self.fault != "dead server" else f"{self.server}/dead"


@dataclass
class Outcome:
    cell: Cell
    problems: list[str] = field(default_factory=list)
    sends: int = 0
    documents: int = 0
    claims: int = 0
    seconds: float = 0.0


def matrix(server: str) -> list[Cell]:
    cells = [
        Cell(server, column, fault)
        for column in COLUMNS
        for fault in FAULTS
        if column not in FAULTLESS_ONLY or fault == "none"
    ]
    return [*cells, Cell(server, "no sink", "dead server")]


def cell_settings(cell: Cell, folder: str) -> Settings:
    changes: dict[str, Any] = {
        "server": cell.server,
        "http_threads": POOLED_THREADS,
        "seed": 1,
        "smtp_timeout_s": 2.0,
        "pool_attempts": 2,
        "retry_backoff_s": 0.05,
        "queue_url": f"sqlite:///{folder}/q.db",
        "queue_workers": 2,
        "port": 0,
        "smtp_port": 0,
        "mail_server": None,
        "delay_s": 0.0,
        "jitter_s": 0.0,
        "greet_delay_s": 0.0,
        "reject_probability": 0.0,
        "reject_code": 451,
        "reject_stage": "RCPT",
        "disconnect_probability": 0.0,
    }
    if cell.fault == "dead server":
        changes["mail_server"] = ("127.0.0.1", free_port())
    else:
        changes.update(COLUMNS[cell.column])
    if cell.fault == "rejection":
        jitter = cell.column == "jitter"
        changes.update(
            reject_probability=1.0, reject_code=550 if jitter else 451, reject_stage="DATA" if jitter else "RCPT"
        )
    elif cell.fault == "disconnect":
        changes["disconnect_probability"] = 1.0
    return settings_for_tests(**changes)


@dataclass(frozen=True)
class Send:
    label: str
    mode: str
    comparison: str | None = None


def run_cell(cell: Cell) -> Outcome:
    """One sandbox: every mode's clients at once, plus a comparison pair; then every trace checked."""
    outcome = Outcome(cell)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="truth-") as folder:
        sandbox = Sandbox(cell_settings(cell, folder)).start()
        try:
            if cell.fault in RECEIVING:
                sandbox.sink.update_settings(RECEIVING[cell.fault])
            _run_cell(sandbox, cell, outcome)
        except Exception as err:  # noqa: BLE001 - one broken cell must not hide the others' problems
            outcome.problems.append(f"[{cell.name}] the cell itself failed: {type(err).__name__}: {err}")
        finally:
            sandbox.stop()
    outcome.seconds = time.monotonic() - started
    return outcome


def _run_cell(sandbox: Sandbox, cell: Cell, outcome: Outcome) -> None:
    comparison = uuid.uuid4().hex
    sends = [Send(f"{mode}#{k + 1}", mode) for mode in MODES for k in range(CLIENTS[cell.server])]
    sends += [Send("sync (comparison)", "sync", comparison), Send("thread (comparison)", "thread", comparison)]
    barrier = threading.Barrier(len(sends))

    def send(item: Send) -> tuple[Send, Any]:
        body: dict[str, Any] = {"name": f"Ada {item.label}"}
        if item.comparison:
            body["comparison"] = item.comparison
        barrier.wait(10)
        return item, call(f"{sandbox.url}send-email/{item.mode}", "POST", body, 60)

    with ThreadPoolExecutor(len(sends)) as pool:
        replies = list(pool.map(send, sends))
    outcome.sends = len(sends)

    traces: dict[str, Send] = {}
    for item, reply in replies:
        trace_id = reply.body.get("trace_id")
        if not trace_id:
            outcome.problems.append(f"[{cell.name}/{item.label}] the send got no trace: {reply.status} {reply.body}")
            continue
        traces[trace_id] = item

    deadline = time.monotonic() + COMPLETE_WITHIN_S
    waiting = set(traces)
    while waiting and time.monotonic() < deadline:
        for trace_id in sorted(waiting):
            reply = call(f"{sandbox.url}api/traces/{trace_id}", timeout=30)
            if reply.status == 200 and reply.body.get("complete"):
                waiting.discard(trace_id)
        if waiting:
            time.sleep(0.05)
    for trace_id in sorted(waiting):
        outcome.problems.append(
            f"[{cell.name}/{traces[trace_id].label}] trace {trace_id} not complete after {COMPLETE_WITHIN_S:g} s"
        )

    partners = {item.mode: tid for tid, item in traces.items() if item.comparison}
    for trace_id, item in traces.items():
        name = f"{cell.name}/{item.label}"
        reply = call(f"{sandbox.url}api/traces/{trace_id}", timeout=30)
        if reply.status != 200:
            outcome.problems.append(f"[{name}] GET /api/traces/{trace_id} answered {reply.status}: {reply.body}")
            continue
        doc = reply.body
        outcome.documents += 1
        outcome.claims += sum(len(e.get("claims") or []) for e in doc.get("claims") or [] if isinstance(e, dict))
        outcome.problems += check_document(doc, name) + misnamed_threads(doc, name) + unlit_events(doc, name)
        if item.comparison:
            partner = partners.get("thread" if item.mode == "sync" else "sync")
            compared = doc.get("compared_with")
            got = compared.get("trace_id") if isinstance(compared, dict) else compared
            if got != partner:
                outcome.problems.append(
                    f"[{name}] sent with comparison {item.comparison}: compared_with should be trace {partner}, "
                    f"got {'no compared_with key' if 'compared_with' not in doc else got}"
                )


def _summary(problems: list[str], head: str) -> str:
    shown = "\n".join(problems[:SHOWN_PROBLEMS])
    rest = len(problems) - SHOWN_PROBLEMS
    return f"{head}\n{shown}" + (f"\n... and {rest} more problem(s)" if rest > 0 else "")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["threaded", "single", "pooled"])
def test_every_claim_holds_in_the_live_matrix(
    server: str, record_property: Callable[[str, object], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emails, "RENDER_TIMEOUT_S", 0.3)  # the starved pool's patience, shortened
    cells = matrix(server)
    started = time.monotonic()
    with ThreadPoolExecutor(SANDBOXES_AT_ONCE) as pool:
        outcomes = list(pool.map(run_cell, cells))
    seconds = time.monotonic() - started
    problems = [p for o in outcomes for p in o.problems]
    size = (
        f"live matrix ({server} server): {len(cells)} sandboxes ({len(MODES)} modes x {CLIENTS[server]} client(s) "
        f"+ a comparison pair each), {sum(o.sends for o in outcomes)} sends, "
        f"{sum(o.documents for o in outcomes)} documents, {sum(o.claims for o in outcomes)} claims, "
        f"{seconds:.1f} s (slowest sandbox {max(o.seconds for o in outcomes):.1f} s)"
    )
    record_property("matrix", size)
    assert not problems, _summary(problems, f"{size}\n{len(problems)} problem(s):")


@pytest.mark.parametrize("server", ["threaded", "single", "pooled"])
def test_every_claim_holds_for_a_computing_worker_with_pings_meanwhile(server: str, tmp_path: Any) -> None:
    """The CPU-bound variant: its moment counts the requests answered while it computed, on any server."""
    queue_url = f"sqlite:///{tmp_path}/q.db"
    settings = settings_for_tests(delay_s=0.1, server=server, http_threads=POOLED_THREADS, queue_url=queue_url)
    with Sandbox(settings) as sandbox:
        trace_id = call(f"{sandbox.url}send-email/thread-cpu", "POST", {}).body["trace_id"]
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            call(f"{sandbox.url}api/ping")
            time.sleep(0.1)
        assert sandbox.delivery.wait_settled(10)
        time.sleep(0.2)
        document = call(f"{sandbox.url}api/traces/{trace_id}").body
    assert any(m["title"] == "What did the computation cost the others?" for m in document["key_moments"])
    problems = check_document(document, f"{server}/thread-cpu")
    assert not problems, _summary(problems, f"{len(problems)} problem(s):")
