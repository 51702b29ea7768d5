"""The lessons: Markdown files in ``lessons/`` with front matter naming the scenario they run and the quiz they use.

A lesson states nothing about a run that a run could contradict: what depends on the run (times, orders, who
waited) is shown by its scenario, live, beside the text. The front matter::

    ---
    title: Why the blocking route blocks
    summary: One line for the list of lessons.
    order: 1
    objective: What the student can do after the lesson, in a sentence.
    predict:                            # asked before "Run it"; the run says which option happened
      question: Which comes first?
      check: answer_before_acceptance   # a check in sandbox.predictions, naming the options it can return
      options: {answer_first: The answer, email_first: The email}
    scenario:
      description: What pressing "Run it" does, in a sentence.
      steps:
        - title: A blocking send, and a ping while it waits
          sink: {delay_s: 2.0}          # the sink's settings for this step
          modes: [sync]                 # sent one after the other, each after the previous one's trace ended
          ping: true                    # optional: GET /api/ping while each send is under way, timed
        - title: The same email both ways
          sink: {delay_s: 2.0}
          modes: [sync, thread]
          compare: true                 # optional: the step's sends share one comparison id
        - title: A burst
          modes: [pool]
          clients: 8                    # optional: this many sends of each mode at once (1 to 20), as a burst
          server: single                # optional: send to the sandbox's server of this kind (default: the page's)
        - title: A mail server slower than the app's patience
          sink: {greet_delay_s: 2.0}
          app: {smtp_timeout_s: 1.0}    # optional: the app's settings for this step (keys of PUT /api/app)
          modes: [sync]
    quiz: [response_step, wait_time]
    quiz_mode: thread                   # optional: quiz the run's last send of this mode (default: its last send)
    quiz_step: 2                        # optional: quiz the last send of this step (with quiz_mode: of that mode)
    demo: shutdown                      # optional: a button for a demonstration beside the scenario
    ---
    The lesson text, in Markdown.

``sink`` takes the keys of ``PUT /api/sink`` (``delay_s``, ``greet_delay_s``, ``jitter_s``, ``reject_probability``,
``reject_code``, ``reject_stage``, ``disconnect_probability``, ``seed``, ``lose_reply_probability``,
``dedupe_message_id``, and ``listening: false`` for a dead server).
A step's settings are complete: a key it leaves out takes the sandbox's default (no delay, no faults, listening),
never whatever the visitor had set, so the panel can say exactly what the run uses. ``app`` takes the keys of
``PUT /api/app`` (``smtp_timeout_s``, ``pool_backlog``); a key it leaves out stays as the sandbox has it. The page
reads the visitor's own settings (sink and app) before the run and puts them back after it.

A sandbox runs the app in a server of each kind (:mod:`sandbox.runtime`): a step with ``server:`` sends, and pings,
through that one, whichever the visitor opened the page on.

``compare: true`` needs a blocking send and a background one (``thread``, ``pool`` or ``queue``) in the step; the
quiz kind ``other_mode`` needs such a step, since the "what if" question is answered from the partner's real run.

A malformed lesson (unknown key, mode or quiz kind, a sink setting out of range) fails loudly when the lessons load,
with a message naming the file and the step.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, current_app, jsonify, render_template, request
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from sandbox.config import SERVER_MODES
from sandbox.errors import ConfigError
from sandbox.render.code_panes import APP_FILE, file_blocks
from sandbox.smtp.faults import Faults, Receiving, changed_settings, describe_sink_settings
from sandbox.strategies.labels import BUTTON_LABELS, COMPARED_WITH
from sandbox.strategies.modes import SEND_MODES
from sandbox.trace.facts import Facts, observed_server
from sandbox.trace.quiz import QUIZ_KINDS
from sandbox.web.app_settings import checked_app_settings, describe_app_settings
from sandbox.web.desks import current_desk
from sandbox.web.predictions import CHECKS
from sandbox.web.security import CONTENT_SECURITY_POLICY, other_server_origin
from sandbox.web.send_request import BadInput
from sandbox.web.stamps import SERVER_KIND

LESSONS_DIR = Path(__file__).resolve().parents[2] / "lessons"
FRONT_KEYS = ("title", "summary", "order", "objective", "predict", "scenario", "quiz")
OPTIONAL_KEYS = ("quiz_mode", "quiz_step", "demo")
DEMOS = ("shutdown",)  # demonstrations a lesson page can offer beside its scenario (POST /api/demos/<name>)
PREDICT_KEYS = ("question", "check", "options")
SCENARIO_KEYS = ("description", "steps")
STEP_KEYS = ("title", "sink", "app", "modes", "ping", "compare", "clients", "server")
MAX_CLIENTS = 20

bp = Blueprint("lessons", __name__, url_prefix="/lessons")
api = Blueprint("lessons_api", __name__, url_prefix="/api/lessons")
VERDICT_TRACES_MAX = 20
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def _focusable_code(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """A code block with ``tabindex="0"``: one that scrolls sideways on a phone must be reachable from the keyboard."""
    default = RendererHTML.fence if tokens[idx].type == "fence" else RendererHTML.code_block
    return default(self, tokens, idx, options, env).replace("<pre>", '<pre tabindex="0">', 1)


def _focusable_table(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """A table with ``tabindex="0"``, for the same reason (the lesson's CSS lets a wide one scroll)."""
    tokens[idx].attrSet("tabindex", "0")
    return self.renderToken(tokens, idx, options, env)


_markdown.add_render_rule("fence", _focusable_code)
_markdown.add_render_rule("code_block", _focusable_code)
_markdown.add_render_rule("table_open", _focusable_table)


class LessonError(ValueError):
    """A lesson file is malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    summary: str
    order: int
    objective: str
    predict: dict[str, Any]
    scenario: dict[str, Any]
    quiz: list[str]
    html: Markup
    quiz_mode: str | None = None
    quiz_step: int | None = None  # 1-based
    demo: str | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.scenario["steps"]

    @property
    def pings(self) -> bool:
        """Whether some step pings the server during a send (the page then shows the ping's report)."""
        return any(step["ping"] for step in self.steps)

    @property
    def servers(self) -> set[str]:
        """The kinds of server the steps name (a step that names none uses the page's own)."""
        return {step["server"] for step in self.steps if step["server"]}

    @property
    def changes_app(self) -> bool:
        """Whether some step changes the app's settings (the page then saves and restores them too)."""
        return any(step["app"] for step in self.steps)

    @property
    def compares(self) -> bool:
        return any(step["compare"] for step in self.steps)


def parse_lesson(path: Path, modes: frozenset[str]) -> Lesson:
    text = path.read_text(encoding="utf-8")
    _, sep, rest = text.partition("---\n")
    front, sep2, body = rest.partition("\n---\n")
    if sep != "---\n" or not sep2 or text[: len(text) - len(text.lstrip())]:
        raise LessonError(f"{path.name}: start with front matter between two '---' lines")
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError as err:
        raise LessonError(f"{path.name}: the front matter is not valid YAML: {err}") from err
    if not isinstance(meta, dict):
        raise LessonError(f"{path.name}: the front matter must be a mapping of {', '.join(FRONT_KEYS)}")
    missing = [key for key in FRONT_KEYS if key not in meta]
    if missing:
        raise LessonError(f"{path.name}: front matter lacks {', '.join(missing)}")
    _no_unknown_keys(path, "front matter", meta, FRONT_KEYS + OPTIONAL_KEYS)
    quiz = meta["quiz"]
    if not isinstance(quiz, list) or not quiz:
        raise LessonError(f"{path.name}: quiz must be a list of quiz kinds, e.g. [wait_time]")
    unknown_kinds = [k for k in quiz if k not in QUIZ_KINDS]
    if unknown_kinds:
        raise LessonError(f"{path.name}: unknown quiz kinds {unknown_kinds}; known: {', '.join(QUIZ_KINDS)}")
    scenario = parse_scenario(path, meta["scenario"], modes)
    if "other_mode" in quiz and not any(step["compare"] for step in scenario["steps"]):
        raise LessonError(
            f"{path.name}: quiz kind other_mode needs a step with compare: true (its answer is the partner's run)"
        )
    quiz_step = meta.get("quiz_step")
    steps = scenario["steps"]
    if quiz_step is not None and (
        isinstance(quiz_step, bool) or not isinstance(quiz_step, int) or not 1 <= quiz_step <= len(steps)
    ):
        raise LessonError(f"{path.name}: quiz_step must be a step's number, from 1 to {len(steps)}")
    quiz_mode = meta.get("quiz_mode")
    quizzed_steps = steps if quiz_step is None else [steps[quiz_step - 1]]
    if quiz_mode is not None and quiz_mode not in {mode for step in quizzed_steps for mode in step["modes"]}:
        raise LessonError(f"{path.name}: quiz_mode {quiz_mode!r} is not a mode the quizzed steps send by")
    objective = _text(path, "objective", meta["objective"], "say, in a sentence, what the student can do afterwards")
    demo = meta.get("demo")
    if demo is not None and demo not in DEMOS:
        raise LessonError(f"{path.name}: demo must be one of {', '.join(DEMOS)}, not {demo!r}")
    return Lesson(
        path.stem.split("-", 1)[-1],
        str(meta["title"]),
        str(meta["summary"]),
        int(meta["order"]),
        objective,
        parse_predict(path, meta["predict"]),
        scenario,
        list(quiz),
        Markup(_markdown.render(with_student_code(path, body))),
        quiz_mode,
        quiz_step,
        demo,
    )


# A lesson shows the student's code as it runs: a line ``<!-- code: send_sync welcome_email -->`` becomes those
# functions of the app's file, copied when the lesson loads, so the text cannot drift from the code it teaches.
STUDENT_CODE = re.compile(r"^<!-- code: ([A-Za-z_][\w ]*) -->$", re.MULTILINE)


def with_student_code(path: Path, body: str) -> str:
    blocks = {block.name: block for block in file_blocks(APP_FILE)}

    def insert(match: re.Match[str]) -> str:
        names = match.group(1).split()
        unknown = [name for name in names if name not in blocks]
        if unknown:
            raise LessonError(f"{path.name}: no function {', '.join(unknown)} in {APP_FILE}")
        chosen = sorted((blocks[name] for name in names), key=lambda block: block.first_line)
        where = ", ".join(f"{b.first_line}-{b.first_line + len(b.lines) - 1}" for b in chosen)
        code = "\n\n\n".join("\n".join(block.lines) for block in chosen)
        return f"From `{APP_FILE}` (lines {where}), the code the sandbox runs:\n\n```python\n{code}\n```"

    return STUDENT_CODE.sub(insert, body)


def parse_predict(path: Path, predict: object) -> dict[str, Any]:
    """The prediction asked before the run: a question, and one option per answer its check can give."""
    predict = _mapping(path, "predict", predict, PREDICT_KEYS)
    question = _text(path, "predict.question", predict.get("question"), "ask something the run will answer")
    check = predict.get("check")
    if check not in CHECKS:
        raise LessonError(f"{path.name}: predict.check must be one of {', '.join(CHECKS)}, not {check!r}")
    options = predict.get("options")
    answers = CHECKS[check][1]
    if (
        not isinstance(options, dict)
        or set(options) != set(answers)
        or any(not isinstance(text, str) or not text.strip() for text in options.values())
    ):
        raise LessonError(f"{path.name}: predict.options must give a text for each of {', '.join(answers)}")
    return {
        "question": question,
        "check": check,
        "options": [{"key": key, "text": options[key].strip()} for key in answers],
    }


def parse_scenario(path: Path, scenario: object, modes: frozenset[str]) -> dict[str, Any]:
    """The checked scenario, each step's sink settings resolved in full (what the page sends and shows)."""
    scenario = _mapping(path, "scenario", scenario, SCENARIO_KEYS)
    description = _text(
        path, "scenario.description", scenario.get("description"), "say, in a sentence, what the run does"
    )
    steps = scenario.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{path.name}: scenario.steps must be a list of at least one step")
    return {
        "description": description,
        "steps": [_parse_step(path, f"scenario.steps[{n}]", step, modes) for n, step in enumerate(steps)],
    }


def _parse_step(path: Path, where: str, step: object, modes: frozenset[str]) -> dict[str, Any]:
    step = _mapping(path, where, step, STEP_KEYS)
    title = _text(path, f"{where}.title", step.get("title"), "name the step in a few words")
    step_modes = step.get("modes")
    if (
        not isinstance(step_modes, list)
        or not step_modes
        or any(not isinstance(m, str) or m not in modes for m in step_modes)
    ):
        raise LessonError(f"{path.name}: {where}.modes must list modes among {', '.join(sorted(modes))}")
    flags = {}
    for flag in ("ping", "compare"):
        value = step.get(flag, False)
        if not isinstance(value, bool):
            raise LessonError(f"{path.name}: {where}.{flag} must be true or false")
        flags[flag] = value
    if flags["compare"] and not any(b in COMPARED_WITH.get(a, ()) for a in step_modes for b in step_modes):
        raise LessonError(
            f"{path.name}: {where}.compare needs a blocking send and a background one (thread, pool or queue)"
        )
    clients = step.get("clients", 1)
    if isinstance(clients, bool) or not isinstance(clients, int) or not 1 <= clients <= MAX_CLIENTS:
        raise LessonError(f"{path.name}: {where}.clients must be a whole number from 1 to {MAX_CLIENTS}")
    if clients > 1 and (flags["ping"] or flags["compare"]):
        raise LessonError(f"{path.name}: {where}.clients above 1 cannot go with ping or compare (one send each)")
    server = step.get("server")
    if server is not None and server not in SERVER_MODES:
        raise LessonError(f"{path.name}: {where}.server must be one of {', '.join(SERVER_MODES)}")
    sink = _parse_sink(path, f"{where}.sink", step.get("sink", {}))
    app = step.get("app", {})
    if not isinstance(app, Mapping):
        raise LessonError(f"{path.name}: {where}.app must be a mapping of app settings, e.g. {{smtp_timeout_s: 1}}")
    try:
        app = checked_app_settings(app)
    except ConfigError as err:
        raise LessonError(f"{path.name}: {where}.app: {err}") from err
    return {
        "title": title,
        "modes": list(step_modes),
        "sink": sink,
        "app": app,
        "app_text": describe_app_settings(app),
        **flags,
        "clients": clients,
        "server": server,
        "sink_text": describe_sink_settings(sink),
    }


def _parse_sink(path: Path, where: str, sink: object) -> dict[str, Any]:
    """Complete sink settings: the step's values over the defaults, checked as ``PUT /api/sink`` would check them."""
    if not isinstance(sink, Mapping):
        raise LessonError(f"{path.name}: {where} must be a mapping of sink settings, e.g. {{delay_s: 2}}")
    changes = dict(sink)
    listening = changes.pop("listening", True)
    if not isinstance(listening, bool):
        raise LessonError(f"{path.name}: {where}.listening must be true or false")
    try:
        faults, receiving = changed_settings(Faults(), Receiving(), changes)
    except ConfigError as err:
        raise LessonError(f"{path.name}: {where}: {err}") from err
    return {**faults.to_dict(), **receiving.to_dict(), "listening": listening}


def _mapping(path: Path, where: str, value: object, known: tuple[str, ...]) -> dict[str, Any]:
    """``value`` if it is a mapping of ``known`` keys only; a LessonError naming the place otherwise."""
    if not isinstance(value, dict):
        raise LessonError(f"{path.name}: {where} must be a mapping with {', '.join(known)}")
    _no_unknown_keys(path, where, value, known)
    return value


def _text(path: Path, where: str, value: object, must: str) -> str:
    """``value`` stripped, if it is text that is not blank; a LessonError saying what it ``must`` do otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"{path.name}: {where} must {must}")
    return value.strip()


def _no_unknown_keys(path: Path, where: str, mapping: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(str(key) for key in set(mapping) - set(known))
    if unknown:
        raise LessonError(f"{path.name}: {where} has unknown keys {', '.join(unknown)}; known: {', '.join(known)}")


@functools.cache
def load_lessons(directory: Path = LESSONS_DIR, modes: frozenset[str] = frozenset()) -> tuple[Lesson, ...]:
    """Every lesson, in order; read once per process."""
    return tuple(sorted((parse_lesson(p, modes) for p in directory.glob("*.md")), key=lambda lesson: lesson.order))


def lessons() -> tuple[Lesson, ...]:
    return load_lessons(LESSONS_DIR, frozenset(SEND_MODES))


@bp.get("")
def index() -> str:
    return render_template("pages/lessons.html", lessons=lessons())


@bp.get("/<slug>")
def lesson(slug: str) -> Response:
    ordered = lessons()
    position = next((i for i, lesson in enumerate(ordered) if lesson.slug == slug), None)
    if position is None:
        raise BadInput(f"no lesson {slug!r}; see /lessons", 404)
    server = request.environ.get(SERVER_KIND, current_app.config["SANDBOX_SERVER"])
    # Where each kind of server is, from this page: "" for its own, None for a kind the sandbox does not run.
    servers = {kind: "" if kind == server else other_server_origin(kind) for kind in SERVER_MODES}
    page = render_template(
        "pages/lesson.html",
        lesson=ordered[position],
        previous=ordered[position - 1] if position > 0 else None,
        next=ordered[position + 1] if position + 1 < len(ordered) else None,
        server=server,
        servers=servers,
        elsewhere=[kind for kind in SERVER_MODES if kind != server and kind in ordered[position].servers],
        embedded_sink=current_app.extensions.get("sandbox.sink") is not None,
        labels=BUTTON_LABELS,
    )
    response = Response(page, mimetype="text/html")
    others = " ".join(origin for origin in servers.values() if origin)
    if others:
        response.headers["Content-Security-Policy"] = f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {others}"
    return response


@api.get("/<slug>/verdict")
def verdict(slug: str) -> Response:
    """Which option of the lesson's prediction the run shows: ``?traces=<id>,<id>`` names the run's traces."""
    lesson = next((lesson for lesson in lessons() if lesson.slug == slug), None)
    if lesson is None:
        raise BadInput(f"no lesson {slug!r}; see /lessons", 404)
    ids = [part for part in request.args.get("traces", "").split(",") if part]
    if not ids or len(ids) > VERDICT_TRACES_MAX:
        raise BadInput(f"name the run's traces: ?traces=<id>,<id> (1 to {VERDICT_TRACES_MAX})")
    tracer, log = current_app.extensions["sandbox.tracer"], current_app.extensions.get("sandbox.requests")
    runs = []
    for trace_id in ids:
        trace = tracer.get(trace_id, current_desk())
        if trace is None:
            raise BadInput(f"no trace {trace_id!r} at your desk: it never existed or is no longer kept", 404)
        runs.append(Facts(trace, observed_server(trace, log)))
    check, _ = CHECKS[lesson.predict["check"]]
    judged = check(runs)
    texts = {option["key"]: option["text"] for option in lesson.predict["options"]}
    return jsonify(
        lesson=slug,
        check=lesson.predict["check"],
        answer=judged.answer,
        answer_text=texts.get(judged.answer) if judged.answer else None,
        evidence=judged.evidence,
    )
