"""How each send mode is named to people: on buttons, in page titles and in terminal tables."""

from __future__ import annotations

BUTTON_LABELS = {
    "sync": "Send (blocking)",
    "thread": "Send (thread)",
    "thread-no-context": "Send (thread, no app context)",
}
TITLES = {
    "sync": "Blocking send (sync)",
    "thread": "Threaded send (thread)",
    "thread-no-context": "Threaded send without an app context (broken on purpose)",
}
SHORT_LABELS = {"sync": "sync (blocking)"}


def title(mode: str) -> str:
    return TITLES.get(mode, f"{mode} send")


def short_label(mode: str) -> str:
    return SHORT_LABELS.get(mode, mode)
