"""The explorer on the scheduler's page, through its JSON API: it runs for the desk that asked, reports its
progress, and ends with the same table ``run_demo.py --explore`` prints; bad requests get a 4xx with a reason."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox.client import call
from sandbox.runtime import Sandbox
from sandbox.web import explorations

DELAY_S = 0.0


def finished(sandbox: Sandbox, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = call(f"{sandbox.url}api/explorations/{job_id}").body
        if job["state"] != "running":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_an_exploration_runs_in_the_background_and_ends_with_the_orderings(sandbox: Sandbox) -> None:
    started = call(f"{sandbox.url}api/explorations", "POST", {"scenario": "thread", "runs": 3})
    assert started.status == 202 and started.body["state"] == "running"
    again = call(f"{sandbox.url}api/explorations", "POST", {"scenario": "sync", "runs": 0})
    assert again.status == 409 and "exploring already" in again.body["error"]
    job = finished(sandbox, started.body["id"])
    assert job["state"] == "done", job
    result = job["result"]
    assert result["enumerated"] == 5 and result["free_runs"] == 3
    assert sum(o["observed"] for o in result["orderings"]) == 3
    assert result["summary"][0].startswith("5 orderings of the gates can happen")
    assert [c["name"] for c in result["columns"]] == ["accepted_before_answer", "request_sent", "failed"]
    trace = call(f"{sandbox.url}api/traces/{result['orderings'][0]['trace_ids'][0]}")
    assert trace.status == 200  # the sends are the desk's own


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"scenario": "pool"}, "scenario must be one of"),
        ({}, "scenario must be one of"),
        ({"scenario": "thread", "runs": 21}, "runs must be"),
        ({"scenario": "thread", "runs": -1}, "runs must be"),
        ({"scenario": "thread", "runs": True}, "runs must be"),
        ({"scenario": "thread", "runs": "5"}, "runs must be"),
    ],
)
def test_a_bad_exploration_request_says_what_is_wrong(client: FlaskClient, body: dict[str, Any], words: str) -> None:
    answer = client.post("/api/explorations", json=body)
    assert answer.status_code == 400 and words in answer.get_json()["error"]


def test_an_exploration_that_breaks_says_why_and_frees_the_desk(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise ValueError("no such thing")

    monkeypatch.setattr(explorations, "explore", broken)
    job = finished(sandbox, call(f"{sandbox.url}api/explorations", "POST", {"scenario": "sync", "runs": 0}).body["id"])
    assert job["state"] == "failed" and job["error"] == "ValueError: no such thing"
    assert call(f"{sandbox.url}api/explorations", "POST", {"scenario": "sync", "runs": 0}).status == 202


def test_an_unknown_exploration_is_a_404(client: FlaskClient) -> None:
    answer = client.get("/api/explorations/nope")
    assert answer.status_code == 404 and "no exploration" in answer.get_json()["error"]
