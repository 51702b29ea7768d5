"""Settings for the sandbox, read in one place: defaults, then ``SANDBOX_*`` variables, then command-line flags.

Every entry point (``python -m sandbox``, ``python -m sandbox.sink``, ``run_demo.py``) builds its parser from
:func:`add_settings_arguments`, so a flag means the same thing everywhere and its default shows the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

SERVER_MODES = ("threaded", "single")
MAX_DELAY_S = 60.0


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class ConfigError(ValueError):
    """A setting has a value the sandbox cannot use; the message names the setting and what it accepts."""


@dataclass(frozen=True)
class Settings:
    """Everything an instructor may want to change, with the defaults a fresh machine uses."""

    host: str = "127.0.0.1"
    port: int = 0
    smtp_port: int = 0
    delay_s: float = 2.0
    server: str = "threaded"
    mail_server: tuple[str, int] | None = None
    smtp_timeout_s: float = 10.0
    subject_prefix: str = "[Sandbox] "
    sender: str = "Concurrency Sandbox <sandbox@example.com>"
    trace: bool = True

    def __post_init__(self) -> None:
        check_port("port", self.port)
        check_port("smtp_port", self.smtp_port)
        check_delay(self.delay_s)
        if self.server not in SERVER_MODES:
            raise ConfigError(f"server must be one of {', '.join(SERVER_MODES)}, not {self.server!r}")
        if not 0 < self.smtp_timeout_s <= 600:
            raise ConfigError(f"smtp_timeout_s must be above 0 and at most 600 seconds, not {self.smtp_timeout_s}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by any ``SANDBOX_*`` variable that is set."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = ENV_NAMES[field.name]
            if name in environ:
                values[field.name] = _parse(field.name, environ[name], name)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def flask_config(self) -> dict[str, Any]:
        """The Flask and Flask-Mail keys these settings stand for."""
        config: dict[str, Any] = {
            "SANDBOX_SERVER": self.server,
            "SANDBOX_SMTP_TIMEOUT": self.smtp_timeout_s,
            "SANDBOX_SUBJECT_PREFIX": self.subject_prefix,
            "MAIL_DEFAULT_SENDER": self.sender,
            "SANDBOX_TRACE": self.trace,
        }
        if self.mail_server is not None:
            config["MAIL_SERVER"], config["MAIL_PORT"] = self.mail_server
        return config


ENV_NAMES = {
    "host": "SANDBOX_HOST",
    "port": "SANDBOX_PORT",
    "smtp_port": "SANDBOX_SMTP_PORT",
    "delay_s": "SANDBOX_DELAY",
    "server": "SANDBOX_SERVER",
    "mail_server": "SANDBOX_MAIL_SERVER",
    "smtp_timeout_s": "SANDBOX_SMTP_TIMEOUT",
    "subject_prefix": "SANDBOX_SUBJECT_PREFIX",
    "sender": "SANDBOX_SENDER",
    "trace": "SANDBOX_TRACE",
}


def check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 (pick a free one) and 65535, not {port}")


def check_delay(delay_s: float) -> None:
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise ConfigError(f"delay must be between 0 and {MAX_DELAY_S:g} seconds, not {delay_s:g}")


def parse_mail_server(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:25`` for IPv6) to a (host, port) pair."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"mail server must look like HOST:PORT (e.g. 127.0.0.1:1025), not {text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"mail server port must be between 1 and 65535, not {port}")
    return host, port


def parse_switch(text: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``, any case."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("use 1/true/yes/on or 0/false/no/off")


def _parse(field: str, text: str, source: str) -> Any:
    try:
        if field in ("port", "smtp_port"):
            return int(text)
        if field in ("delay_s", "smtp_timeout_s"):
            return float(text)
        if field == "mail_server":
            return parse_mail_server(text) if text.strip() else None
        if field == "trace":
            return parse_switch(text)
    except ValueError as err:
        raise ConfigError(f"{source}={text!r}: {err}") from err
    return text


def add_settings_arguments(parser: argparse.ArgumentParser, defaults: Settings, *, sink_only: bool = False) -> None:
    """Add the flags that map to :class:`Settings` fields; their defaults come from ``defaults``."""
    if not sink_only:
        parser.add_argument(
            "--host", default=defaults.host, help=f"address the web app binds (default {defaults.host})"
        )
        parser.add_argument("--port", type=int, default=defaults.port, help="web app port; 0 picks a free one")
    parser.add_argument(
        "--smtp-port",
        dest="smtp_port",
        type=int,
        default=defaults.smtp_port,
        help="port of the embedded SMTP sink; 0 picks a free one",
    )
    parser.add_argument(
        "--delay",
        dest="delay_s",
        type=float,
        default=defaults.delay_s,
        metavar="SECONDS",
        help=f"how long the sink waits before it accepts each email (default {defaults.delay_s:g})",
    )
    if sink_only:
        return
    parser.add_argument(
        "--server",
        choices=SERVER_MODES,
        default=defaults.server,
        help="threaded: Werkzeug serves requests in parallel; single: one request at a time",
    )
    parser.add_argument(
        "--mail-server",
        dest="mail_server",
        metavar="HOST:PORT",
        default=defaults.mail_server,
        type=_mail_server_argument,
        help="send to this SMTP server instead of the embedded sink",
    )
    parser.add_argument(
        "--smtp-timeout",
        dest="smtp_timeout_s",
        type=float,
        default=defaults.smtp_timeout_s,
        metavar="SECONDS",
        help="give up on an SMTP conversation after this long",
    )


def settings_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, defaults: Settings) -> Settings:
    """The settings the parsed flags ask for; a bad value ends the program through ``parser.error`` (exit 2)."""
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    try:
        return defaults.replace(**changes)
    except ConfigError as err:
        parser.error(str(err))


def load_defaults(parser: argparse.ArgumentParser) -> Settings:
    """Settings from the environment, or a clear message and exit 2 when a variable is malformed."""
    try:
        return Settings.from_env()
    except ConfigError as err:
        parser.error(str(err))


def _mail_server_argument(text: str) -> tuple[str, int]:
    try:
        return parse_mail_server(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
