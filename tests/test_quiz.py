from __future__ import annotations

from sandbox.quiz import EVENT_LABELS, WAIT_BUCKETS, make_quiz, wait_bucket
from sandbox.steps import BLOCKED, IDLE, execution_table, step_of


def check_question(question, trace, other) -> None:
    rows = execution_table(trace)
    right = question.options[question.answer]
    assert len(question.options) == len(set(question.options)) >= 3
    assert len(question.misconceptions) == len(question.options)
    assert question.misconceptions[question.answer] is None
    assert all(m for i, m in enumerate(question.misconceptions) if i != question.answer)
    assert question.explanation
    match question.kind:
        case "response_step":
            assert right == f"Step {step_of(rows, 'response.sent').step}"
        case "accept_step":
            assert right == f"Step {step_of(rows, 'sink.accepted').step}"
        case "send_thread":
            assert right.startswith(trace.first("send.started").thread)
        case "wait_time":
            low, high, _ = next(b for b in WAIT_BUCKETS if b[2] == right)
            assert low <= trace.response_ms < high
        case "main_app_at":
            row = rows[question.step - 1]
            response_ms = trace.response_ms
            if trace.mode == "thread" and row.t_ms > response_ms:
                assert right == IDLE
            if trace.mode == "sync":
                sent, done = trace.ms_until("send.started"), trace.ms_until("smtp.accepted")
                if sent <= row.t_ms < done:
                    assert right == BLOCKED
        case "which_first":
            kinds = {label[0].upper() + label[1:]: kind for kind, label in EVENT_LABELS.items()}
            chosen = kinds[right]
            mentioned = [kind for kind, label in EVENT_LABELS.items() if label in question.question]
            assert chosen in mentioned and len(mentioned) == 2
            later = next(k for k in mentioned if k != chosen)
            assert trace.first(chosen).t_ns <= trace.first(later).t_ns
        case "thread_count":
            assert right == str(len({e.thread for e in trace.events if e.kind not in ("smtp.command",)}))
        case "other_mode":
            assert WAIT_BUCKETS[wait_bucket(other.response_ms)][2] in right
        case _:
            raise AssertionError(f"unchecked kind {question.kind}")


def test_every_question_has_one_right_answer_that_agrees_with_the_events(recorded_traces) -> None:
    checked = 0
    for sync, thread in recorded_traces:
        for trace, other in ((sync, thread), (thread, sync)):
            for seed in range(5):
                for question in make_quiz(trace, seed, other):
                    check_question(question, trace, other)
                    checked += 1
    assert checked > 200


def test_at_least_seven_kinds_with_their_steps(recorded_traces) -> None:
    sync, thread = recorded_traces[1]
    quiz = make_quiz(thread, 0, sync)
    assert len({q.kind for q in quiz}) >= 7
    steps = {row.step for row in execution_table(thread)}
    assert all(q.step in steps for q in quiz if q.kind != "other_mode")


def test_same_trace_and_seed_give_the_same_quiz(recorded_traces) -> None:
    sync, thread = recorded_traces[0]
    assert make_quiz(thread, 3, sync) == make_quiz(thread, 3, sync)
    orders = {tuple(tuple(q.options) for q in make_quiz(thread, seed, sync)) for seed in range(10)}
    assert len(orders) > 1, "different seeds should shuffle differently"


def test_wrong_options_name_a_misconception(recorded_traces) -> None:
    sync, thread = recorded_traces[2]
    response = next(q for q in make_quiz(thread, 0, sync) if q.kind == "response_step")
    tags = [m for m in response.misconceptions if m]
    assert "Believes the response waits for the email to be accepted" in tags


def test_the_what_if_question_only_pairs_a_blocking_send_with_a_background_one(recorded_traces) -> None:
    (sync_a, thread_a), (sync_b, thread_b) = recorded_traces[0], recorded_traces[1]
    assert "other_mode" not in {q.kind for q in make_quiz(thread_a, 0, thread_b)}
    assert "other_mode" not in {q.kind for q in make_quiz(sync_a, 0, sync_b)}
    assert "other_mode" in {q.kind for q in make_quiz(sync_a, 0, thread_b)}
