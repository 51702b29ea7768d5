"""Class mode in a real browser: a student joins with the code, answers the quiz of their own trace, and the
instructor's page counts the answer; both pages fit a phone and pass axe."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from sandbox.runtime import Sandbox
from tests.web.screens import check_at_every_width
from tests.web.test_screens import send_both

DELAY_S = 0.1
CODE, TOKEN = "HJK-MN3", "the-instructors-token"
SETTINGS = {"class_mode": True, "join_code": CODE, "instructor_token": TOKEN}


def test_a_student_joins_answers_and_the_instructor_sees_it(page: Page, browser: Browser, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}lessons")
    expect(page).to_have_url(f"{sandbox.url}join?next=/lessons")
    check_at_every_width(page, "join")
    page.get_by_label("Join code").fill("hjk mn4")
    page.get_by_label("Your name").fill("Ada")
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#join-error")).to_contain_text("not the code on the projector")
    page.get_by_label("Join code").fill("hjk mn3")
    page.get_by_role("button", name="Join").click()
    expect(page).to_have_url(f"{sandbox.url}lessons")

    page.goto(sandbox.url)
    expect(page.locator("#server-mode")).to_have_text("pooled")  # a class runs on waitress
    _, threaded = send_both(page)
    page.goto(f"{sandbox.url}traces/{threaded}")
    page.locator("details", has=page.locator("[data-quiz]")).locator("summary").click()
    question = page.locator("fieldset.question").first
    kind = question.get_attribute("data-kind")
    right = int(question.get_attribute("data-answer"))
    wrong = (right + 1) % question.locator(".option").count()
    with page.expect_response(lambda r: f"/api/traces/{threaded}/answers?" in r.url) as posted:
        question.locator(".option").nth(wrong).click()
    assert posted.value.status == 200 and posted.value.json()["kind"] == kind

    teacher = browser.new_context().new_page()
    try:
        denied = teacher.goto(f"{sandbox.url}class")
        assert denied is not None and denied.status == 401
        teacher.goto(f"{sandbox.url}class?token={TOKEN}")
        expect(teacher).to_have_url(f"{sandbox.url}class")
        expect(teacher.locator(".join-code")).to_have_text(CODE)
        expect(teacher.locator("#desks-title")).to_have_text("Desks (1)")
        expect(teacher.locator("table")).to_contain_text("Ada")
        misconception = posted.value.json()["misconception"]
        if misconception:
            expect(teacher.locator(".ideas")).to_contain_text(misconception)
        expect(teacher.locator("svg.class-axis rect")).to_have_count(2)
        check_at_every_width(teacher, "class")
    finally:
        teacher.context.close()
