from __future__ import annotations

from sandbox.facts import Facts
from sandbox.moments import key_moments
from sandbox.steps import execution_table, rows_from, state_tracker, step_of
from sandbox.tracer import Event, Trace


def all_traces(recorded_traces):
    return [trace for pair in recorded_traces for trace in pair]


def test_rows_follow_the_clock_and_every_cell_carries_its_claims(recorded_traces) -> None:
    for trace in all_traces(recorded_traces):
        rows = execution_table(trace)
        assert [r.step for r in rows] == list(range(1, len(rows) + 1))
        assert [r.t_ms for r in rows] == sorted(r.t_ms for r in rows)
        for row in rows:
            assert row.action and row.thread and row.thread_state and row.main_app_state
            assert row.claims["action"] and row.claims["thread_state"] and row.claims["main_app_state"]
            assert not row.output or row.claims["output"]


def test_only_the_request_that_sends_is_blocked(recorded_traces) -> None:
    for sync, thread in recorded_traces:
        assert not any("blocked" in r.thread_state for r in execution_table(thread))
        rows = execution_table(sync)
        sent = step_of(rows, "send.started")
        done = step_of(rows, "smtp.accepted") or step_of(rows, "smtp.failed")
        blocked = [r for r in rows if sent.step <= r.step < done.step]
        assert blocked and all(r.thread_state.startswith("Request: blocked inside mail.send()") for r in blocked)
        # Under the test client no web server watched the run: the server column says so instead of guessing.
        assert all(r.main_app_state.startswith("Not observed") for r in rows)


def test_worker_waits_for_the_server_between_its_data_and_the_250(recorded_traces) -> None:
    _, thread = recorded_traces[2]
    rows = execution_table(thread)
    data, accepted = step_of(rows, "smtp.data_sent"), step_of(rows, "smtp.accepted")
    assert all("waiting for the server's reply" in r.thread_state for r in rows if data.step <= r.step < accepted.step)
    assert "its thread ends" in rows[-1].thread_state  # the route started this thread for this one send
    assert step_of(rows, "response.sent").output == "HTTP 202 goes back to the client"


def test_tracker_has_a_column_per_change(recorded_traces) -> None:
    _, thread = recorded_traces[1]
    rows = execution_table(thread)
    tracker = state_tracker(rows)
    assert set(tracker.variables) == {"Request thread", "Worker", "Web server", "Email"}
    assert tracker.steps[-1] == rows[-1].step
    assert tracker.variables["Email"][-1].startswith("Accepted")
    assert all(len(values) == len(tracker.columns) for values in tracker.variables.values())


def test_key_moments_are_tied_to_steps(recorded_traces) -> None:
    for sync, thread in recorded_traces[:3]:
        for trace in (sync, thread):
            moments = key_moments(Facts(trace))
            steps = {row.step for row in execution_table(trace)}
            assert 2 <= len(moments) <= 5
            assert all(m.step in steps and m.claims for m in moments)
        assert "Why didn't the client wait for the email?" in [m.title for m in key_moments(Facts(thread))]
        assert "What did the client wait for?" in [m.title for m in key_moments(Facts(sync))]


def test_failure_gets_its_own_moment(recorded_traces) -> None:
    _, thread = recorded_traces[-1]
    assert any(m.title == "Where did the error go?" for m in key_moments(Facts(thread)))


def event(t: int, kind: str, thread: str = "request-1", tid: int = 1, **details) -> Event:
    return Event(t * 1_000_000, thread, tid, kind, details, "sandbox/x.py", 1, "f")


def test_a_worker_that_fails_before_the_answer_is_told_as_it_happened() -> None:
    trace = Trace(
        "t",
        "thread-no-context",
        "threaded",
        0.0,
        {},
        {},
        [
            event(0, "request.received", method="POST", path="/send-email/thread-no-context"),
            event(1, "message.built"),
            event(2, "worker.spawned", worker="mail-1", target="f"),
            event(3, "worker.started", "mail-1", 2, worker="mail-1"),
            event(4, "send.started", "mail-1", 2),
            event(5, "smtp.failed", "mail-1", 2, error="RuntimeError: Working outside of application context."),
            event(6, "worker.failed", "mail-1", 2, error="RuntimeError: Working outside of application context."),
            event(9, "response.sent", status=202),
        ],
    )
    facts = Facts(trace)
    texts = " ".join(m.text for m in key_moments(facts))
    assert "already failed" in texts and "before the answer left" in texts
    assert "after the failure" not in texts
    assert facts.worker_origin == "route" and facts.outcome == "failed"


def test_steps_from_hand_made_events() -> None:
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
    rows = rows_from(Facts(trace))
    assert [r.kind for r in rows] == [
        "request.received",
        "message.built",
        "send.started",
        "smtp.failed",
        "response.sent",
    ]
    assert rows[2].thread_state == "Request: blocked inside mail.send()"
    assert rows[3].email_state == "Not delivered by this try"
    assert rows[3].output == "The route will answer HTTP 502"
    assert rows[4].output == "HTTP 502 goes back to the client"
