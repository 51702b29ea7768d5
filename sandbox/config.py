"""Settings for the sandbox, read in one place: defaults, then ``SANDBOX_*`` variables, then command-line flags.

Every entry point (``python -m sandbox``, ``python -m sandbox.sink``, ``run_demo.py``) builds its parser from
:func:`add_settings_arguments`, so a flag means the same thing everywhere and its default shows the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from sandbox.errors import ConfigError
from sandbox.smtp.faults import Faults
from sandbox.trace.gates import GATE_BOUND_S
from sandbox.web.pooled_server import POOLED_THREADS
from sandbox.web.security import TRUSTED_HOSTS_KEY, host_name, trusted_hosts

SERVER_MODES = ("threaded", "single", "pooled")
LESSON_SERVERS = ("threaded", "single")  # the kinds the lessons compare: a sandbox always runs both
QUEUE_CONSUMERS = ("embedded", "external")
REDIS_URL_PREFIXES = ("redis://", "rediss://", "unix://")
SQLITE_URL_PREFIX = "sqlite:///"
MEMORY_STORE = "memory"  # the trace store's URL for "keep traces in memory only"


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


@dataclass(frozen=True)
class Settings:
    """Everything an instructor may want to change, with the defaults a fresh machine uses."""

    host: str = "127.0.0.1"
    port: int = 0
    allow_hosts: tuple[str, ...] = ()  # more names the web app answers to (see sandbox.security.trusted_hosts)
    smtp_port: int = 0
    delay_s: float = 2.0
    server: str | None = None  # None: pooled in class mode, else threaded (see server_kind)
    http_threads: int = POOLED_THREADS  # the pooled server's threads
    mail_server: tuple[str, int] | None = None
    smtp_timeout_s: float = 10.0
    gate_bound_s: float = GATE_BOUND_S  # how long a gate of a send scheduled by hand holds a thread
    subject_prefix: str = "[Sandbox] "
    sender: str = "Concurrency Sandbox <sandbox@example.com>"
    trace: bool = True
    # The sink's faults: the same names as sandbox.faults.Faults, which holds their defaults and checks them.
    greet_delay_s: float = Faults.greet_delay_s
    jitter_s: float = Faults.jitter_s
    reject_probability: float = Faults.reject_probability
    reject_code: int = Faults.reject_code
    reject_stage: str = Faults.reject_stage
    disconnect_probability: float = Faults.disconnect_probability
    seed: int | None = Faults.seed
    pool_size: int = 4
    pool_backlog: int | None = None  # sends that may wait for a pool thread; None: no limit (ThreadPoolExecutor's way)
    pool_attempts: int = 3
    retry_backoff_s: float = 0.2
    queue_url: str | None = None
    queue_consumer: str = "embedded"
    queue_workers: int = 2
    store_url: str | None = None  # where traces are kept: sqlite:///path, redis://..., or "memory" (not kept)
    class_mode: bool = False  # a join code for the room, and /class for the instructor
    desk_sends_per_minute: int = 120  # a visitor's desk: sends it may start in any minute
    desk_connections: int = 16  # a visitor's desk: SMTP connections it may hold open at the sink at once
    join_code: str | None = None  # class mode's code (default: made at start)
    instructor_token: str | None = None  # the token of /class (default: made at start)

    def __post_init__(self) -> None:
        check_host("host", self.host)
        # Frozen, so set directly: the names checked and canonical, as a tuple even when a flag gave a list.
        object.__setattr__(self, "allow_hosts", tuple(check_host("allow_hosts", name) for name in self.allow_hosts))
        check_port("port", self.port)
        check_port("smtp_port", self.smtp_port)
        self.faults()
        if not 1 <= self.pool_size <= 256:
            raise ConfigError(f"pool_size must be between 1 and 256 threads, not {self.pool_size}")
        if self.pool_backlog is not None and not 0 <= self.pool_backlog <= 100_000:
            raise ConfigError(f"pool_backlog must be between 0 and 100000 waiting sends, not {self.pool_backlog}")
        if not 1 <= self.pool_attempts <= 10:
            raise ConfigError(f"pool_attempts must be between 1 and 10, not {self.pool_attempts}")
        if not 0 <= self.retry_backoff_s <= 60:
            raise ConfigError(f"retry_backoff_s must be between 0 and 60 seconds, not {self.retry_backoff_s:g}")
        if self.queue_consumer not in QUEUE_CONSUMERS:
            raise ConfigError(
                f"queue_consumer must be one of {', '.join(QUEUE_CONSUMERS)}, not {self.queue_consumer!r}"
            )
        check_queue_url(self.queue_url)
        if self.store_url not in (None, MEMORY_STORE):
            check_queue_url(self.store_url)
        if not 1 <= self.queue_workers <= 64:
            raise ConfigError(f"queue_workers must be between 1 and 64, not {self.queue_workers}")
        if not 1 <= self.desk_sends_per_minute <= 100_000:
            raise ConfigError(f"desk_sends_per_minute must be between 1 and 100000, not {self.desk_sends_per_minute}")
        if not 1 <= self.desk_connections <= 1000:
            raise ConfigError(f"desk_connections must be between 1 and 1000, not {self.desk_connections}")
        if not 1 <= self.http_threads <= 512:
            raise ConfigError(f"http_threads must be between 1 and 512, not {self.http_threads}")
        if self.server is not None and self.server not in SERVER_MODES:
            raise ConfigError(f"server must be one of {', '.join(SERVER_MODES)}, not {self.server!r}")
        if not 0.1 <= self.gate_bound_s <= 600:
            raise ConfigError(f"gate_bound_s must be between 0.1 and 600 seconds, not {self.gate_bound_s:g}")
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

    @property
    def server_kind(self) -> str:
        """The server visitors use: the one asked for, else waitress's pool for a class, else Werkzeug's threaded
        server (Flask's own)."""
        return self.server or ("pooled" if self.class_mode else "threaded")

    def faults(self) -> Faults:
        """The sink's fault settings (checked when the settings are made)."""
        return Faults(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Faults)})

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    def flask_config(self) -> dict[str, Any]:
        """The Flask and Flask-Mail keys these settings stand for."""
        config: dict[str, Any] = {
            "SANDBOX_SERVER": self.server_kind,
            "SANDBOX_SMTP_TIMEOUT": self.smtp_timeout_s,
            "SANDBOX_GATE_BOUND": self.gate_bound_s,
            "SANDBOX_SUBJECT_PREFIX": self.subject_prefix,
            "MAIL_DEFAULT_SENDER": self.sender,
            "SANDBOX_TRACE": self.trace,
            TRUSTED_HOSTS_KEY: trusted_hosts(self.host, self.allow_hosts),
            "SANDBOX_POOL_SIZE": self.pool_size,
            "SANDBOX_POOL_BACKLOG": self.pool_backlog,
            "SANDBOX_POOL_ATTEMPTS": self.pool_attempts,
            "SANDBOX_RETRY_BACKOFF": self.retry_backoff_s,
            "SANDBOX_QUEUE_URL": self.queue_url,
            "SANDBOX_QUEUE_CONSUMER": self.queue_consumer,
            "SANDBOX_QUEUE_WORKERS": self.queue_workers,
            "SANDBOX_STORE_URL": self.store_url,
            "SANDBOX_CLASS": self.class_mode,
            "SANDBOX_DESK_SENDS_PER_MINUTE": self.desk_sends_per_minute,
            "SANDBOX_JOIN_CODE": self.join_code,
            "SANDBOX_INSTRUCTOR_TOKEN": self.instructor_token,
        }
        if self.mail_server is not None:
            config["MAIL_SERVER"], config["MAIL_PORT"] = self.mail_server
        return config


