"""What survives SIGTERM and SIGKILL, per mode: one test per cell of the README's promises table.

The sandbox runs as ``python -m sandbox`` in a process of its own, sending to a sink in this process, so the sink
and its mailbox outlive the kill and tell what really arrived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.client import call
from sandbox.smtp.sink import Sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_sink() -> Iterator[Sink]:
    with Sink("127.0.0.1", 0) as sink:
        sink.handler.delay_s = 0.2
        yield sink


@contextmanager
def served(sink: Sink, queue_url: str, *flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m sandbox`` sending to ``sink``; yields the process and its URL, and kills it if still running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "SANDBOX_QUEUE_WORKERS": "2"}
    command = [sys.executable, "-m", "sandbox", "--port", "0", "--mail-server", sink.address, "--queue-url", queue_url]
    proc = subprocess.Popen(
        [*command, *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        yield proc, line[line.index("http://") :].split()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def send(url: str, mode: str, count: int) -> list[str]:
    return [call(f"{url}send-email/{mode}", "POST", {"name": f"S{n}"}).body["trace_id"] for n in range(count)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def arrived(sink: Sink) -> Counter[str | None]:
    return Counter(m.trace_id for m in sink.mailbox.messages())


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/queue.db"
    return request.getfixturevalue("own_redis_url")


def test_queue_sigkill_loses_nothing_and_names_possible_duplicates(slow_sink: Sink, queue_url: str) -> None:
    with served(slow_sink, queue_url) as (proc, url):
        ids = send(url, "queue", 50)
        wait_until(lambda: len(slow_sink.mailbox.messages()) >= 5, 20, "the first deliveries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    lost_for_now = set(ids) - set(arrived(slow_sink))
    assert lost_for_now, "the kill came after every send: the test proved nothing"
    with served(slow_sink, queue_url) as (proc, url):
        wait_until(lambda: set(ids) <= set(arrived(slow_sink)), 60, "every email to arrive after the restart")
        wait_until(lambda: call(f"{url}api/stats").body["pending"] == 0, 20, "the restarted run to settle")
        report = call(f"{url}api/failures").body
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    counts = arrived(slow_sink)
    twice = {trace_id for trace_id, n in counts.items() if n > 1}
    flagged = {d["trace_id"] for d in report["possibly_duplicated"]}
    assert report["failures"] == []
    assert twice <= flagged, "an email that arrived twice must be reported as possibly duplicated"
    assert flagged <= set(ids)
    assert proc.returncode == 0
    if flagged:
        assert "sent again after a crash cut an attempt" in out


def test_queue_sigterm_keeps_what_waits_and_sends_it_once_after_a_restart(slow_sink: Sink, tmp_path: Path) -> None:
    queue_url = f"sqlite:///{tmp_path}/queue.db"
    with served(slow_sink, queue_url) as (proc, url):
        ids = send(url, "queue", 20)
        wait_until(lambda: len(slow_sink.mailbox.messages()) >= 2, 20, "the first deliveries")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "queued email(s) are not delivered yet" in out
    with served(slow_sink, queue_url) as (proc, url):
        wait_until(lambda: set(ids) <= set(arrived(slow_sink)), 60, "every email after the restart")
        time.sleep(0.5)
        report = call(f"{url}api/failures").body
    assert max(arrived(slow_sink).values()) == 1, "a graceful stop sends nothing twice"
    assert report == {"failures": [], "possibly_duplicated": []}


@pytest.mark.parametrize("mode", ["thread", "pool"])
def test_sigkill_loses_in_memory_sends_and_nothing_says_they_arrived(
    slow_sink: Sink, tmp_path: Path, mode: str
) -> None:
    """The cell the tool cannot make safe: threads and the pool's queue die with the process. The 202 promised
    nothing durable; the sink shows the sends in flight never arrived."""
    slow_sink.handler.delay_s = 1.0
    with served(slow_sink, f"sqlite:///{tmp_path}/queue.db") as (proc, url):
        ids = send(url, mode, 6)
        wait_until(lambda: slow_sink.handler.sessions >= 1, 10, "a send under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(1.2)  # any wait the sink had begun is over
    assert not set(ids) & set(arrived(slow_sink))
    with served(slow_sink, f"sqlite:///{tmp_path}/queue.db") as (proc, url):
        assert call(f"{url}api/stats").body["sent"] == 0, "a new process knows nothing of them"


def test_sync_sigterm_answers_the_request_in_flight_and_sigkill_answers_nothing(
    slow_sink: Sink, tmp_path: Path
) -> None:
    slow_sink.handler.delay_s = 0.5
    with served(slow_sink, f"sqlite:///{tmp_path}/queue.db") as (proc, url), ThreadPoolExecutor(1) as client:
        wait_until(lambda: call(f"{url}api/ping").status == 200, 10, "the server")
        reply = client.submit(call, f"{url}send-email/sync", "POST", {})
        wait_until(lambda: slow_sink.handler.sessions >= 1, 10, "the send under way")
        proc.send_signal(signal.SIGTERM)
        answered = reply.result(timeout=10)
        out, _ = proc.communicate(timeout=30)
    assert answered.status == 200 and arrived(slow_sink)[answered.body["trace_id"]] == 1
    assert "Every accepted email was delivered." in out
    with served(slow_sink, f"sqlite:///{tmp_path}/queue.db") as (proc, url), ThreadPoolExecutor(1) as client:
        reply = client.submit(call, f"{url}send-email/sync", "POST", {})
        wait_until(lambda: slow_sink.handler.sessions >= 1, 10, "the send under way")
        proc.send_signal(signal.SIGKILL)
        with pytest.raises(OSError):
            reply.result(timeout=10)
    time.sleep(0.7)
    assert len(slow_sink.mailbox.messages()) == 1, "the killed request's email never arrived, and was never confirmed"
