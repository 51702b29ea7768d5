"""A desk per visitor: one sandbox, one sink, and each browser's settings, mail, traces and counts its own.

Every test sends real email through the app to the real sink; two Flask test clients keep their own cookies, as
two browsers would.
"""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.smtp.sink import Sink
from sandbox.trace.tracer import DEFAULT_DESK
from sandbox.web.desks import DESK_ID, secret_key

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # Chromium's, for a page


def seated(app: Flask) -> FlaskClient:
    """A visitor whose browser opened the sandbox page: it has a desk of its own."""
    client = app.test_client()
    assert client.get("/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200
    assert client.get("/api/desk").get_json()["own"] is True
    return client


def send(client: FlaskClient, mode: str = "sync", **fields: str) -> dict:
    return client.post(f"/send-email/{mode}", json={"subject": "desk", **fields}).get_json()


def wait_settled(app: Flask) -> None:
    assert app.extensions["sandbox.delivery"].wait_settled(10)


def test_a_page_visit_seats_the_browser_at_a_desk_of_its_own_and_the_api_alone_does_not(app: Flask) -> None:
    ada, bob, script = seated(app), seated(app), app.test_client()
    ids = {c.get_cookie("sandbox_desk").value for c in (ada, bob)}
    assert len(ids) == 2, "each browser has its own signed cookie"
    assert script.get("/api/desk").get_json()["own"] is False
    assert script.get_cookie("sandbox_desk") is None, "the JSON API alone hands out no desk"
    seats = app.extensions["sandbox.desks"].ids()
    assert len(seats) == 2 and all(DESK_ID.fullmatch(d) for d in seats)


def test_a_delay_set_at_one_desk_slows_only_that_desks_sends(app: Flask, sink: Sink) -> None:
    ada, bob, script = seated(app), seated(app), app.test_client()
    assert ada.put("/api/sink", json={"delay_s": 0.4}).get_json()["delay_s"] == 0.4
    assert bob.get("/api/sink").get_json()["delay_s"] == 0.0
    assert script.get("/api/sink").get_json()["delay_s"] == 0.0 == sink.handler.delay_s
    slow, quick, plain = send(ada), send(bob), send(script)
    assert slow["status"] == quick["status"] == plain["status"] == "sent"
    assert slow["response_ms"] >= 400, "ada's sink waits her delay"
    assert quick["response_ms"] < 400 and plain["response_ms"] < 400, "nobody else feels it"
    tracer = app.extensions["sandbox.tracer"]
    assert tracer.get(slow["trace_id"]).delay_s == 0.4 and tracer.get(quick["trace_id"]).delay_s == 0.0


def test_a_dead_server_at_one_desk_refuses_only_that_desks_mail(app: Flask, sink: Sink) -> None:
    ada, bob = seated(app), seated(app)
    ada.put("/api/sink", json={"listening": False})
    refused = ada.post("/send-email/sync", json={}).get_json()
    delivered = send(bob)
    threaded = send(ada, "thread")
    wait_settled(app)
    assert "refused" in refused["error"].lower() and delivered["status"] == "sent"
    ada_failures = {f["trace_id"] for f in ada.get("/api/failures").get_json()["failures"]}
    assert ada_failures == {refused["trace_id"], threaded["trace_id"]}
    assert bob.get("/api/failures").get_json()["failures"] == []
    assert app.test_client().get("/api/failures").get_json()["failures"] == []
    assert ada.get("/api/stats").get_json()["failed"] == 2 and bob.get("/api/stats").get_json()["delivered"] == 1
    assert sink.listening, "the shared default port still listens"


def test_neither_desk_sees_the_others_mail_or_traces(app: Flask, sink: Sink) -> None:
    ada, bob = seated(app), seated(app)
    hers, his = send(ada, subject="for ada"), send(bob, "thread", subject="for bob")
    wait_settled(app)
    [ada_mail] = ada.get("/api/messages").get_json()["messages"]
    [bob_mail] = bob.get("/api/messages").get_json()["messages"]
    assert (ada_mail["trace_id"], bob_mail["trace_id"]) == (hers["trace_id"], his["trace_id"])
    assert "for ada" in ada.get("/mailbox").get_data(as_text=True)
    assert "for ada" not in bob.get("/mailbox").get_data(as_text=True)
    assert sink.mailbox.messages() == [], "nothing went to the default desk"
    for own, other, trace_id in ((ada, bob, hers["trace_id"]), (bob, ada, his["trace_id"])):
        assert own.get(f"/api/traces/{trace_id}").status_code == 200
        assert other.get(f"/api/traces/{trace_id}").status_code == 404
        assert other.get(f"/traces/{trace_id}", headers={"Accept": BROWSER_ACCEPT}).status_code == 404
    # Message ids count per desk: each desk's first message is #1, and #1 of one desk is not the other's.
    assert ada_mail["id"] == bob_mail["id"] == 1
    assert "for ada" in ada.get("/api/messages/1").get_json()["subject"]
    assert "for bob" in bob.get("/api/messages/1").get_json()["subject"]
    assert app.test_client().get("/api/messages/1").status_code == 404


def test_a_queued_send_goes_to_its_desks_port_and_mailbox(app: Flask, sink: Sink) -> None:
    app.extensions["sandbox.queue"].start_consumer(1)
    try:
        ada = seated(app)
        ada.put("/api/sink", json={"delay_s": 0.2})
        queued = send(ada, "queue")
        wait_settled(app)
    finally:
        app.extensions["sandbox.queue"].stop_consumer(5)
    [stored] = ada.get("/api/messages").get_json()["messages"]
    assert stored["trace_id"] == queued["trace_id"]
    trace = ada.get(f"/api/traces/{queued['trace_id']}").get_json()
    waited = next(e for e in trace["events"] if e["kind"] == "sink.delay_started")
    assert waited["details"]["delay_s"] == 0.2, "the consumer's send met the desk's own delay"


def test_mail_sent_by_smtplib_to_a_desks_port_lands_at_that_desk(app: Flask, sink: Sink) -> None:
    ada = seated(app)
    port = ada.get("/api/sink").get_json()["port"]
    assert port != sink.port
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = "me@example.com", "you@example.com", "by hand"
    email.set_content("hello")
    with smtplib.SMTP(sink.host, port, timeout=5) as smtp:
        smtp.send_message(email)
    assert [m["subject"] for m in ada.get("/api/messages").get_json()["messages"]] == ["by hand"]
    assert sink.mailbox.messages() == []


def test_reset_gives_the_desk_a_fresh_start(app: Flask, sink: Sink) -> None:
    ada, bob = seated(app), seated(app)
    ada.put("/api/sink", json={"delay_s": 0.1, "listening": False, "reject_probability": 0.5})
    refused = ada.post("/send-email/sync", json={}).get_json()
    bob.put("/api/sink", json={"delay_s": 0.2})
    kept = send(bob)
    reset = ada.post("/api/desk/reset").get_json()
    assert reset["traces"] == 0 and reset["messages"] == 0
    settings = ada.get("/api/sink").get_json()
    assert (settings["delay_s"], settings["listening"], settings["reject_probability"]) == (0.0, True, 0.0)
    assert ada.get(f"/api/traces/{refused['trace_id']}").status_code == 404
    assert ada.get("/api/failures").get_json()["failures"] == []
    assert send(ada)["status"] == "sent", "the desk's port listens again"
    assert bob.get(f"/api/traces/{kept['trace_id']}").status_code == 200 and bob.get("/api/sink").get_json()[
        "delay_s"
    ] == pytest.approx(0.2)


def test_an_idle_desk_is_cleaned_up_and_its_port_closed(app: Flask, sink: Sink) -> None:
    desks = app.extensions["sandbox.desks"]
    ada, bob = seated(app), seated(app)
    ada_id = desks.ids()[0]
    port = ada.get("/api/sink").get_json()["port"]
    sent = send(ada)
    time.sleep(0.05)
    bob.get("/api/desk")  # bob was here just now
    desks.idle_s = 0.03
    assert desks.sweep() == [ada_id]
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(sink.host, port, timeout=5)
    assert app.extensions["sandbox.tracer"].count(ada_id) == 0, "its traces left memory"
    assert ada_id not in sink.desk_names()
    # The same browser comes back: it keeps its cookie and gets its desk again, fresh, on a new port.
    desks.idle_s = 3600
    assert ada.get("/api/desk").get_json() | {"keeps": None} == {
        "own": True,
        "name": None,
        "traces": 0,
        "messages": 0,
        "keeps": None,
        "idle_cleanup_s": 3600,
        "kept_days": 7,
    }
    assert send(ada)["status"] == "sent"
    assert ada.get(f"/api/traces/{sent['trace_id']}").status_code == 200, "the old trace is read from the store"
    assert bob.get(f"/api/traces/{sent['trace_id']}").status_code == 404, "and is still the desk's own"


def test_beyond_the_most_desks_the_least_recently_used_goes(app: Flask) -> None:
    desks = app.extensions["sandbox.desks"]
    desks.max_desks = 3
    visitors = [seated(app) for _ in range(3)]
    first = desks.ids()[0]
    visitors[0].get("/api/desk")  # the first comes back: the second is now the least recently used
    second = desks.ids()[1]
    seated(app)
    assert first in desks.ids() and second not in desks.ids() and len(desks.ids()) == 3


def test_the_cookie_is_signed_so_a_made_up_desk_is_the_default_one(app: Flask) -> None:
    forger = app.test_client()
    forger.set_cookie("sandbox_desk", "eyJkZXNrIjoiMDAwMDAwMDAwMDAwMDAwMCJ9.forged.signature")
    assert forger.get("/api/desk").get_json()["own"] is False
    assert DEFAULT_DESK not in app.extensions["sandbox.desks"].ids()


def test_a_restarted_sandbox_knows_the_desk_cookies_it_gave(app: Flask, sink: Sink) -> None:
    ada = seated(app)
    cookie = ada.get_cookie("sandbox_desk").value
    restarted = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False}, sink=sink)
    again = restarted.test_client()
    again.set_cookie("sandbox_desk", cookie)
    assert again.get("/api/desk").get_json()["own"] is True
    assert restarted.extensions["sandbox.desks"].ids() == app.extensions["sandbox.desks"].ids()


