from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.smtp.sink import Sink
from tests.conftest import store


def wait_for_messages(sink: Sink, count: int, timeout: float = 10) -> list:
    assert sink.mailbox.wait_for_count(count, timeout), f"fewer than {count} message(s) arrived in {timeout} s"
    return sink.mailbox.messages()


def test_sync_send_waits_for_the_sink_and_delivers_both_parts(client: FlaskClient, sink: Sink) -> None:
    sink.handler.delay_s = 0.5
    started = time.perf_counter()
    response = client.post("/send-email/sync", json={"to": "ada@example.com", "name": "Ada", "subject": "Hi"})
    waited = time.perf_counter() - started
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "sent" and body["mode"] == "sync"
    assert waited >= 0.5 and body["response_ms"] >= 500
    [stored] = sink.mailbox.messages()
    assert stored.subject == "[Sandbox] Hi"
    assert stored.rcpt_tos == ("ada@example.com",)
    assert stored.trace_id == body["trace_id"]
    email = message_from_bytes(stored.raw, policy=policy.default)
    assert "Ada" in email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert "Ada" in html and "<a href=" in html


def test_thread_send_answers_first_and_delivers_after_the_delay(client: FlaskClient, sink: Sink) -> None:
    sink.handler.delay_s = 1.0
    started = time.perf_counter()
    response = client.post("/send-email/thread", json={})
    answered = time.perf_counter() - started
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"
    assert answered < 0.5, "the thread route should not wait for the sink"
    assert sink.mailbox.messages() == []
    [stored] = wait_for_messages(sink, 1)
    assert time.perf_counter() - started >= 1.0
    assert stored.trace_id == response.get_json()["trace_id"]
    assert stored.rcpt_tos == ("student@example.com",)


def test_ten_thread_sends_at_once_all_arrive(client: FlaskClient, sink: Sink, app: Flask) -> None:
    sink.handler.delay_s = 0.3
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(
            pool.map(lambda i: app.test_client().post("/send-email/thread", json={"name": f"S{i}"}), range(10))
        )
    assert [r.status_code for r in responses] == [202] * 10
    stored = wait_for_messages(sink, 10)
    assert {m.trace_id for m in stored} == {r.get_json()["trace_id"] for r in responses}
    app.extensions["sandbox.delivery"].wait_settled(5)
    assert client.get("/api/stats").get_json() == {
        "threads_alive": 0,
        "threads_by_mode": {"thread": 0, "pool": 0, "queue": 0},
        "sent": 10,
        "delivered": 10,
        "failed": 0,
        "unknown": 0,
        "possibly_duplicated": 0,
        "pending": 0,
    }


def test_form_bodies_work_like_json(client: FlaskClient, sink: Sink) -> None:
    response = client.post("/send-email/sync", data={"to": "grace@example.com", "name": "Grace"})
    assert response.status_code == 200
    assert sink.mailbox.messages()[0].rcpt_tos == ("grace@example.com",)


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {"to": "not-an-address"}}, 400, "not a valid email address"),
        ({"json": {"to": "a@b"}}, 400, "not a valid email address"),
        ({"json": {"subject": "Hi\r\nBcc: victim@example.com"}}, 400, "line break"),
        ({"json": {"name": "x\ny"}}, 400, "line break"),
        ({"json": {"to": "a@example.com\nBcc: b@example.com"}}, 400, "line break"),
        ({"json": {"name": "x" * 1001}}, 413, "longer than 1000"),
        ({"json": {"name": 42}}, 400, "must be a string"),
        ({"json": ["to"]}, 400, "must be an object"),
        ({"json": {"cc": "a@example.com"}}, 400, "unknown field"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "could not be read"),
        ({"data": "to=a@example.com", "content_type": "text/plain"}, 400, "JSON"),
        ({"data": "x" * (17 * 1024), "content_type": "application/json"}, 413, ""),
        (
            {"data": "to=a@example.com&to=b@example.com", "content_type": "application/x-www-form-urlencoded"},
            400,
            "repeated",
        ),
    ],
)
def test_bad_input_gets_a_json_error(client: FlaskClient, sink: Sink, kwargs: dict, status: int, words: str) -> None:
    response = client.post("/send-email/sync", **kwargs)
    assert response.status_code == status
    assert words in response.get_json()["error"]
    assert sink.mailbox.messages() == []


def test_unknown_mode_is_404(client: FlaskClient) -> None:
    response = client.post("/send-email/carrier-pigeon", json={})
    assert response.status_code == 404
    assert "unknown mode" in response.get_json()["error"]


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.get("/send-email/sync")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "error" in response.get_json()


@pytest.fixture
def app_without_sink(closed_port: int) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "MAIL_SUPPRESS_SEND": False,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": closed_port,
            "SANDBOX_SMTP_TIMEOUT": 2.0,
        }
    )