@dataclass(frozen=True)
class Option:
    """One setting as every entry point offers it: its ``SANDBOX_*`` variable, its flags (none: the variable only),
    and where the flag appears: ``web`` (the web app's command lines), ``sink`` (also ``python -m sandbox.sink``),
    ``faults`` (the sink's faults, in their own group). ``{default}`` in the help shows the default in force."""

    field: str
    env: str
    flags: tuple[str, ...] = ()
    help: str = ""
    metavar: str | None = None
    where: str = "web"
    choices: tuple[str, ...] | None = None


OPTIONS = (
    Option("host", "SANDBOX_HOST", ("--host",), "address the web app binds (default {default})"),
    Option("port", "SANDBOX_PORT", ("--port",), "web app port; 0 picks a free one"),
    Option(
        "allow_hosts",
        "SANDBOX_ALLOW_HOSTS",
        ("--allow-host",),
        "also answer to this host name or address, e.g. the name students type to reach an exposed sandbox; repeat "
        "for more, adds to SANDBOX_ALLOW_HOSTS (loopback names, and when exposed this machine's own names and "
        "addresses, need no flag)",
        "NAME",
    ),
    Option(
        "smtp_port", "SANDBOX_SMTP_PORT", ("--smtp-port",), "port of the SMTP sink; 0 picks a free one", "PORT", "sink"
    ),
    Option(
        "delay_s",
        "SANDBOX_DELAY",
        ("--delay",),
        "how long the sink waits before it accepts each email (default {default:g})",
        "SECONDS",
        "sink",
    ),
    Option(
        "greet_delay_s",
        "SANDBOX_GREET_DELAY",
        ("--greet-delay",),
        "how long the sink waits before its greeting",
        "SECONDS",
        "faults",
    ),
    Option(
        "jitter_s",
        "SANDBOX_JITTER",
        ("--jitter",),
        "up to this much added at random to each delay",
        "SECONDS",
        "faults",
    ),
    Option(
        "reject_probability",
        "SANDBOX_REJECT_PROBABILITY",
        ("--reject-probability",),
        "chance (0 to 1) that the sink rejects a message",
        "P",
        "faults",
    ),
    Option(
        "reject_code",
        "SANDBOX_REJECT_CODE",
        ("--reject-code",),
        "the SMTP code of a rejection: 4xx (try again) or 5xx (final)",
        "CODE",
        "faults",
    ),
    Option(
        "reject_stage",
        "SANDBOX_REJECT_STAGE",
        ("--reject-stage",),
        "where the sink rejects: MAIL, RCPT or DATA",
        "STAGE",
        "faults",
    ),
    Option(
        "disconnect_probability",
        "SANDBOX_DISCONNECT_PROBABILITY",
        ("--disconnect-probability",),
        "chance (0 to 1) the sink hangs up at DATA",
        "P",
        "faults",
    ),
    Option("seed", "SANDBOX_SEED", ("--seed",), "seed for the random faults, so a run can be repeated", "N", "faults"),
    Option(
        "server",
        "SANDBOX_SERVER",
        ("--server",),
        "threaded: Werkzeug, a thread for each request; single: one request at a time; pooled: waitress, a pool of "
        "--http-threads threads (default: pooled with --class, else threaded)",
        choices=SERVER_MODES,
    ),
    Option(
        "http_threads",
        "SANDBOX_HTTP_THREADS",
        ("--http-threads",),
        "threads of the pooled server: more requests than that wait in line (default {default})",
        "N",
    ),
    Option(
        "mail_server",
        "SANDBOX_MAIL_SERVER",
        ("--mail-server",),
        "send to this SMTP server instead of the embedded sink",
        "HOST:PORT",
    ),
    Option(
        "pool_size",
        "SANDBOX_POOL_SIZE",
        ("--pool-size",),
        "worker threads of the pool strategy (default {default})",
        "N",
    ),
    Option(
        "pool_backlog",
        "SANDBOX_POOL_BACKLOG",
        ("--pool-backlog",),
        "sends that may wait for a pool thread; past that, the pool route answers 503 with Retry-After "
        "(default: no limit)",
        "N",
    ),
    Option(
        "queue_url",
        "SANDBOX_QUEUE_URL",
        ("--queue-url",),
        "the queue strategy's store: redis://host:port/0, or sqlite:///path (default instance/queue.db)",
        "URL",
    ),
    Option(
        "store_url",
        "SANDBOX_STORE_URL",
        ("--store-url",),
        "where traces are kept across restarts and processes: sqlite:///path, redis://host:port/db, or memory "
        "(default: the queue's Redis if it has one, else instance/traces.db)",
        "URL",
    ),
    Option(
        "queue_consumer",
        "SANDBOX_QUEUE_CONSUMER",
        ("--queue-consumer",),
        "embedded: worker threads in this process; external: run huey_consumer sandbox.queue_worker.huey",
        choices=QUEUE_CONSUMERS,
    ),
    Option(
        "smtp_timeout_s",
        "SANDBOX_SMTP_TIMEOUT",
        ("--smtp-timeout",),
        "give up on an SMTP conversation after this long",
        "SECONDS",
    ),
    Option(
        "gate_bound_s",
        "SANDBOX_GATE_BOUND",
        ("--gate-bound",),
        "a send scheduled by hand (?schedule=manual): how long a gate holds a thread before it lets it go by itself "
        "(default {default:g})",
        "SECONDS",
    ),
    Option(
        "class_mode",
        "SANDBOX_CLASS",
        ("--class",),
        "for a room: students join with a code printed at start, and /class shows the instructor the class",
    ),
    Option(
        "desk_sends_per_minute",
        "SANDBOX_DESK_SENDS_PER_MINUTE",
        ("--desk-sends-per-minute",),
        "sends one visitor's desk may start in a minute; past that its sends answer 429 (default {default})",
        "N",
    ),
    Option(
        "desk_connections",
        "SANDBOX_DESK_CONNECTIONS",
        ("--desk-connections",),
        "SMTP connections one visitor's desk may hold open at the sink; past that the sink answers 421 (default "
        "{default})",
        "N",
    ),
    Option("join_code", "SANDBOX_JOIN_CODE"),
    Option("instructor_token", "SANDBOX_INSTRUCTOR_TOKEN"),
    Option("subject_prefix", "SANDBOX_SUBJECT_PREFIX"),
    Option("sender", "SANDBOX_SENDER"),
    Option("trace", "SANDBOX_TRACE"),
    Option("pool_attempts", "SANDBOX_POOL_ATTEMPTS"),
    Option("retry_backoff_s", "SANDBOX_RETRY_BACKOFF"),
    Option("queue_workers", "SANDBOX_QUEUE_WORKERS"),
)
ENV_NAMES = {option.field: option.env for option in OPTIONS}


