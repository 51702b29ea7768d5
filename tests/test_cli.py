"""The command lines as an instructor uses them, each in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from sandbox.client import call
from sandbox.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_demo_compares_the_modes_writes_the_files_and_exits_zero(tmp_path: Path) -> None:
    result = run("run_demo.py", "--delay", "0.3", "--out", str(tmp_path), "--quiz")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sync (blocking)" in out and "thread" in out
    assert out.count("1/1") == 4
    assert "What each mode promises" in out
    assert "Every accepted email was delivered." in out
    assert "execution table" in out and "State tracker" in out
    expected = {"index.html"} | {
        f"{mode}.{ext}"
        for mode in ("sync", "thread", "pool", "queue")
        for ext in ("html", "md", "json", "perfetto.json")
    }
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert all(str(tmp_path / name) in out.replace("\n", "") for name in expected)
    assert json.loads((tmp_path / "thread.json").read_text())["mode"] == "thread"
    assert "Skipping --quiz: standard input is not a terminal" in out


def test_demo_with_several_clients_on_a_single_server(tmp_path: Path) -> None:
    result = run(
        "run_demo.py",
        "--delay",
        "0.2",
        "--clients",
        "3",
        "--server",
        "single",
        "--modes",
        "sync",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "3/3" in result.stdout and "single" in result.stdout


def test_demo_reports_mail_it_could_not_deliver(closed_port: int, tmp_path: Path) -> None:
    result = run(
        "run_demo.py", "--mail-server", f"127.0.0.1:{closed_port}", "--smtp-timeout", "2", "--out", str(tmp_path)
    )
    assert result.returncode == 1
    assert "4 email(s) not delivered" in result.stdout
    assert "refused the connection" in result.stdout


class MarkupReplies:
    """An SMTP server whose refusal is text rich would read as markup: ``[/bold]`` and ``[x]``."""

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str, options: list) -> str:
        return "550 [/bold] no [x] here [link=javascript:alert(1)]click[/link]"


def test_text_from_outside_reaches_the_terminal_as_it_is(tmp_path: Path) -> None:
    port = free_port()
    controller = Controller(MarkupReplies(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        result = run(
            "run_demo.py", "--mail-server", f"127.0.0.1:{port}", "--modes", "sync,thread", "--out", str(tmp_path)
        )
    finally:
        controller.stop()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "[/bold] no [x] here" in result.stdout.replace("\n", " ")
    assert (tmp_path / "sync.md").exists() and (tmp_path / "thread.json").exists()
    assert "(javascript:" not in (tmp_path / "sync.md").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--clients", "0"],
        ["--modes", "fax"],
        ["--delay", "-1"],
        ["--server", "forking"],
        ["--mail-server", "nope"],
        ["--bogus"],
        ["--port", "99999"],
    ],
)
def test_bad_flags_give_one_line_and_exit_2(args: list[str]) -> None:
    result = run("run_demo.py", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr
    assert result.stdout == ""


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    assert "http://127.0.0.1:" in line, line + proc.stderr.read()
    url = line[line.index("http://") :].split()[0]
    return proc, url


@pytest.mark.parametrize("command", [["run_demo.py", "--serve"], ["-m", "sandbox"]])
def test_serve_stops_cleanly_on_sigterm_and_delivers_pending_mail(command: list[str]) -> None:
    proc, url = start_server(*command, "--delay", "1")
    try:
        assert call(f"{url}api/ping").body["ok"] is True
        assert call(f"{url}send-email/thread", "POST", {}).status == 202
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Every accepted email was delivered." in out


def test_module_reports_bad_mail_server() -> None:
    result = run("-m", "sandbox", "--mail-server", "nowhere")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
