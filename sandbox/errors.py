"""The sandbox's own errors, for callers that need to tell them apart."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting has a value the sandbox cannot use; the message names the setting and what it accepts."""
