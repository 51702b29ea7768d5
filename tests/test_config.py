from __future__ import annotations

import pytest

from sandbox import create_app
from sandbox.config import Settings, parse_mail_server
from sandbox.errors import ConfigError


def test_defaults_bind_loopback_with_a_two_second_sink() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.delay_s == 2.0
    assert settings.smtp_timeout_s == 10.0
    assert settings.server == "threaded"


def test_environment_overrides_defaults() -> None:
    settings = Settings.from_env(
        {
            "SANDBOX_DELAY": "0.5",
            "SANDBOX_SERVER": "single",
            "SANDBOX_SMTP_TIMEOUT": "3",
            "SANDBOX_MAIL_SERVER": "127.0.0.1:2525",
            "SANDBOX_PORT": "8000",
        }
    )
    assert (settings.delay_s, settings.server, settings.smtp_timeout_s) == (0.5, "single", 3.0)
    assert settings.mail_server == ("127.0.0.1", 2525)
    assert settings.port == 8000
    config = settings.flask_config()
    assert config["MAIL_SERVER"] == "127.0.0.1" and config["MAIL_PORT"] == 2525
    assert config["SANDBOX_SMTP_TIMEOUT"] == 3.0
    assert Settings.from_env({"SANDBOX_TRACE": "off"}).flask_config()["SANDBOX_TRACE"] is False


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"SANDBOX_DELAY": "soon"}, "SANDBOX_DELAY"),
        ({"SANDBOX_DELAY": "61"}, "between 0 and 60"),
        ({"SANDBOX_SERVER": "forking"}, "threaded, single"),
        ({"SANDBOX_PORT": "70000"}, "65535"),
        ({"SANDBOX_SMTP_TIMEOUT": "0"}, "above 0"),
        ({"SANDBOX_MAIL_SERVER": "localhost"}, "HOST:PORT"),
        ({"SANDBOX_TRACE": "maybe"}, "SANDBOX_TRACE"),
    ],
)
def test_bad_environment_values_say_what_is_wrong(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(environ)


def test_mail_server_forms() -> None:
    assert parse_mail_server("mail.example.com:25") == ("mail.example.com", 25)
    assert parse_mail_server("[::1]:1025") == ("::1", 1025)
    for bad in ("", ":25", "host:", "host:0", "host:x"):
        with pytest.raises(ConfigError):
            parse_mail_server(bad)


def test_create_app_reads_the_mail_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_MAIL_SERVER", "127.0.0.1:2525")
    app = create_app()
    assert (app.config["MAIL_SERVER"], app.config["MAIL_PORT"]) == ("127.0.0.1", 2525)