def test_the_signing_key_is_made_once_and_kept(tmp_path) -> None:
    first = secret_key(tmp_path / "instance")
    assert len(first) == 32 and secret_key(tmp_path / "instance") == first
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert list((tmp_path / "instance").iterdir()) == [tmp_path / "instance" / "secret_key"]


def test_a_desk_past_its_sends_per_minute_is_told_when_to_try_again(app: Flask) -> None:
    app.config["SANDBOX_DESK_SENDS_PER_MINUTE"] = 3
    ada, bob, script = seated(app), seated(app), app.test_client()
    assert [ada.post("/send-email/thread", json={}).status_code for _ in range(3)] == [202, 202, 202]
    refused = ada.post("/send-email/sync", json={})
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3 sends in the last minute" in refused.get_json()["error"]
    assert bob.post("/send-email/sync", json={}).status_code == 200, "another desk has its own allowance"
    assert all(script.post("/send-email/thread", json={}).status_code == 202 for _ in range(5)), "the default desk"
    wait_settled(app)
    assert ada.get("/api/stats").get_json()["sent"] == 3, "the refused send was never accepted"


def test_a_desk_holding_too_many_connections_hears_421(sink: Sink) -> None:
    sink.handler.desk_sessions = 2
    port = sink.port_for("0123456789abcdef")
    held = [smtplib.SMTP(sink.host, port, timeout=5) for _ in range(2)]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP(sink.host, port, timeout=5)
        assert refused.value.smtp_code == 421 and b"this desk" in refused.value.smtp_error
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as other:  # the default desk is not crowded
            assert other.noop()[0] == 250
    finally:
        for smtp in held:
            smtp.quit()
    deadline = time.monotonic() + 5
    while sink.desk("0123456789abcdef").sessions and time.monotonic() < deadline:  # the sink hears the hang-ups
        time.sleep(0.01)
    with smtplib.SMTP(sink.host, port, timeout=5) as again:
        assert again.noop()[0] == 250, "a connection freed is a place freed"
