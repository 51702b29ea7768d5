from __future__ import annotations

from sandbox.trace.facts import Facts
from sandbox.trace.moments import key_moments
from sandbox.trace.steps import execution_table, rows_from, state_tracker, step_of
from sandbox.trace.tracer import Event, Trace


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


def async_view_trace(*, refused: bool) -> Trace:
    """An async def view's events: the request's thread, the event loop's (loop-1) and the executor's (asyncio_0)."""
    loop, executor = ("loop-1", 2), ("asyncio_0", 3)
    error = "the SMTP server refused the connection (is it running?)"
    events = [
        event(0, "request.received", method="POST", path="/send-email/async-await"),
        event(1, "message.built"),
        event(2, "coroutine.called", function="send_and_await", via="app.ensure_sync"),
        event(3, "coroutine.started", *loop, function="send_and_await", loop="loop-1"),
        event(4, "send.started", *executor, via="asyncio.to_thread"),
        event(5, "smtp.connecting", *executor, server="127.0.0.1:9"),
    ]
    if refused:
        events += [
            event(6, "smtp.failed", *executor, error=error, code=None, outcome="failed"),
            event(7, "coroutine.failed", *loop, error=error),
            event(8, "response.sent", status=502),
        ]
    else:
        events += [
            event(6, "smtp.connected", *executor, server="127.0.0.1:9"),
            event(7, "smtp.data_sent", *executor, size=100),
            event(8, "smtp.accepted", *executor, recipients=["a@example.com"]),
            event(9, "coroutine.finished", *loop),
            event(10, "response.sent", status=200),
        ]
    return Trace("t", "async-await", "threaded", 0.0, {}, {}, events)


def test_an_async_views_rows_tell_who_waits_for_whom() -> None:
    rows = rows_from(Facts(async_view_trace(refused=False)))
    by_kind = {row.kind: row for row in rows}
    assert by_kind["coroutine.called"].thread_state.startswith(
        "Request: waiting in app.ensure_sync() for the coroutine to finish · Coroutine: handed to app.ensure_sync()"
    )
    sent = by_kind["send.started"]
    assert sent.action.startswith("mail.send(msg) is called on asyncio_0, an executor thread")
    assert "request's own thread" not in sent.action
    assert sent.thread_state.endswith("Coroutine on loop-1: awaiting mail.send(), which runs on asyncio_0")
    assert "awaiting; asyncio_0 waits for the server's reply" in by_kind["smtp.data_sent"].thread_state
    assert by_kind["coroutine.finished"].action.startswith("The awaited mail.send() returned at step 8")
    assert by_kind["response.sent"].thread_state == "Request: answered HTTP 200 · Coroutine on loop-1: returned"
    assert not any("worker" in (row.action + row.thread_state).lower() for row in rows)
    tracker = state_tracker(rows)
    assert list(tracker.variables) == ["Request thread", "Coroutine", "Web server", "Email"]
    assert all(len(values) == len(tracker.columns) for values in tracker.variables.values())
    titles = [m.title for m in key_moments(Facts(async_view_trace(refused=False)))]
    assert titles[:2] == ["What did the client wait for?", "Did awaiting free the request's thread?"]


def test_an_async_views_failure_goes_back_through_the_coroutine_to_the_answer() -> None:
    facts = Facts(async_view_trace(refused=True))
    rows = rows_from(facts)
    raised = step_of(rows, "coroutine.failed")
    assert raised.output == "The route will answer HTTP 502"
    assert raised.thread_state.endswith("Coroutine on loop-1: raised the error mail.send() raised")
    [failure] = [m for m in key_moments(facts) if m.title == "Where did the error go?"]
    assert "It came back through the coroutine that awaited the send, which raised it at step" in failure.text
    assert facts.outcome == "failed" and facts.sender_outcome == "failed"
