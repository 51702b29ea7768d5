"""The shutdown demonstration stops real child processes mid-send; what it reports is what happened to them."""

from __future__ import annotations

import subprocess
import sys

from flask.testing import FlaskClient

from sandbox import shutdown_demo


def test_each_way_of_stopping_does_what_python_says_it_does(client: FlaskClient) -> None:
    response = client.post("/api/demos/shutdown")
    assert response.status_code == 200
    cases = {case["case"]: case for case in response.get_json()["cases"]}
    assert list(cases) == [case.key for case in shutdown_demo.CASES]
    assert all(case["reached_sink"] for case in cases.values()), "every stop came while its worker waited"
    # Python waits for non-daemon threads at a normal exit and after Ctrl-C, and for no thread on a signal it does not
    # handle; a daemon thread is stopped where it is.
    delivered = {key for key, case in cases.items() if case["delivered"]}
    assert delivered == {"exit", "ctrl-c"}, cases
    assert cases["exit"]["ended_by"] == "exit code 0" and cases["ctrl-c"]["ended_by"] == "signal SIGINT"
    assert cases["sigterm"]["ended_by"] == "signal SIGTERM" and cases["sigkill"]["ended_by"] == "signal SIGKILL"
    waited = min(cases[key]["ended_after_ms"] for key in ("exit", "ctrl-c"))
    assert all(cases[key]["ended_after_ms"] < waited for key in ("daemon-exit", "sigterm", "sigkill"))
    assert "the email is in the mailbox" in cases["exit"]["summary"]
    assert "never reached the mailbox" in cases["sigkill"]["summary"]


def test_one_demonstration_at_a_time(client: FlaskClient) -> None:
    with shutdown_demo._running:
        response = client.post("/api/demos/shutdown")
    assert response.status_code == 409 and "already running" in response.get_json()["error"]
    assert client.get("/api/demos/shutdown").status_code == 405


def test_the_instructor_can_run_it_from_a_terminal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandbox.shutdown_demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "SIGKILL" in done.stdout and "Ctrl-C" in done.stdout
