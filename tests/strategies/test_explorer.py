"""The interleaving explorer: the orderings it runs are the ones a hand count of the gates gives, each distinct,
and every order the operating system chose on its own is one of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.client import call
from sandbox.explorer import SCENARIOS, Step, explore, summary
from sandbox.render.document import report, trace_document
from sandbox.runtime import Sandbox
from sandbox.trace.gates import AFTER_250, BEFORE_ANSWER, BEFORE_SEND, SINK_BEFORE_250, WORKER_START
from tests.app.student_lines import unlit_events
from tests.conftest import settings_for_tests
from tests.test_cli import run
from tests.trace.truth import check_document

RUNS = 8
# By hand: the worker's gates in their own order (start, send, the sink's 250, after it), and the request's one gate
# anywhere among them: 5 places. Without a context the worker fails at its send, so it has 2 gates: 3 places. The
# blocking route has one thread that sends (then the sink): 1 order.
WORKER = (Step("worker", WORKER_START), Step("worker", BEFORE_SEND), Step("sink", SINK_BEFORE_250))
THREAD_CHAIN = (*WORKER, Step("worker", AFTER_250))
# Two counting workers held only before and after their read of the count: each has two releases in its own order,
# so the orderings are the ways to interleave two pairs: 4!/(2!2!) = 6. An update is lost when both workers read
# before either writes: both first releases before both second ones, in 2 x 2 = 4 of the 6.
HAND_COUNT = {"thread": 5, "thread-no-context": 3, "sync": 1, "thread-count": 6}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    folder = tmp_path_factory.mktemp("explorer")
    with Sandbox(settings_for_tests(delay_s=0.0, queue_url=f"sqlite:///{folder}/q.db")) as running:
        yield running


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_explorer_runs_exactly_the_orderings_a_hand_count_gives(sandbox: Sandbox, scenario: str) -> None:
    exploration = explore(sandbox, scenario, RUNS)
    orderings = [o.steps for o in exploration.orderings]
    assert len(orderings) == HAND_COUNT[scenario] == len(set(orderings))
    assert sum(o.observed for o in exploration.orderings) == RUNS and not exploration.unexplained
    if scenario == "thread":
        request = Step("request", BEFORE_ANSWER)
        expected = {THREAD_CHAIN[:k] + (request,) + THREAD_CHAIN[k:] for k in range(len(THREAD_CHAIN) + 1)}
        assert set(orderings) == expected
        first = [o for o in exploration.orderings if o.outcome.accepted_before_answer]
        assert [o.steps.index(request) for o in first] == [3, 4]  # released after the sink's: the email came first
        assert not any(o.outcome.request_sent for o in exploration.orderings)  # the user never waits in mail.send()
    elif scenario == "thread-count":
        reads = {Step(f"worker {n}", AFTER_250) for n in (1, 2)}
        lost = {o.steps for o in exploration.orderings if o.outcome.lost_update}
        assert lost == {o.steps for o in exploration.orderings if set(o.steps[:2]) == reads}
        assert len(lost) == 4
    elif scenario == "thread-no-context":
        assert all(o.outcome.failed and o.outcome.accepted_before_answer is None for o in exploration.orderings)
    else:
        (only,) = exploration.orderings
        assert only.steps == (Step("request", BEFORE_SEND), Step("sink", SINK_BEFORE_250), Step("request", AFTER_250))
        assert only.outcome.request_sent and only.outcome.accepted_before_answer
    for ordering in exploration.orderings:  # every sentence of every forced order is true of it
        for trace_id in ordering.trace_ids:
            document = trace_document(report(sandbox.tracer.get(trace_id)))
            cell = f"explore/{scenario}/{' > '.join(step.label for step in ordering.steps)}"
            assert check_document(document, cell) + unlit_events(document, cell) == []
    lines = summary(exploration)
    assert lines[0].startswith(f"{HAND_COUNT[scenario]} ordering")
    document = exploration.to_dict()
    assert document["enumerated"] == len(document["orderings"]) == HAND_COUNT[scenario]


def test_an_observed_send_notes_its_gates_and_its_sentences_hold(sandbox: Sandbox) -> None:
    reply = call(f"{sandbox.url}send-email/thread?schedule=observe", "POST", {})
    assert sandbox.delivery.wait_settled(10)
    document = call(f"{sandbox.url}api/traces/{reply.body['trace_id']}").body
    passed = [e["details"]["gate"] for e in document["events"] if e["kind"] == "gate.passed"]
    assert sorted(passed) == sorted(step.gate for step in (*THREAD_CHAIN, Step("request", BEFORE_ANSWER)))
    assert "gate.parked" not in {e["kind"] for e in document["events"]}
    assert check_document(document, "observed") + unlit_events(document, "observed") == []


def test_run_demo_explore_prints_every_ordering_and_writes_the_files(tmp_path: Path) -> None:
    result = run("run_demo.py", "--explore", "thread", "--runs", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Every ordering of the thread scenario" in result.stdout
    assert "5 orderings of the gates can happen; each was run for real" in result.stdout
    document = json.loads((tmp_path / "explore-thread.json").read_text())
    assert document["enumerated"] == 5 and document["free_runs"] == 5
    assert sum(o["observed"] for o in document["orderings"]) == 5
    assert "| 5 |" in (tmp_path / "explore-thread.md").read_text()
    assert "never seen" in (tmp_path / "explore-thread.html").read_text() or document["never_observed"] == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--explore", "pool"], "--explore"),
        (["--explore", "thread", "--runs", "-1"], "--runs"),
        (["--explore", "thread", "--serve"], "--serve"),
    ],
)
def test_run_demo_explore_refuses_what_it_cannot_do(args: list[str], words: str) -> None:
    result = run("run_demo.py", *args)
    assert result.returncode == 2 and words in result.stderr
