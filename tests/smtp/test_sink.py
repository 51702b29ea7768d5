from __future__ import annotations

import json
import logging
import smtplib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask.testing import FlaskClient

from sandbox.errors import ConfigError
from sandbox.smtp.sink import DATA_SIZE_LIMIT, Mailbox, Sink, StoredMessage
from tests.conftest import store

TRACE_ID = "5f0c3a1e9b7d4c2a8e6f1b3d5a7c9e0f"  # the shape the app makes: uuid.uuid4().hex
MESSAGE = b"Subject: Hello\r\nX-Sandbox-Trace: " + TRACE_ID.encode() + b"\r\n\r\nHi there\r\n"


def send(sink: Sink, payload: bytes = MESSAGE, timeout: float = 10) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=timeout) as smtp:
        smtp.sendmail("teacher@example.com", ["student@example.com"], payload)


def test_binds_loopback_on_a_free_port(sink: Sink) -> None:
    assert sink.host == "127.0.0.1"
    assert sink.port > 0


def test_stores_what_it_accepts(sink: Sink) -> None:
    send(sink)
    [message] = sink.mailbox.messages()
    assert message.mail_from == "teacher@example.com"
    assert message.rcpt_tos == ("student@example.com",)
    assert message.subject == "Hello"
    assert message.trace_id == TRACE_ID
    assert message.size == len(message.raw) > 0
    assert b"Hi there" in message.raw
    assert set(message.summary()) == {"id", "mail_from", "rcpt_tos", "subject", "received_at", "size", "trace_id"}


def test_a_send_waits_at_least_the_delay(sink: Sink) -> None:
    sink.handler.delay_s = 0.5
    started = time.perf_counter()
    send(sink)
    assert time.perf_counter() - started >= 0.5


def test_sessions_overlap_during_the_delay(sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda _: send(sink), range(10)))
    # Ten one-second waits in series would take ten seconds; overlapping sessions take about one.
    assert time.perf_counter() - started < 3.0
    assert len(sink.mailbox.messages()) == 10


def test_rejects_a_message_over_one_mebibyte(sink: Sink) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * (DATA_SIZE_LIMIT + 1)
    with pytest.raises(smtplib.SMTPResponseException) as excinfo:
        send(sink, big)
    assert excinfo.value.smtp_code == 552
    assert sink.mailbox.messages() == []


