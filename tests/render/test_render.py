from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

from rich.console import Console

from sandbox import create_app
from sandbox.render.document import report, trace_document
from sandbox.render.html import render_index_page, render_trace_page
from sandbox.render.markdown import render_trace_markdown
from sandbox.render.perfetto import perfetto_trace
from sandbox.render.terminal import ask_quiz, execution_table, print_trace_report, tracker_table
from sandbox.trace.timeline import timeline
from sandbox.trace.tracer import Event, Trace
from tests.conftest import record_trace


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = TagCollector()
    collector.feed(page)
    return collector.tags


def hostile_trace() -> Trace:
    evil = "<script>alert(1)</script>|"

    def event(t: int, kind: str, thread: str = "request-1", tid: int = 1, **details) -> Event:
        return Event(t * 1_000_000, thread, tid, kind, details, "sandbox/x.py", 1, "f")

    return Trace(
        "evil",
        "thread",
        "threaded",
        0.5,
        {},
        {"python": "3", "flask": "3", "flask_mail": "0", "aiosmtpd": "1"},
        [
            event(0, "request.received", method="POST", path=evil),
            event(1, "message.built"),
            event(2, "worker.started", "mail-x", 2),
            event(3, "response.sent", status=202),
            event(4, "worker.failed", "mail-x", 2, error=evil),
        ],
    )


def test_document_follows_the_contract(recorded_traces) -> None:
    sync, thread = recorded_traces[1]
    document = trace_document(report(thread, other=sync))
    assert {"trace_id", "mode", "delay_s", "server", "response_ms", "accepted_ms", "events", "steps", "quiz"} <= set(
        document
    )
    assert document["events"][0]["t_ms"] == 0.0 and document["events"][0]["kind"] == "request.received"
    assert {"t_ms", "thread", "thread_id", "kind"} <= set(document["events"][0])
    assert {"step", "action", "thread_state", "main_app_state", "output", "t_ms", "thread"} <= set(document["steps"][0])
    assert {"question", "options", "answer", "explanation", "step"} <= set(document["quiz"][0])
    json.dumps(document)


def test_perfetto_has_named_tracks_spans_and_instants(recorded_traces) -> None:
    sync, thread = recorded_traces[2]
    data = json.loads(json.dumps(perfetto_trace(report(thread, other=sync))))
    events = data["traceEvents"]
    named = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(named) == 3 and "smtp-sink" in named.values()
    spans = [e for e in events if e["ph"] == "X"]
    assert {s["name"] for s in spans} >= {"handling the request", "worker thread", "holding the email"}
    for span in spans:
        assert span["tid"] in named and span["dur"] >= 0 and span["ts"] >= 0 and span["pid"] == 1
    instants = [e for e in events if e["ph"] == "i"]
    assert len(instants) == len(thread.events)
    assert all(e["s"] == "t" and e["tid"] in named for e in instants)
    delay = next(s for s in spans if s["name"] == "holding the email")
    assert delay["dur"] >= 0.2 * 1e6 * 0.95


def test_trace_page_is_self_contained_and_answerable(recorded_traces) -> None:
    sync, thread = recorded_traces[1]
    result = report(thread, other=sync)
    page = render_trace_page(result)
    tags = tags_of(page)
    fetched = [attrs.get("src") or (attrs.get("href") if tag == "link" else None) for tag, attrs in tags]
    assert all(url is None or url.startswith("data:") for url in fetched), "the page must not load anything"
    assert "http://" not in page and "https://" not in page
    assert page.count('<tr id="step-') == len(result.rows)
    assert "<svg" in page and "Key moments" in page
    fieldsets = [attrs for tag, attrs in tags if tag == "fieldset"]
    assert [int(f["data-answer"]) for f in fieldsets] == [q.answer for q in result.quiz]
    assert "addEventListener" in page


def test_pages_escape_what_they_show() -> None:
    result = report(hostile_trace())
    page = render_trace_page(result, nonce="abc")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    executable = [attrs for tag, attrs in tags_of(page) if tag in ("script", "style") and not attrs.get("type")]
    assert [attrs.get("nonce") for attrs in executable] == ["abc", "abc"]
    markdown = render_trace_markdown(result)
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown and "\\|" in markdown


