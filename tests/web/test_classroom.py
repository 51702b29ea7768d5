"""Class mode: students join with the code, the instructor's view needs its token, and its counts of
misconceptions are those of the answers the students gave, judged against each student's own traces."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import create_app
from sandbox.smtp.sink import Sink
from sandbox.web.classroom import new_join_code, safe_next, same_code

CODE, TOKEN = "K7M-Q2P", "instructor-secret"
PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def class_config(store: Path) -> dict:
    """Class mode with a store of its own (the store keeps a class's desks under its join code)."""
    return {
        "TESTING": True,
        "MAIL_SUPPRESS_SEND": False,
        "SANDBOX_CLASS": True,
        "SANDBOX_JOIN_CODE": CODE,
        "SANDBOX_INSTRUCTOR_TOKEN": TOKEN,
        "SANDBOX_STORE_URL": f"sqlite:///{store}",
    }


@pytest.fixture
def classroom(sink: Sink, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(class_config(tmp_path / "traces.db"), sink=sink)
    yield app
    assert app.extensions["sandbox.delivery"].wait_settled(10)


def joined(app: Flask, name: str) -> FlaskClient:
    student = app.test_client()
    answer = student.post("/join", data={"code": "k7m q2p", "name": name, "next": "/"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    return student


def instructor(app: Flask) -> FlaskClient:
    teacher = app.test_client()
    assert teacher.get(f"/class?token={TOKEN}").status_code == 303  # remembered, and the token leaves the address
    return teacher


def test_a_student_must_join_with_the_code_and_a_name(classroom: Flask) -> None:
    visitor = classroom.test_client()
    page = visitor.get("/lessons", headers=PAGE)
    assert page.status_code == 302 and page.headers["Location"] == "/join?next=/lessons"
    refused = visitor.post("/send-email/sync", json={})
    assert refused.status_code == 401 and "join the class first" in refused.get_json()["error"]
    assert visitor.get("/api/sink").status_code == 401
    assert visitor.get("/api/ping").status_code == 200
    form = visitor.get("/join?next=/lessons").get_data(as_text=True)
    assert 'name="code"' in form and 'value="/lessons"' in form
    wrong = visitor.post("/join", data={"code": "AAA-AAA", "name": "Ada"})
    assert wrong.status_code == 403 and "not the code" in wrong.get_data(as_text=True)
    nameless = visitor.post("/join", data={"code": CODE, "name": "   "})
    assert nameless.status_code == 400 and "Type a name" in nameless.get_data(as_text=True)
    assert visitor.get("/api/desk").status_code == 401, "a failed join seats nobody"
    welcome = visitor.post("/join", data={"code": CODE.lower(), "name": "Ada  Lovelace", "next": "//evil.example/"})
    assert welcome.status_code == 303 and welcome.headers["Location"] == "/"
    assert visitor.get("/api/desk").get_json()["own"] is True
    assert visitor.post("/send-email/sync", json={}).status_code == 200
    [desk] = classroom.extensions["sandbox.desks"].all()
    assert desk.name == "Ada Lovelace" and dict(desk.sends) == {"sync": 1}


def test_the_instructors_view_needs_the_token(classroom: Flask) -> None:
    stranger = classroom.test_client()
    shut = stranger.get("/class.json")
    assert shut.status_code == 401 and shut.headers["WWW-Authenticate"].startswith("Bearer")
    page = stranger.get("/class", headers=PAGE)
    assert page.status_code == 401 and "instructor" in page.get_data(as_text=True)
    assert stranger.get("/class.json?token=guess").status_code == 403
    assert stranger.get("/class.csv", headers={"Authorization": "Bearer guess"}).status_code == 403
    assert stranger.get("/class.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    student = joined(classroom, "Bob")
    assert student.get("/class.json").status_code == 401, "a student's desk is no key to the class"
    teacher = instructor(classroom)
    assert teacher.get("/class.json").status_code == 200 and teacher.get("/class.csv").status_code == 200
    assert CODE in teacher.get("/class").get_data(as_text=True)


def test_class_mode_off_has_no_class_page(client: FlaskClient) -> None:
    assert client.get("/class.json").status_code == 404
    assert client.get("/join").status_code == 302


def answer_all(student: FlaskClient, trace_id: str, pick: str) -> list[dict]:
    """Answer every question of the trace: ``pick`` "right" or "wrong" (the first wrong option)."""
    quiz = student.get(f"/api/traces/{trace_id}").get_json()["quiz"]
    given = []
    for question in quiz:
        wrong = [i for i in range(len(question["options"])) if i != question["answer"]]
        choice = question["answer"] if pick == "right" or not wrong else wrong[0]
        body = {"kind": question["kind"], "choice": choice, "option": question["options"][choice]}
        answer = student.post(f"/api/traces/{trace_id}/answers", json=body)
        assert answer.status_code == 200, answer.get_json()
        given.append(answer.get_json())
    return given


def test_the_misconception_counts_are_the_answers_given(classroom: Flask) -> None:
    ada, bob, cy = (joined(classroom, name) for name in ("Ada", "Bob", "Cy"))
    answers = {}
    for name, student, pick in (("Ada", ada, "wrong"), ("Bob", bob, "right"), ("Cy", cy, "wrong")):
        comparison = f"c-{name}"
        student.post("/send-email/sync", json={"comparison": comparison})
        sent = student.post("/send-email/thread", json={"comparison": comparison}).get_json()
        classroom.extensions["sandbox.delivery"].wait_settled(10)
        answers[name] = answer_all(student, sent["trace_id"], pick)
    # A second answer to the same question does not replace the first.
    first = answers["Bob"][0]
    again = bob.post(
        f"/api/traces/{first['trace_id']}/answers",
        json={"kind": first["kind"], "choice": 0},
    ).get_json()
    assert again["first"] is False and again["chosen"] == first["chosen"]

    expected: dict[str, list[int]] = {}
    for given in answers.values():
        for misconception in {m for a in given for m in a["offered"]}:
            expected.setdefault(misconception, [0, 0])[1] += 1
        for misconception in {a["misconception"] for a in given if a["misconception"]}:
            expected[misconception][0] += 1
    summary = instructor(classroom).get("/class.json").get_json()
    counted = {row["misconception"]: [row["students"], row["of"]] for row in summary["misconceptions"]}
    assert counted == expected
    assert any(students for students, _ in counted.values()), "the wrong answers stand for some misconception"
    assert all(students <= of <= 3 for students, of in counted.values())
    desks = {d["name"]: d for d in summary["desks"]}
    assert (
        desks["Bob"]["right"] == desks["Bob"]["answers"] == len(answers["Bob"]) and not desks["Bob"]["misconceptions"]
    )
    assert desks["Ada"]["right"] == sum(a["right"] for a in answers["Ada"])
    assert {s["name"] for s in summary["sends"]} == {"Ada", "Bob", "Cy"} and len(summary["sends"]) == 6
    assert [row["name"] for row in summary["axis"]["rows"]] == ["Ada", "Bob", "Cy"]


def test_an_answer_is_judged_against_the_students_own_trace(classroom: Flask) -> None:
    ada, bob = joined(classroom, "Ada"), joined(classroom, "Bob")
    sent = ada.post("/send-email/thread", json={}).get_json()
    classroom.extensions["sandbox.delivery"].wait_settled(10)
    question = ada.get(f"/api/traces/{sent['trace_id']}").get_json()["quiz"][0]
    url = f"/api/traces/{sent['trace_id']}/answers"
    body = {"kind": question["kind"], "choice": 0}
    assert bob.post(url, json=body).status_code == 404, "another student's trace"
    assert ada.post(url, json={**body, "option": "words never shown"}).status_code == 409
    assert ada.post(url, json={**body, "choice": 99}).status_code == 400
    assert ada.post(url, json={"kind": "nonsense", "choice": 0}).status_code == 400
    assert ada.post(url, json={**body, "choice": True}).status_code == 400
    assert ada.post(url, data="not json").status_code == 400
    recorded = ada.post(url, json=body).get_json()
    assert recorded["right"] == (question["answer"] == 0) and recorded["chosen"] == question["options"][0]


def test_the_csv_has_a_row_per_student_and_the_page_escapes_names(classroom: Flask) -> None:
    joined(classroom, "<script>alert(1)</script>")
    joined(classroom, 'Dana, "the" =1+1')
    teacher = instructor(classroom)
    rows = list(csv.DictReader(io.StringIO(teacher.get("/class.csv").get_data(as_text=True))))
    assert sorted(r["name"] for r in rows) == sorted(["<script>alert(1)</script>", 'Dana, "the" =1+1'])
    page = teacher.get("/class").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_join_codes_and_redirects() -> None:
    codes = {new_join_code() for _ in range(50)}
    assert len(codes) == 50 and all(len(c) == 7 and c[3] == "-" and not set(c) & set("01OIL") for c in codes)
    assert same_code(" abc-def ", "ABC-DEF") and same_code("abcdef", "ABC-DEF") and not same_code("ABC-DEX", "ABC-DEF")
    assert safe_next("/lessons?x=1") == "/lessons?x=1"


def test_a_fresh_start_does_not_take_an_answer_back(classroom: Flask) -> None:
    ada = joined(classroom, "Ada")
    sent = ada.post("/send-email/thread", json={}).get_json()
    classroom.extensions["sandbox.delivery"].wait_settled(10)
    given = answer_all(ada, sent["trace_id"], "wrong")
    assert ada.post("/api/desk/reset").status_code == 200
    assert ada.get(f"/api/traces/{sent['trace_id']}").status_code == 404, "the student's own view starts afresh"
    [desk] = instructor(classroom).get("/class.json").get_json()["desks"]
    assert desk["answers"] == len(given) and desk["sends"] == {"thread": 1} and desk["last_work_s"] is not None


def test_an_answer_is_judged_against_the_trace_as_the_page_showed_it(classroom: Flask, sink: Sink) -> None:
    """The page was built while the worker was still sending; by the time the student answers, the trace has grown
    (and its questions with it). The answer is judged against what the page showed."""
    ada = joined(classroom, "Ada")
    ada.put("/api/sink", json={"delay_s": 0.4})
    sent = ada.post("/send-email/thread", json={}).get_json()
    page = ada.get(f"/traces/{sent['trace_id']}", headers=PAGE).get_data(as_text=True)
    url = html.unescape(re.search(r'data-answers-url="([^"]+)"', page).group(1))
    questions = re.findall(r'data-kind="([a-z_]+)".*?data-index="0" data-option="([^"]*)"', page, re.DOTALL)
    classroom.extensions["sandbox.delivery"].wait_settled(10)  # the worker finished: the trace has more now
    assert len(questions) >= 3
    for kind, option in questions:  # without the page's moment, some of these would no longer match (409)
        body = {"kind": kind, "choice": 0, "option": html.unescape(option)}
        answer = ada.post(url, json=body)
        assert answer.status_code == 200, (kind, answer.get_json())
        assert answer.get_json()["chosen"] == body["option"]


def test_an_instructor_reopens_yesterdays_class_by_its_join_code(sink: Sink, tmp_path: Path) -> None:
    """A restart (here, a second app on the same store) with the same join code shows the class as it was: names,
    sends and answers come back from the store; another code shows another class."""
    config = class_config(tmp_path / "traces.db")
    yesterday = create_app(config, sink=sink)
    ada = joined(yesterday, "Ada")
    sent = ada.post("/send-email/thread", json={}).get_json()
    yesterday.extensions["sandbox.delivery"].wait_settled(10)
    given = answer_all(ada, sent["trace_id"], "wrong")
    before = instructor(yesterday).get("/class.json").get_json()

    today = create_app(config, sink=sink)
    after = instructor(today).get("/class.json").get_json()
    assert [(d["name"], d["sends"], d["answers"], d["right"]) for d in after["desks"]] == [
        ("Ada", {"thread": 1}, len(given), sum(a["right"] for a in given))
    ]
    assert after["misconceptions"] == before["misconceptions"]
    other_class = create_app(config | {"SANDBOX_JOIN_CODE": "ZZZ-ZZZ"}, sink=sink)
    assert instructor(other_class).get("/class.json").get_json()["desks"] == []
    # Ada comes back today with her cookie: the same desk, still in the class, her record kept.
    back = today.test_client()
    back.set_cookie("sandbox_desk", ada.get_cookie("sandbox_desk").value)
    back.post("/send-email/sync", json={})
    today.extensions["sandbox.delivery"].wait_settled(10)
    [desk] = instructor(today).get("/class.json").get_json()["desks"]
    assert desk["sends"] == {"thread": 1, "sync": 1} and desk["answers"] == len(given), "she carries on her record"


def test_two_students_of_one_name_keep_two_rows(classroom: Flask) -> None:
    first, second = joined(classroom, "Sam"), joined(classroom, "Sam")
    for student in (first, second):
        student.post("/send-email/thread", json={})
    classroom.extensions["sandbox.delivery"].wait_settled(10)
    summary = instructor(classroom).get("/class.json").get_json()
    assert [d["name"] for d in summary["desks"]] == ["Sam", "Sam"] and len({d["desk"] for d in summary["desks"]}) == 2
    assert [len(row["marks"]) for row in summary["axis"]["rows"]] == [1, 1]
