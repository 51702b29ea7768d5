"""The interleaving explorer on the scheduler's page: run every ordering of a scenario for the desk, in the background,
and read its progress and its table.

``POST /api/explorations`` ``{"scenario", "runs"}`` starts one (202); ``GET /api/explorations/<id>`` tells how far it
is and, once done, the orderings, their outcomes and the summary, the same as ``run_demo.py --explore`` prints. The
sends are the desk's own (the page's cookie goes with them), so their traces open from the table. An exploration
holds real threads for a while: one runs per desk, and at most ``AT_ONCE`` in the whole sandbox.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from sandbox.explorer import SCENARIOS, ExplorerError, Target, explore, summary
from sandbox.trace.tracer import DEFAULT_DESK
from sandbox.web.desks import current_desk
from sandbox.web.send_request import BadInput, read_json

bp = Blueprint("explorations", __name__)

MAX_RUNS = 20  # sends nobody holds, after the orderings: enough to see which orders the OS prefers
AT_ONCE = 2  # explorations running in the sandbox at one time (each holds threads and sends for seconds)
KEPT = 50  # finished explorations kept to read back, the oldest dropped first


@dataclass
class Job:
    id: str
    desk: str
    scenario: str
    runs: int
    state: str = "running"  # then "done" or "failed"
    phase: str = ""
    done: int = 0
    total: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, phase: str, done: int, total: int | None) -> None:
        with self.lock:
            self.phase, self.done, self.total = phase, done, total

    def fail(self, error: str) -> None:
        with self.lock:
            self.state, self.error = "failed", error

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "scenario": self.scenario,
                "runs": self.runs,
                "state": self.state,
                "progress": {"phase": self.phase, "done": self.done, "total": self.total},
                "result": self.result,
                "error": self.error,
            }


class Explorations:
    """The app's explorations, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def start(self, target: Target, scenario: str, runs: int) -> Job:
        with self._lock:
            running = [job for job in self._jobs.values() if job.state == "running"]
            if any(job.desk == target.desk for job in running):
                raise BadInput("your desk is exploring already: wait for that exploration to end", 409)
            if len(running) >= AT_ONCE:
                raise BadInput(f"{len(running)} explorations are running in this sandbox; try again in a moment", 409)
            job = Job(uuid.uuid4().hex, target.desk, scenario, runs)
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.state != "running"]
            for old in finished[: max(0, len(finished) - KEPT)]:
                del self._jobs[old.id]
        threading.Thread(target=self._run, args=(job, target), name="explorer", daemon=True).start()
        return job

    def get(self, job_id: str, desk: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.desk == desk else None

    @staticmethod
    def _run(job: Job, target: Target) -> None:
        try:
            exploration = explore(target, job.scenario, job.runs, job.progress)
        except ExplorerError as err:
            job.fail(str(err))
            return
        except Exception as err:  # noqa: BLE001 - a job left "running" would refuse the desk's next exploration
            job.fail(f"{type(err).__name__}: {err}")
            return
        result = exploration.to_dict()
        result["summary"] = list(summary(exploration))
        result["what_ran"] = exploration.what_ran
        result["columns"] = [{"name": name, "heading": heading} for name, heading in exploration.columns]
        with job.lock:
            job.state, job.result = "done", result


def explorations() -> Explorations:
    return current_app.extensions["sandbox.explorations"]


@bp.post("/api/explorations")
def start() -> tuple[Response, int]:
    """Explore ``{"scenario": ..., "runs": 0 to MAX_RUNS}`` with the desk's own sends."""
    body = read_json(request)
    body = body if isinstance(body, dict) else {}
    scenario, runs = body.get("scenario"), body.get("runs", 10)
    if scenario not in SCENARIOS:
        raise BadInput(f"scenario must be one of {', '.join(SCENARIOS)}")
    if not isinstance(runs, int) or isinstance(runs, bool) or not 0 <= runs <= MAX_RUNS:
        raise BadInput(f"runs must be a whole number from 0 to {MAX_RUNS}")
    desk = current_desk()
    cookie = request.headers.get("Cookie")
    headers = (("Cookie", cookie),) if cookie and desk != DEFAULT_DESK else ()
    target = Target(request.host_url, current_app._get_current_object(), desk, headers)
    job = explorations().start(target, scenario, runs)
    return jsonify(job.to_dict()), 202


@bp.get("/api/explorations/<job_id>")
def progress(job_id: str) -> Response:
    job = explorations().get(job_id, current_desk())
    if job is None:
        raise BadInput(f"no exploration {job_id!r} at your desk", 404)
    return jsonify(job.to_dict())


def init_app(app: Flask) -> None:
    app.extensions["sandbox.explorations"] = Explorations()
    app.register_blueprint(bp)