def test_sink_down_sync_is_502_and_thread_failure_is_listed(app_without_sink: Flask) -> None:
    client = app_without_sink.test_client()
    sync = client.post("/send-email/sync", json={})
    assert sync.status_code == 502
    assert "refused the connection" in sync.get_json()["error"]
    queued = client.post("/send-email/thread", json={})
    assert queued.status_code == 202
    assert app_without_sink.extensions["sandbox.delivery"].wait_settled(5)
    failures = client.get("/api/failures").get_json()["failures"]
    assert [(f["trace_id"], f["mode"]) for f in failures] == [
        (sync.get_json()["trace_id"], "sync"),
        (queued.get_json()["trace_id"], "thread"),
    ]
    assert all("refused the connection" in f["error"] and f["at"] for f in failures)
    assert client.get("/api/messages").status_code == 404


def test_sink_slower_than_the_timeout_is_504(sink: Sink) -> None:
    sink.handler.delay_s = 2.0
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_SMTP_TIMEOUT": 0.5}, sink=sink)
    started = time.perf_counter()
    response = app.test_client().post("/send-email/sync", json={})
    assert response.status_code == 504
    body = response.get_json()
    assert "did not answer within 0.5 s" in body["error"] and "cannot tell whether it arrived" in body["error"]
    assert body["outcome"] == "unknown", "the whole message went out before the timeout: its fate is unknown"
    assert time.perf_counter() - started < 2.0, "the timeout, not the sink, should end the wait"
    time.sleep(2.0)
    assert sink.mailbox.messages() == [], "the sink saw the client leave before its 250: it kept nothing"


def test_sink_settings_read_and_change(client: FlaskClient, sink: Sink) -> None:
    assert client.get("/api/sink").get_json()["delay_s"] == 0.0
    assert client.put("/api/sink", json={"delay_s": 1.5}).get_json()["delay_s"] == 1.5
    assert sink.handler.delay_s == 1.5
    for bad in ({"delay_s": -1}, {"delay_s": 61}, {"delay_s": "fast"}, {"speed": 1}, [1.5]):
        response = client.put("/api/sink", json=bad)
        assert response.status_code == 400 and response.get_json()["error"]
    assert client.put("/api/sink", data="nope", content_type="application/json").status_code == 400
    assert sink.handler.delay_s == 1.5


def test_messages_ping_and_headers(client: FlaskClient, sink: Sink) -> None:
    first = client.post("/send-email/sync", json={"subject": "one"}).get_json()
    second = client.post("/send-email/sync", json={"subject": "two"}).get_json()
    listed = client.get("/api/messages").get_json()["messages"]
    assert [m["trace_id"] for m in listed] == [second["trace_id"], first["trace_id"]], "newest first"
    assert set(listed[0]) >= {"id", "mail_from", "rcpt_tos", "subject", "received_at", "trace_id"}
    ping = client.get("/api/ping")
    assert ping.get_json()["ok"] is True and isinstance(ping.get_json()["time"], float)
    assert ping.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in ping.headers["Content-Security-Policy"]


