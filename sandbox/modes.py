"""How each send mode is named to people: on buttons, in page titles and in terminal tables."""

from __future__ import annotations

BUTTON_LABELS = {
    "sync": "Send (blocking)",
    "thread": "Send (thread)",
    "pool": "Send (pool)",
    "thread-no-context": "Send (thread, no app context)",
    "thread-proxy": "Send (thread, proxy instead of app)",
}
TITLES = {
    "sync": "Blocking send (sync)",
    "thread": "Threaded send (thread)",
    "pool": "Send by a bounded pool with retries (pool)",
    "thread-no-context": "Threaded send without an app context (broken on purpose)",
    "thread-proxy": "Threaded send given the current_app proxy (broken on purpose)",
}
SHORT_LABELS = {"sync": "sync (blocking)"}


def title(mode: str) -> str:
    return TITLES.get(mode, f"{mode} send")


def short_label(mode: str) -> str:
    return SHORT_LABELS.get(mode, mode)