def check_host(name: str, host: str) -> str:
    """``host`` as the trusted-host list holds it, or a ConfigError naming the setting."""
    try:
        return host_name(host)
    except ValueError as err:
        raise ConfigError(f"{name}: {err}") from err


def check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 (pick a free one) and 65535, not {port}")


def check_queue_url(url: str | None) -> None:
    """None (SQLite in the instance folder), ``sqlite:///path`` or a Redis URL."""
    if url and not url.startswith((*REDIS_URL_PREFIXES, SQLITE_URL_PREFIX)):
        raise ConfigError(f"queue URL must start with redis:// or sqlite:///, not {url!r}")


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
    """A variable's text as the field's type, read from the field's annotation."""
    kind = FIELD_TYPES[field]
    try:
        if field == "mail_server":
            return parse_mail_server(text) if text.strip() else None
        if field == "allow_hosts":
            return tuple(name.strip() for name in text.split(",") if name.strip())
        if kind == "bool":
            return parse_switch(text)
        if kind == "str | None":
            return text.strip() or None
        if kind.startswith("int"):
            return None if kind.endswith("None") and not text.strip() else int(text)
        if kind == "float":
            return float(text)
    except ValueError as err:
        raise ConfigError(f"{source}={text!r}: {err}") from err
    return text


FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def add_settings_arguments(parser: argparse.ArgumentParser, defaults: Settings, *, sink_only: bool = False) -> None:
    """Add the flags of :data:`OPTIONS` (only the sink's with ``sink_only``); their defaults come from ``defaults``."""
    faults = parser.add_argument_group("sink faults")
    for option in OPTIONS:
        if not option.flags or (sink_only and option.where == "web"):
            continue
        flags = option.flags
        if sink_only and option.field == "smtp_port":
            flags = ("--port", *flags)  # run alone, the sink's port is simply --port (as DESIGN.md gives it)
        default = getattr(defaults, option.field)
        group = faults if option.where == "faults" else parser
        kwargs: dict[str, Any] = {"dest": option.field, "default": default, "help": option.help.format(default=default)}
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.choices:
            kwargs["choices"] = option.choices
        elif FIELD_TYPES[option.field] == "bool":
            kwargs["action"] = "store_true"
        elif option.field == "allow_hosts":
            kwargs.update(action="append", default=list(default))
        else:
            kwargs["type"] = _flag_type(option.field)
        group.add_argument(*flags, **kwargs)


def _flag_type(field: str) -> Callable[[str], Any]:
    """How a flag's text becomes the field's value, from the field's annotation."""
    if field == "mail_server":
        return _mail_server_argument
    if field == "reject_stage":
        return str.upper
    kind = FIELD_TYPES[field]
    return int if kind.startswith("int") else float if kind == "float" else str


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
