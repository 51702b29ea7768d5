from __future__ import annotations

from sandbox.moments import key_moments
from sandbox.steps import (
    BLOCKED,
    FINISHED,
    IDLE,
    MAIN_APP_STATES,
    NO_WORKER,
    THREAD_STATES,
    WAITING,
    execution_table,
    state_tracker,
    step_of,
)
from sandbox.tracer import Event, Trace


def all_traces(recorded_traces):
    return [trace for pair in recorded_traces for trace in pair]


def test_rows_follow_the_clock_and_use_the_vocabulary(recorded_traces) -> None:
    for trace in all_traces(recorded_traces):
        rows = execution_table(trace)
        assert [r.step for r in rows] == list(range(1, len(rows) + 1))
        assert [r.t_ms for r in rows] == sorted(r.t_ms for r in rows)
        assert all(r.thread_state in THREAD_STATES and r.main_app_state in MAIN_APP_STATES for r in rows)
        assert all(r.action and r.thread for r in rows)


def test_no_row_contradicts_the_timestamps(recorded_traces) -> None:
    for sync, thread in recorded_traces:
        rows = execution_table(thread)
        response = step_of(rows, "response.sent")
        for row in rows:
            if row.t_ms > response.t_ms:
                assert row.main_app_state == IDLE, row
            if row.main_app_state == BLOCKED:
                raise AssertionError(f"a thread send never blocks the request: {row}")
        for row in execution_table(sync):
            assert row.thread_state == NO_WORKER
        sent, done = step_of(execution_table(sync), "send.started"), step_of(execution_table(sync), "smtp.accepted")
        if done is not None:
            blocked = [r for r in execution_table(sync) if sent.step <= r.step < done.step]
            assert blocked and all(r.main_app_state == BLOCKED for r in blocked)


def test_worker_waits_for_the_server_between_its_data_and_the_250(recorded_traces) -> None:
    _, thread = recorded_traces[2]
    rows = execution_table(thread)
    data, accepted = step_of(rows, "smtp.data_sent"), step_of(rows, "smtp.accepted")
    assert all(r.thread_state == WAITING for r in rows if data.step <= r.step < accepted.step)
    assert rows[-1].thread_state == FINISHED
    assert step_of(rows, "sink.accepted").output == "The sink accepts the email: 250 OK"
    assert step_of(rows, "response.sent").output == "HTTP 202 reaches the browser"


def test_tracker_shows_start_changes_and_final(recorded_traces) -> None:
    _, thread = recorded_traces[1]
    tracker = state_tracker(thread)
    assert tracker.columns[0] == "Start" and tracker.columns[-1] == "Final"
    assert set(tracker.variables) == {"Worker thread", "Main app", "Email"}
    assert tracker.variables["Worker thread"][0] == "Not started"
    assert tracker.variables["Worker thread"][-1] == "Finished"
    assert tracker.variables["Email"][-1] == "Accepted by the sink"
    assert all(len(values) == len(tracker.columns) for values in tracker.variables.values())


def test_key_moments_are_tied_to_steps_and_quote_the_run(recorded_traces) -> None:
    for sync, thread in recorded_traces[:3]:
        for trace in (sync, thread):
            moments = key_moments(trace)
            steps = {row.step for row in execution_table(trace)}
            assert 3 <= len(moments) <= 5
            assert all(m.step in steps for m in moments)
        titles = [m.title for m in key_moments(thread)]
        assert "Why didn't the main app wait?" in titles
        assert "What did the user wait for?" in [m.title for m in key_moments(sync)]


def test_failure_gets_its_own_moment(recorded_traces) -> None:
    _, thread = recorded_traces[-1]
    assert any(m.title == "Where did the error go?" for m in key_moments(thread))


def test_steps_from_hand_made_events() -> None:
    def event(t: int, kind: str, thread: str = "request-1", tid: int = 1, **details) -> Event:
        return Event(t * 1_000_000, thread, tid, kind, details, "sandbox/x.py", 1, "f")

    trace = Trace(
        "t",
        "sync",
        "single",
        1.0,
        {},
        {},
        [
            event(0, "request.received", method="POST", path="/send-email/sync"),
            event(1, "message.built"),
            event(2, "send.started"),
            event(3, "smtp.connecting"),
            event(4, "smtp.failed", error="<script>refused</script>"),
            event(5, "response.sent", status=502),
        ],
    )
    rows = execution_table(trace)
    assert [r.kind for r in rows] == [
        "request.received",
        "message.built",
        "send.started",
        "smtp.failed",
        "response.sent",
    ]
    assert rows[2].main_app_state == BLOCKED
    assert rows[3].email_state == "Not delivered"
    assert rows[4].output == "HTTP 502 reaches the browser"
