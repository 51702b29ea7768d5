"""The app's own settings that may change while it runs, for a lesson that shows them: how long the app waits for
the mail server (``smtp_timeout_s``) and how many sends may wait for a pool thread (``pool_backlog``).

The sink's settings say what the mail server does; these say what the sending side does about it. Both are read
at the moment they matter (the timeout when a connection opens, the backlog when a send reaches the pool), so a
change applies to the next send, never to one already under way. Values are checked exactly as at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from sandbox.config import Settings
from sandbox.errors import ConfigError

CONFIG_KEYS = {"smtp_timeout_s": "SANDBOX_SMTP_TIMEOUT", "pool_backlog": "SANDBOX_POOL_BACKLOG"}


def app_settings(app: Flask) -> dict[str, Any]:
    """The settings as they are now, with the pool's size for context (it is fixed while the app runs)."""
    pool = app.extensions["sandbox.pool"]
    return {
        "smtp_timeout_s": float(app.config["SANDBOX_SMTP_TIMEOUT"]),
        "pool_backlog": pool.backlog,
        "pool_size": pool.size,
    }


def checked_app_settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` typed and checked, or a ConfigError naming the first problem; nothing is applied."""
    unknown = sorted(str(key) for key in set(changes) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"unknown app setting(s): {', '.join(unknown)}; changeable: {', '.join(CONFIG_KEYS)}")
    typed: dict[str, Any] = {}
    if "smtp_timeout_s" in changes:
        value = changes["smtp_timeout_s"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError("smtp_timeout_s must be a number of seconds")
        typed["smtp_timeout_s"] = float(value)
    if "pool_backlog" in changes:
        value = changes["pool_backlog"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError("pool_backlog must be a whole number of waiting sends, or null for no limit")
        typed["pool_backlog"] = value
    Settings().replace(**typed)  # the start-up checks: ranges and their messages
    return typed


def change_app_settings(app: Flask, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply checked ``changes`` (all or none) and return the settings as they are afterwards."""
    typed = checked_app_settings(changes)
    if "smtp_timeout_s" in typed:
        app.config["SANDBOX_SMTP_TIMEOUT"] = typed["smtp_timeout_s"]
    if "pool_backlog" in typed:
        app.config["SANDBOX_POOL_BACKLOG"] = typed["pool_backlog"]
        app.extensions["sandbox.pool"].backlog = typed["pool_backlog"]
    return app_settings(app)


def describe_app_settings(settings: Mapping[str, Any]) -> str:
    """What a lesson step changes on the app's side, in words for the panel."""
    parts = []
    if "smtp_timeout_s" in settings:
        parts.append(f"the app gives up on the mail server after {settings['smtp_timeout_s']:g} s")
    if "pool_backlog" in settings:
        backlog = settings["pool_backlog"]
        parts.append(
            "any number of sends may wait for a pool thread"
            if backlog is None
            else f"at most {backlog} send{'' if backlog == 1 else 's'} may wait for a pool thread"
        )
    return "; ".join(parts)
