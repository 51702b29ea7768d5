from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from sandbox.lessons import LESSONS_DIR, LessonError, load_lessons, parse_lesson
from sandbox.quiz import QUIZ_KINDS
from sandbox.strategies import SEND_MODES

MODES = frozenset(SEND_MODES)


def test_every_lesson_loads_with_a_runnable_scenario() -> None:
    lessons = load_lessons(LESSONS_DIR, MODES)
    assert [lesson.order for lesson in lessons] == [1, 2, 3, 4, 5, 6]
    assert len({lesson.slug for lesson in lessons}) == 6
    for lesson in lessons:
        assert set(lesson.scenario["modes"]) <= MODES and lesson.quiz and set(lesson.quiz) <= set(QUIZ_KINDS)
        assert "<h1>" in lesson.html and "<script" not in lesson.html
    assert (
        "thread-no-context"
        in next(lesson for lesson in lessons if lesson.slug == "application-context").scenario["modes"]
    )


@pytest.mark.parametrize(
    ("front", "words"),
    [
        ("title: x\nsummary: y\norder: 1\nquiz: [wait_time]\n", "lacks scenario"),
        ("title: x\nsummary: y\norder: 1\nquiz: [wait_time]\nscenario: {modes: [fax], delay_s: 1}\n", "scenario.modes"),
        ("title: x\nsummary: y\norder: 1\nquiz: [wait_time]\nscenario: {modes: [sync], delay_s: 99}\n", "delay_s"),
        ("title: x\nsummary: y\norder: 1\nquiz: [guess]\nscenario: {modes: [sync], delay_s: 1}\n", "quiz kinds"),
    ],
)
def test_malformed_lessons_fail_loudly(tmp_path: Path, front: str, words: str) -> None:
    path = tmp_path / "01-bad.md"
    path.write_text(f"---\n{front}---\n# Text\n")
    with pytest.raises(LessonError, match=words):
        parse_lesson(path, MODES)


def test_lesson_pages(client: FlaskClient) -> None:
    listing = client.get("/lessons").get_data(as_text=True)
    assert listing.count('href="/lessons/') == 6
    page = client.get("/lessons/application-context")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Run it" in html and "Working outside of application context" in html
    assert 'data-scenario="{&#34;' in html
    assert client.get("/lessons/nope").status_code == 404
