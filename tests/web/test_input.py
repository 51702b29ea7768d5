"""What a client may put in a send: no header injection by any line break, no 500 on odd JSON, nothing accepted
that could not be delivered."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from sandbox.runtime import Sandbox
from sandbox.smtp.sink import Sink
from sandbox.strategies.modes import STRATEGIES
from tests.conftest import settings_for_tests

# Every character str.splitlines() splits on (Python's email package may fold any of them into a header break),
# other control characters, and lone surrogates.
LINE_BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
REFUSED = [*LINE_BREAKS, "\x00", "\x07", "\x1b", "\x7f", "\ud800", "\udfff"]


def post_raw(client: FlaskClient, mode: str, fields: dict[str, str]) -> tuple[int, dict[str, object]]:
    """POST the fields as JSON escaped to ASCII, so lone surrogates travel as ``\\ud800``, as a browser sends them."""
    response = client.post(f"/send-email/{mode}", data=json.dumps(fields), content_type="application/json")
    return response.status_code, response.get_json()


def test_splitlines_knows_no_other_line_breaks() -> None:
    """The list above is complete: every code point str.splitlines() breaks on is in it."""
    breaking = [chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1]
    assert sorted(breaking) == sorted(LINE_BREAKS)


@pytest.mark.parametrize("mode", list(STRATEGIES))
@pytest.mark.parametrize("field", ["subject", "name", "to"])
def test_every_line_break_control_character_and_surrogate_is_refused(
    client: FlaskClient, sink: Sink, mode: str, field: str
) -> None:
    for char in REFUSED:
        value = f"hi{char}{char}Bcc: evil@example.org" if field != "to" else f"a{char}@example.com"
        status, body = post_raw(client, mode, {field: value})
        assert status == 400, (repr(char), body)
        assert field in body["error"] and f"U+{ord(char):04X}" in body["error"]
    assert client.get("/api/stats").get_json()["sent"] == 0
    assert sink.mailbox.messages() == []


def test_a_tab_and_ordinary_unicode_pass_and_arrive_intact(client: FlaskClient, sink: Sink) -> None:
    subject = "Tabs\tand ünïcode ✉ 日本語"
    status, body = post_raw(client, "sync", {"subject": subject, "name": "Zoë\tO'Brien <b>"})
    assert status == 200, body
    [stored] = sink.mailbox.messages()
    email = message_from_bytes(stored.raw, policy=policy.default)
    assert email["Subject"].endswith(subject)
    assert email["X-Sandbox-Trace"] == body["trace_id"]
    assert "Zoë\tO'Brien <b>" in email.get_body(("plain",)).get_content()


@pytest.mark.parametrize("path", ["/send-email/sync", "/send-email/queue", "/api/sink"])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_400(client: FlaskClient, path: str, opener: str) -> None:
    method = client.put if path == "/api/sink" else client.post
    for depth in (1_000, 3_000, 100_000):  # the deepest is also over the body limit: 413 then
        response = method(path, data=opener * depth, content_type="application/json")
        assert response.status_code in (400, 413), (depth, response.get_data()[:200])
        assert response.get_json()["error"]


@pytest.mark.parametrize(
    "name",
    ["&" * 200, "a" * 992, "é" * 1000, "<" * 1000, " ".join(["word"] * 199)],
    ids=["ampersands", "ascii", "accented", "angles", "words"],
)
def test_a_name_that_makes_long_lines_is_folded_and_delivered(client: FlaskClient, sink: Sink, name: str) -> None:
    status, body = post_raw(client, "sync", {"name": name, "subject": name})
    assert status == 200, body
    [stored] = sink.mailbox.messages()
    assert max(len(line) for line in stored.raw.split(b"\r\n")) <= 78
    email = message_from_bytes(stored.raw, policy=policy.default)
    assert f"Hello {name}," in email.get_body(("plain",)).get_content()
    assert email["Subject"].endswith(name)


def test_a_queue_send_of_a_long_name_is_delivered_folded(tmp_path: Path) -> None:
    """The queue rebuilds the message from stored plain values: it must fold the same way."""
    with Sandbox(settings_for_tests(delay_s=0, queue_url=f"sqlite:///{tmp_path}/q.db")) as sandbox:
        assert sandbox.app is not None and sandbox.sink is not None
        assert sandbox.app.test_client().post("/send-email/queue", json={"name": "&" * 200}).status_code == 202
        assert sandbox.sink.mailbox.wait_for_count(1, 15)
        [stored] = sandbox.sink.mailbox.messages()
    assert max(len(line) for line in stored.raw.split(b"\r\n")) <= 78
