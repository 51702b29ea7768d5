from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from sandbox.config import Settings
from sandbox.security import is_loopback, trusted_hosts, warn_if_exposed
from sandbox.sink import Sink

PAGES = [
    "/",
    "/lessons",
    "/lessons/application-context",
    "/mailbox",
    "/api/ping",
    "/api/sink",
    "/api/failures",
    "/api/stats",
    "/api/messages",
    "/nope",
]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ],
)
def test_changing_requests_from_other_sites_are_refused(client: FlaskClient, sink: Sink, headers: dict) -> None:
    for method, url in (("POST", "/send-email/sync"), ("POST", "/send-email/thread"), ("PUT", "/api/sink")):
        response = client.open(url, method=method, json={"delay_s": 3}, headers=headers)
        assert response.status_code == 403 and "cross-site" in response.get_json()["error"]
    assert sink.mailbox.messages() == [] and sink.handler.delay_s == 0.0


def test_same_origin_and_plain_clients_may_send(client: FlaskClient) -> None:
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/send-email/sync", json={}, headers=same).status_code == 200
    assert client.post("/send-email/sync", json={}).status_code == 200
    assert client.get("/api/ping", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_other_host_names_are_refused(client: FlaskClient) -> None:
    response = client.get("/api/ping", headers={"Host": "rebound.evil.example"})
    assert response.status_code == 400 and "error" in response.get_json()
    assert client.get("/api/ping", headers={"Host": "127.0.0.1:5000"}).status_code == 200


@pytest.mark.parametrize("url", PAGES)
def test_every_answer_carries_a_policy(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code < 500
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src" in response.headers["Content-Security-Policy"]


def test_loopback_by_default_and_a_loud_warning_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    assert Settings.from_env({}).host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    assert trusted_hosts("0.0.0.0") is None and "localhost" in trusted_hosts("127.0.0.1")
    warn_if_exposed("127.0.0.1", "web sandbox")
    assert capsys.readouterr().err == ""
    warn_if_exposed("0.0.0.0", "web sandbox")
    assert "WARNING" in capsys.readouterr().err