def test_a_client_that_leaves_during_the_delay_is_not_counted_as_delivered(sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    smtp = smtplib.SMTP(sink.host, sink.port, timeout=0.3)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtp.sendmail("teacher@example.com", ["student@example.com"], MESSAGE)
    smtp.close()
    time.sleep(1.2)
    assert sink.mailbox.messages() == []


def test_mailbox_keeps_the_newest() -> None:
    mailbox = Mailbox(capacity=3)
    for n in range(5):
        store(mailbox, f"#{n}")
    assert [m.subject for m in mailbox.messages()] == ["#2", "#3", "#4"]
    assert [m.id for m in mailbox.messages()] == [3, 4, 5]


def test_mailbox_finds_the_first_message_with_a_message_id() -> None:
    mailbox = Mailbox()
    first = mailbox.add(**{**FIELDS, "message_id_header": "<x@example.com>"})
    mailbox.add(**{**FIELDS, "message_id_header": "<x@example.com>"})
    mailbox.add(**FIELDS)
    assert mailbox.by_message_id("<x@example.com>") is first
    assert mailbox.by_message_id("<y@example.com>") is None
    assert mailbox.by_message_id("") is None, "a message without a Message-ID is never recognised"


FIELDS = {
    "mail_from": "a@example.com",
    "rcpt_tos": ("b@example.com",),
    "subject": "m",
    "received_at": "",
    "size": 1,
    "raw": b"Subject: m\r\n\r\nx\r\n",
    "trace_id": None,
    "accepted_ns": 0,
}


def test_delay_changes_while_running(sink: Sink) -> None:
    assert sink.update_settings({"delay_s": 1.5})["delay_s"] == 1.5
    assert sink.handler.delay_s == 1.5


@pytest.mark.parametrize(
    "changes", [{"delay_s": -0.1}, {"delay_s": 60.5}, {"delay_s": "2"}, {"delay_s": True}, {"colour": "red"}]
)
def test_bad_settings_change_nothing(sink: Sink, changes: dict) -> None:
    with pytest.raises(ConfigError):
        sink.update_settings(changes)
    assert sink.handler.delay_s == 0.0


def test_a_dead_server_refuses_and_comes_back_on_the_same_port(sink: Sink) -> None:
    port = sink.port
    assert sink.settings()["listening"] is True
    assert sink.update_settings({"listening": False})["listening"] is False
    with pytest.raises(ConnectionRefusedError):
        send(sink)
    assert sink.update_settings({"listening": True})["listening"] is True
    assert sink.port == port and sink.settings()["listening"] is True
    send(sink)
    assert len(sink.mailbox.messages()) == 1


def test_stopping_to_listen_lets_an_open_session_finish(sink: Sink) -> None:
    sink.handler.delay_s = 0.3
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.ehlo()
        sink.set_listening(False)
        with pytest.raises(ConnectionRefusedError):
            send(sink)
        smtp.sendmail("teacher@example.com", ["student@example.com"], MESSAGE)  # the open session gets its 250
    assert len(sink.mailbox.messages()) == 1
    sink.set_listening(True)


def test_switching_twice_the_same_way_is_harmless(sink: Sink) -> None:
    sink.set_listening(False)
    sink.set_listening(False)
    sink.set_listening(True)
    sink.set_listening(True)
    send(sink)
    assert len(sink.mailbox.messages()) == 1


def test_a_sink_that_stopped_listening_still_stops_cleanly() -> None:
    sink = Sink("127.0.0.1", 0).start()
    sink.set_listening(False)
    started = time.perf_counter()
    sink.stop()
    assert time.perf_counter() - started < 2 and sink.listening is False


def test_settings_read_back_can_be_put_back_whole(sink: Sink) -> None:
    saved = sink.update_settings(
        {"delay_s": 0.2, "reject_probability": 0.5, "lose_reply_probability": 0.5, "listening": False}
    )
    sink.update_settings(
        {"delay_s": 0.0, "reject_probability": 0.0, "lose_reply_probability": 0.0, "dedupe_message_id": True}
    )
    sink.update_settings({"listening": True})
    assert sink.update_settings(saved) == saved
    sink.set_listening(True)


def test_put_api_sink_switches_a_real_dead_server(client: FlaskClient, sink: Sink) -> None:
    assert client.put("/api/sink", json={"listening": False}).get_json()["listening"] is False
    refused = client.post("/send-email/sync", json={})
    assert refused.status_code == 502 and "refused" in refused.get_json()["error"].lower()
    assert client.put("/api/sink", json={"listening": "maybe"}).status_code == 400
    assert client.get("/api/sink").get_json()["listening"] is False
    assert client.put("/api/sink", json={"listening": True}).get_json()["port"] == sink.port
    assert client.post("/send-email/sync", json={}).status_code == 200


@pytest.mark.parametrize(
    "changes",
    [{"listening": "no"}, {"listening": 0}, {"listening": False, "delay_s": -1}, {"port": 1}, {"host": "0.0.0.0"}],
)
def test_bad_listening_changes_change_nothing(sink: Sink, changes: dict) -> None:
    with pytest.raises(ConfigError):
        sink.update_settings(changes)
    assert sink.listening is True
    send(sink)


def test_runs_alone_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "sandbox.sink", "--delay", "0", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        banner = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in banner
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("teacher@example.com", ["student@example.com"], MESSAGE)
        line = proc.stdout.readline()
        assert "teacher@example.com -> student@example.com" in line and "'Hello'" in line
        proc.send_signal(subprocess.signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "accepting 1 message" in out


def test_cli_rejects_a_bad_delay() -> None:
    result = subprocess.run([sys.executable, "-m", "sandbox.sink", "--delay", "-3"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "delay_s must be between 0 and 60" in result.stderr


def sent_and_stored(sink: Sink, payload: bytes) -> StoredMessage:
    """Send ``payload`` (smtplib raises unless the sink answers 250) and return what the sink stored."""
    send(sink, payload)
    [message] = sink.mailbox.messages()
    return message


def assert_displays(message: StoredMessage) -> dict:
    """What the mailbox views need: every field a str (or the summary's own types), all of it JSON and UTF-8."""
    parts = message.parts()
    json.dumps(message.summary())
    json.dumps(parts, ensure_ascii=False).encode("utf-8")
    assert all(isinstance(value, str) for header in parts["headers"] for value in header)
    assert isinstance(parts["text"], str) and isinstance(parts["html"], str)
    return parts


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (TRACE_ID.encode(), True),
        (TRACE_ID.encode() + b"  ", True),
        (b"trace-1", False),
        (TRACE_ID.upper().encode(), False),
        (TRACE_ID.encode() + b"0", False),
        (b"caf\xc3\xa9", False),
        (b"\xff" * 32, False),
        (b"", False),
    ],
)
def test_only_the_apps_trace_ids_are_trusted(sink: Sink, header: bytes, kept: bool) -> None:
    message = sent_and_stored(sink, b"Subject: t\r\nX-Sandbox-Trace: " + header + b"\r\n\r\nbody\r\n")
    assert message.trace_id == (TRACE_ID if kept else None)
    assert ["X-Sandbox-Trace", header.decode("utf-8", "replace")] in assert_displays(message)["headers"]


@pytest.mark.parametrize(
    ("raw", "subject"),
    [
        (b"=?x-nope?q?hi?=", "hi"),
        (b"=?utf-8?b?!!!?=", ""),
        (b"=?utf-8?b?/w==?=", "\ufffd"),
        (b"=?utf-7?q?+2AA-?=", "=?utf-7?q?+2AA-?="),
        (b"=?idna?q?=FF?=", "=?idna?q?=FF?="),
        (b"caf\xc3\xa9", "caf\u00e9"),
        (b"\xff\xfe bad", "\ufffd\ufffd bad"),
        (b"=?utf-8?q?caf=C3=A9?=", "caf\u00e9"),
    ],
)
def test_a_subject_that_cannot_be_decoded_is_stored_readable(sink: Sink, raw: bytes, subject: str) -> None:
    message = sent_and_stored(sink, b"Subject: " + raw + b"\r\n\r\nbody\r\n")
    assert message.subject == subject
    assert assert_displays(message)["text"] == "body\r\n"


MULTIPART = (
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nplain\r\n"
    b"--b\r\nContent-Type: text/html; charset=idna\r\n\r\n<p>html</p>\r\n--b--\r\n"
)
MALFORMED = {
    "unknown body charset": (b"Content-Type: text/plain; charset=x-nope\r\n\r\nhi\r\n", "hi\r\n", ""),
    "charsets Python cannot replace with": (MULTIPART, "plain", "<p>html</p>"),
    "To: <": (b"To: <\r\nMessage-ID: <<>>\r\n\r\nhi\r\n", "hi\r\n", ""),
    "bad Date": (b"Date: garbage\r\nResent-Date: Mon, 1 Jan 2020 25:00:00 +0000\r\n\r\nhi\r\n", "hi\r\n", ""),
    "bad base64": (b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n", "!!!not base64", ""),
    "bad quoted-printable": (b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\xff\r\n", "=ZZ=\ufffd\r\n", ""),
    "8-bit body": (b"Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9 \xff\r\n", "caf\u00e9 \ufffd\r\n", ""),
    "utf-7 encoded word in Content-Type": (b"Content-Type: =?utf-7?q?+2AA-?=\r\n\r\nhi\r\n", "hi\r\n", ""),
    "multipart without parts": (b"Content-Type: multipart/alternative\r\n\r\nnot multi\r\n", "", ""),
    "HTML only": (b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n", "", "<p>hi</p>\r\n"),
    "no body at all": (b"Subject: only headers", "", ""),
    "nothing at all": (b"", "", ""),
}


@pytest.mark.parametrize(("raw", "text", "html"), MALFORMED.values(), ids=MALFORMED.keys())
def test_whatever_was_accepted_displays(sink: Sink, raw: bytes, text: str, html: str) -> None:
    parts = assert_displays(sent_and_stored(sink, raw))
    assert (parts["text"], parts["html"]) == (text, html)


def test_a_header_that_cannot_be_parsed_shows_its_raw_text(sink: Sink) -> None:
    parts = assert_displays(sent_and_stored(sink, MALFORMED["To: <"][0]))
    assert ["To", "<"] in parts["headers"] and ["Message-ID", "<<>>"] in parts["headers"]


def test_the_mailbox_pages_show_every_malformed_message(client: FlaskClient, sink: Sink) -> None:
    for raw, *_ in MALFORMED.values():
        send(sink, raw)
    send(sink, b"Subject: =?x-nope?q?hi?=\r\nX-Sandbox-Trace: caf\xc3\xa9\r\n\r\nbody\r\n")
    assert client.get("/mailbox").status_code == 200
    assert client.get("/api/messages").status_code == 200
    for message in sink.mailbox.messages():
        for url in (f"/api/messages/{message.id}", f"/mailbox/{message.id}", f"/mailbox/{message.id}/html"):
            assert client.get(url).status_code == 200, url


def test_our_own_failure_is_a_temporary_error_and_ends_the_transaction(
    sink: Sink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_add(**fields: object) -> StoredMessage:
        raise TypeError("unhashable type: 'Header'")

    monkeypatch.setattr(sink.mailbox, "add", broken_add)
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("teacher@example.com")
        smtp.rcpt("student@example.com")
        with caplog.at_level(logging.ERROR, logger="sandbox.sink"):
            code, reply = smtp.data(MESSAGE)
        assert code == 451 and b"Header" not in reply and b"Error" not in reply
        assert any(record.exc_info for record in caplog.records)
        monkeypatch.undo()
        # No RSET: the failed DATA ended the transaction, so the next MAIL is not "nested".
        assert smtp.mail("teacher@example.com")[0] == 250
        smtp.rcpt("student@example.com")
        assert smtp.data(MESSAGE)[0] == 250
    assert len(sink.mailbox.messages()) == 1


def test_a_failing_listener_does_not_turn_an_accepted_message_into_an_error(sink: Sink) -> None:
    def broken(*args: object, **details: object) -> None:
        raise RuntimeError("listener bug")

    sink.handler.on_message = broken
    sink.handler.on_event = broken
    send(sink)  # raises unless the reply is 250
    assert len(sink.mailbox.messages()) == 1