def test_page_has_both_buttons(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Send (blocking)" in html and "Send (thread)" in html
    assert "threaded" in html
    for asset in ("js/sandbox-page.js", "js/results.js", "css/sandbox.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_trace_json_and_page(client: FlaskClient, sink: Sink, app: Flask) -> None:
    sent = client.post("/send-email/sync", json={}).get_json()
    document = client.get(f"/api/traces/{sent['trace_id']}").get_json()
    assert document["trace_id"] == sent["trace_id"] and document["mode"] == "sync"
    assert document["complete"] is True
    assert [e["kind"] for e in document["events"]][0] == "request.received"
    assert document["steps"] and document["quiz"]
    page = client.get(f"/traces/{sent['trace_id']}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page.get_data(as_text=True)


def test_unknown_trace_is_404(client: FlaskClient) -> None:
    for url in ("/api/traces/nope", "/traces/nope"):
        response = client.get(url)
        assert response.status_code == 404 and "no trace" in response.get_json()["error"]


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("url", "reason"),
    [("/traces/nope", "no trace 'nope'"), ("/mailbox/999", "no message #999"), ("/lessons/nope", "no lesson 'nope'")],
)
def test_a_person_following_a_dead_link_gets_a_page_with_a_way_back(client: FlaskClient, url: str, reason: str) -> None:
    page = client.get(url, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<h1>Not found</h1>" in text and reason in unescape(text)
    assert 'href="/">Back to the sandbox</a>' in text
    # The API and the send routes answer JSON whatever the client accepts.
    for api_url in ("/api" + url.replace("/mailbox/", "/messages/"), "/send-email/nope"):
        method = "POST" if api_url.startswith("/send-email/") else "GET"
        response = client.open(api_url, method=method, headers={"Accept": BROWSER_ACCEPT})
        assert response.status_code == 404 and "error" in response.get_json()


def test_mailbox_views_and_message_json(client: FlaskClient, sink: Sink) -> None:
    sent = client.post("/send-email/sync", json={"name": "Ada"}).get_json()
    [stored] = sink.mailbox.messages()
    message = client.get(f"/api/messages/{stored.id}").get_json()
    assert message["trace_id"] == sent["trace_id"] and "Ada" in message["text"] and "Ada" in message["html"]
    assert ["X-Sandbox-Trace", sent["trace_id"]] in message["headers"]
    page = client.get(f"/mailbox/{stored.id}").get_data(as_text=True)
    [frame] = re.findall(r"<iframe[^>]*>", page)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame  # links open; no scripts, no same origin
    raw = re.search(r'<pre class="email-raw" tabindex="0">(.*?)</pre>', page, flags=re.DOTALL)
    assert raw and "MIME-Version: 1.0" in raw.group(1) and "boundary=" in raw.group(1)  # the source, as received
    html = client.get(f"/mailbox/{stored.id}/html")
    csp = html.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-popups allow-popups-to-escape-sandbox;") and "allow-scripts" not in csp
    assert '<base target="_blank">' in html.get_data(as_text=True)
    assert client.get("/mailbox/999").status_code == 404
    assert client.get("/api/messages/999").status_code == 404


def test_trace_page_options(client: FlaskClient, sink: Sink) -> None:
    sent = client.post("/send-email/thread", json={}).get_json()
    embedded = client.get(f"/traces/{sent['trace_id']}?embedded=1&kinds=wait_time").get_data(as_text=True)
    assert "Back to the sandbox" not in embedded
    assert embedded.count('class="question"') == 1 and 'data-kind="wait_time"' in embedded
    assert client.get(f"/traces/{sent['trace_id']}?kinds=guess").status_code == 400


def test_no_context_variant_fails_in_the_worker_and_is_reported(client: FlaskClient, app: Flask) -> None:
    queued = client.post("/send-email/thread-no-context", json={})
    assert queued.status_code == 202
    app.extensions["sandbox.delivery"].wait_settled(5)
    [failure] = client.get("/api/failures").get_json()["failures"]
    assert failure["mode"] == "thread-no-context"
    assert failure["error"] == "RuntimeError: Working outside of application context."
    trace = client.get(f"/api/traces/{queued.get_json()['trace_id']}").get_json()
    assert [e["kind"] for e in trace["events"]][-2:] in (
        ["worker.failed", "response.sent"],
        ["response.sent", "worker.failed"],
    )


def test_messages_page_after_an_id_in_order_and_say_what_was_dropped(client: FlaskClient, sink: Sink) -> None:
    for n in range(5):
        store(sink.mailbox, f"m{n}")
    page = client.get("/api/messages?after=2").get_json()
    assert [m["id"] for m in page["messages"]] == [3, 4, 5]
    assert (page["after"], page["next_after"], page["dropped"]) == (2, 5, 0)
    assert client.get("/api/messages?after=5").get_json()["messages"] == []
    assert [m["id"] for m in client.get("/api/messages").get_json()["messages"]] == [5, 4, 3, 2, 1]
    sink.mailbox.clear()  # as if ids 1 to 5 had been pushed out by newer mail
    store(sink.mailbox, "m6")
    page = client.get("/api/messages?after=2").get_json()
    assert [m["id"] for m in page["messages"]] == [6] and page["dropped"] == 3


@pytest.mark.parametrize("after", ["-1", "x", "1.5", "٣", "9" * 40, ""])
def test_a_bad_after_is_a_400(client: FlaskClient, after: str) -> None:
    for path in ("/api/messages", "/api/failures"):
        response = client.get(f"{path}?after={after}")
        assert response.status_code == 400 and "after" in response.get_json()["error"]


def test_failures_page_with_their_outcome(sink: Sink) -> None:
    sink.handler.faults = sink.handler.faults.changed({"reject_probability": 1.0, "reject_code": 550})
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False}, sink=sink)
    client = app.test_client()
    ids = [client.post("/send-email/sync", json={}).get_json()["trace_id"] for _ in range(3)]
    page = client.get("/api/failures?after=1").get_json()
    assert [f["trace_id"] for f in page["failures"]] == ids[1:]
    assert {f["outcome"] for f in page["failures"]} == {"failed"} and page["next_after"] == 3
    assert page["possibly_duplicated"] == []


def test_stats_count_the_pool_threads_while_they_work(sink: Sink) -> None:
    sink.handler.delay_s = 0.5
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False, "SANDBOX_POOL_SIZE": 3}, sink=sink)
    client = app.test_client()
    for _ in range(6):
        assert client.post("/send-email/pool", json={}).status_code == 202
    time.sleep(0.2)
    stats = client.get("/api/stats").get_json()
    assert stats["threads_by_mode"]["pool"] == 3 and stats["threads_alive"] >= 3
    assert stats["pending"] == 6
    assert app.extensions["sandbox.delivery"].wait_settled(10)
    app.extensions["sandbox.pool"].stop(app.extensions["sandbox.delivery"])
