from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.client import call
from sandbox.config import CliParser, Settings, add_settings_arguments, settings_from_args
from sandbox.smtp.sink import Sink
from sandbox.web.security import LOOPBACK_NAMES, is_loopback, trusted_hosts, warn_if_exposed
from sandbox.web.serving import AppServer

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
        {"Referer": "https://evil.example/page"},
        {"Referer": "http://localhost:8080/"},  # another port is another site
        {"Referer": "https://localhost/"},  # and so is another scheme
        {"Referer": "not a url"},
        {"Origin": "https://evil.example", "Referer": "http://localhost/"},  # Origin is the browser's word
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
    assert client.post("/send-email/sync", json={}, headers={"Referer": "http://localhost/lessons"}).status_code == 200
    assert client.post("/send-email/sync", json={}, headers={"Referer": "HTTP://LOCALHOST:80/"}).status_code == 200
    assert client.get("/api/ping", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_the_sandboxs_other_server_may_send_and_read_the_answer_and_no_one_else(app, sink: Sink) -> None:
    """A lesson page on one server sends through the other: same scheme and host name, the other server's port."""
    app.config["SANDBOX_SERVER_PORTS"] = {"threaded": 80, "single": 8081}
    client = app.test_client()
    sibling = {"Origin": "http://localhost:8081", "Sec-Fetch-Site": "same-site"}
    preflight = client.options("/send-email/sync", headers={**sibling, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == sibling["Origin"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    sent = client.post("/send-email/sync", json={}, headers=sibling)
    assert sent.status_code == 200 and sent.headers["Access-Control-Allow-Origin"] == sibling["Origin"]
    assert sent.headers["Access-Control-Allow-Credentials"] == "true", "the desk cookie may ride along"
    assert "Origin" in sent.headers["Vary"]
    assert len(sink.mailbox.messages()) == 1
    for origin in ("http://localhost:8082", "https://localhost:8081", "http://127.0.0.1:8081", "http://evil:8081"):
        refused = client.post("/send-email/sync", json={}, headers={"Origin": origin, "Sec-Fetch-Site": "same-site"})
        assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers, origin
        preflight = client.options("/send-email/sync", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in preflight.headers, origin
    same = client.post("/send-email/sync", json={}, headers={"Origin": "http://localhost"})
    assert same.status_code == 200 and "Access-Control-Allow-Origin" not in same.headers
    assert len(sink.mailbox.messages()) == 2


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
    assert trusted_hosts("127.0.0.1") == list(LOOPBACK_NAMES) and trusted_hosts("[::1]") == list(LOOPBACK_NAMES)
    warn_if_exposed("127.0.0.1", "web sandbox")
    assert capsys.readouterr().err == ""
    warn_if_exposed("0.0.0.0", "web sandbox")
    assert "WARNING" in capsys.readouterr().err


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2", "+2"])
def test_a_body_length_that_is_no_plain_number_is_refused(client: FlaskClient, sink: Sink, length: str) -> None:
    """Werkzeug would read these as an empty body, and the send would go out with the default fields."""
    response = client.post(
        "/send-email/sync", data=b"{}", content_type="application/json", environ_overrides={"CONTENT_LENGTH": length}
    )
    assert response.status_code == 400 and "Content-Length" in response.get_json()["error"]
    assert sink.mailbox.messages() == [] and client.get("/api/stats").get_json()["sent"] == 0


def get_ping(address: tuple[str, int], host_header: str) -> tuple[int, dict]:
    """GET /api/ping from ``address`` with exactly this ``Host`` header."""
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.putrequest("GET", "/api/ping", skip_host=True)
        connection.putheader("Host", host_header)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def settings_from_cli(*argv: str) -> Settings:
    parser = CliParser(prog="test")
    defaults = Settings.from_env({})
    add_settings_arguments(parser, defaults)
    return settings_from_args(parser, parser.parse_args(argv), defaults)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="this machine has no IPv6 loopback (::1) to bind")
def test_a_sandbox_on_ipv6_loopback_answers_to_its_own_address() -> None:
    settings = settings_from_cli("--host", "::1")
    with AppServer(create_app(settings.flask_config()), "::1", 0) as server:
        port = urlsplit(server.url).port
        assert get_ping(("::1", port), f"[::1]:{port}")[0] == 200
        assert get_ping(("::1", port), f"[0:0::1]:{port}")[0] == 200
        assert get_ping(("::1", port), "[::2]")[0] == 400


def test_an_exposed_sandbox_still_answers_only_to_its_own_names() -> None:
    settings = settings_from_cli("--host", "0.0.0.0", "--allow-host", "Class.Example")
    with AppServer(create_app(settings.flask_config()), "0.0.0.0", 0) as server:
        assert call(f"{server.url}api/ping").status == 200  # the URL printed for the instructor works
        port = urlsplit(server.url).port
        address = ("127.0.0.1", port)
        status, body = get_ping(address, "evil.com")
        assert status == 400
        assert "--allow-host" in body["error"] and "127.0.0.1, localhost, [::1]" in body["error"]
        for name in (f"127.0.0.1:{port}", "localhost", "class.example:8080", socket.gethostname()):
            assert get_ping(address, name)[0] == 200, name


def test_an_exposed_sandbox_trusts_the_machine_and_the_address_it_is_bound_to() -> None:
    everywhere = trusted_hosts("0.0.0.0", ["class.example"])
    assert everywhere[: len(LOOPBACK_NAMES) + 1] == [*LOOPBACK_NAMES, "class.example"]
    assert socket.gethostname().lower() in everywhere and "0.0.0.0" not in everywhere
    assert "::" not in trusted_hosts("::")
    assert "192.0.2.7" in trusted_hosts("192.0.2.7")