def test_markdown_tables_and_folded_answers(recorded_traces) -> None:
    sync, thread = recorded_traces[0]
    result = report(sync, other=thread)
    text = render_trace_markdown(result)
    assert "| Step | Time | Thread | Action | Thread State | Main App State | Output |" in text
    table_rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table_rows) == len(result.rows)
    assert all(line.count(" | ") == 6 for line in table_rows)
    answers = text[text.index("<details>") :]
    assert "</details>" in answers and answers.count("**") == 2 * len(result.quiz)


def test_index_compares_the_modes(recorded_traces) -> None:
    sync, thread = recorded_traces[2]
    page = render_index_page([report(sync, other=thread), report(thread, other=sync)])
    for name in ("sync.html", "thread.html", "sync.md", "thread.perfetto.json"):
        assert f'href="{name}"' in page
    assert page.count('class="bar-response"') == 2 and page.count('class="bar-accepted"') == 2


def test_terminal_tables_render_to_text(recorded_traces) -> None:
    sync, thread = recorded_traces[1]
    result = report(thread, other=sync)
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(execution_table(result))
    console.print(tracker_table(result))
    text = console.export_text()
    assert "Thread State" in text and "Main App State" in text
    assert "HTTP 202 goes back to the client" in text and "waiting for the server's reply" in text
    narrow = Console(file=io.StringIO(), width=80, record=True)
    print_trace_report(narrow, result)
    assert "Not observed" in narrow.export_text()  # the web server's state, however the narrow table wraps


def test_terminal_quiz_scores_the_answers_given(recorded_traces) -> None:
    sync, thread = recorded_traces[1]
    quiz = report(thread, other=sync).quiz
    answers = ["ABCD"[q.answer] if n % 2 == 0 else "ABCD"[(q.answer + 1) % len(q.options)] for n, q in enumerate(quiz)]
    console = Console(file=io.StringIO(), width=120, record=True)
    score = ask_quiz(console, quiz, stream=io.StringIO("x\n" + "\n".join(a.lower() for a in answers) + "\n"))
    assert score == (len(quiz) + 1) // 2
    text = console.export_text()
    assert text.count("Right.") == score and "Not quite" in text and f"Score: {score} of {len(quiz)}" in text


def test_the_timeline_draws_each_attempt_and_each_hold_of_a_retried_send(sink) -> None:
    sink.update_settings({"delay_s": 0.05, "lose_reply_probability": 1})
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False}, sink=sink)
    trace = record_trace(app, "thread-retry")
    drawn = timeline(trace)
    worker = next(lane for lane in drawn.lanes if lane.name == "Worker thread")
    holds = [span for lane in drawn.lanes if lane.name == "SMTP sink" for span in lane.spans]
    waits = [span for span in worker.spans if span.label == "waiting for the SMTP server"]
    assert len(holds) == len(waits) == sink.mailbox.copies(trace.trace_id) == 3
    for wait, hold in zip(waits, holds, strict=True):
        assert wait.start_ms <= hold.start_ms <= hold.end_ms <= wait.end_ms + 1
    assert all(b.start_ms >= a.end_ms for a, b in zip(holds, holds[1:], strict=False)), "one hold after another"


def test_the_timeline_of_an_async_view_shows_who_waited_where(sink) -> None:
    sink.update_settings({"delay_s": 0.1})
    app = create_app({"TESTING": True, "MAIL_SUPPRESS_SEND": False}, sink=sink)
    drawn = timeline(record_trace(app, "async-await"))
    lanes = {lane.name: lane for lane in drawn.lanes}
    assert {"Request thread", "Event loop thread", "Executor thread", "SMTP sink"} <= set(lanes)
    [waiting] = [s for s in lanes["Request thread"].spans if s.label == "waiting in app.ensure_sync()"]
    coroutine, closing = lanes["Event loop thread"].spans
    [smtp] = lanes["Executor thread"].spans
    assert waiting.start_ms <= coroutine.start_ms <= smtp.start_ms <= smtp.end_ms <= coroutine.end_ms <= waiting.end_ms
    assert coroutine.end_ms <= closing.start_ms <= closing.end_ms <= waiting.end_ms
    assert lanes["Request thread"].thread != lanes["Event loop thread"].thread != lanes["Executor thread"].thread
