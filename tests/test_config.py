from __future__ import annotations

import pytest

from sandbox import create_app
from sandbox.__main__ import main
from sandbox.config import CliParser, Settings, add_settings_arguments, parse_mail_server, settings_from_args
from sandbox.errors import ConfigError
from sandbox.web.security import TRUSTED_HOSTS_KEY


def test_defaults_bind_loopback_with_a_two_second_sink() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.delay_s == 2.0
    assert settings.smtp_timeout_s == 10.0
    assert (settings.server, settings.server_kind) == (None, "threaded")


def test_a_class_runs_on_the_pooled_server_unless_told_otherwise() -> None:
    assert Settings(class_mode=True).server_kind == "pooled"
    assert Settings(class_mode=True, server="threaded").server_kind == "threaded"
    assert Settings.from_env({"SANDBOX_CLASS": "1"}).flask_config()["SANDBOX_SERVER"] == "pooled"
    parser = CliParser()
    defaults = Settings.from_env({})
    add_settings_arguments(parser, defaults)
    settings = settings_from_args(parser, parser.parse_args(["--class", "--http-threads", "8"]), defaults)
    assert (settings.server_kind, settings.http_threads) == ("pooled", 8)


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
    assert Settings.from_env({}).pool_backlog is None, "the pool's backlog is unbounded unless asked"
    assert Settings.from_env({"SANDBOX_POOL_BACKLOG": "8"}).flask_config()["SANDBOX_POOL_BACKLOG"] == 8


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"SANDBOX_DELAY": "soon"}, "SANDBOX_DELAY"),
        ({"SANDBOX_DELAY": "61"}, "between 0 and 60"),
        ({"SANDBOX_SERVER": "forking"}, "threaded, single, pooled"),
        ({"SANDBOX_HTTP_THREADS": "0"}, "http_threads"),
        ({"SANDBOX_PORT": "70000"}, "65535"),
        ({"SANDBOX_SMTP_TIMEOUT": "0"}, "above 0"),
        ({"SANDBOX_MAIL_SERVER": "localhost"}, "HOST:PORT"),
        ({"SANDBOX_TRACE": "maybe"}, "SANDBOX_TRACE"),
        ({"SANDBOX_HOST": "http://0.0.0.0"}, "host"),
        ({"SANDBOX_ALLOW_HOSTS": "class.example:8000"}, "allow_hosts.*class.example:8000"),
        ({"SANDBOX_ALLOW_HOSTS": "ok.example,bad name"}, "allow_hosts.*bad name"),
        ({"SANDBOX_POOL_BACKLOG": "-1"}, "pool_backlog"),
        ({"SANDBOX_POOL_BACKLOG": "many"}, "SANDBOX_POOL_BACKLOG"),
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


def test_allowed_hosts_come_from_the_environment_and_each_flag_adds_one(capsys: pytest.CaptureFixture[str]) -> None:
    defaults = Settings.from_env({"SANDBOX_ALLOW_HOSTS": " Class.Example, [::2] ,, 10.0.0.5"})
    assert defaults.allow_hosts == ("class.example", "::2", "10.0.0.5")
    parser = CliParser(prog="test")
    add_settings_arguments(parser, defaults)
    args = parser.parse_args(["--allow-host", "lab-7", "--allow-host", "lab-8"])
    settings = settings_from_args(parser, args, defaults)
    assert settings.allow_hosts == ("class.example", "::2", "10.0.0.5", "lab-7", "lab-8")
    assert {"class.example", "::2", "lab-8", "localhost"} <= set(settings.flask_config()[TRUSTED_HOSTS_KEY])
    with pytest.raises(SystemExit) as exited:
        settings_from_args(parser, parser.parse_args(["--allow-host", "lab:80"]), defaults)
    assert exited.value.code == 2 and "allow_hosts" in capsys.readouterr().err


def test_the_web_app_command_offers_allow_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--allow-host NAME" in capsys.readouterr().out


def test_one_table_names_every_setting_once() -> None:
    """Each Settings field has one row: its variable, and its flags if it has any; no flag or variable twice."""
    from dataclasses import fields

    from sandbox.config import OPTIONS

    assert sorted(option.field for option in OPTIONS) == sorted(f.name for f in fields(Settings))
    envs = [option.env for option in OPTIONS]
    flags = [flag for option in OPTIONS for flag in option.flags]
    assert len(set(envs)) == len(envs) and all(env.startswith("SANDBOX_") for env in envs)
    assert len(set(flags)) == len(flags)
