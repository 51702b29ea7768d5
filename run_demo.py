"""The instructor's entry point: one command starts the slow sink and the app, sends by each mode and compares.

python run_demo.py                   # one email per mode, sink delay 2 s
python run_demo.py --clients 5 --server single
python run_demo.py --serve           # keep the web sandbox up for the class
python run_demo.py --explore thread  # every ordering of the thread route's gates, and how often each happens
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sandbox.__main__ import print_serving
from sandbox.config import CliParser, add_settings_arguments, load_defaults, settings_from_args
from sandbox.demo import ModeResult, run_mode
from sandbox.explorer import SCENARIOS, ExplorerError, explore, summary
from sandbox.render.document import TraceReport, report
from sandbox.render.files import write_exploration, write_reports
from sandbox.render.terminal import (
    ask_quiz,
    exploration_table,
    print_results,
    print_trace_report,
    print_undelivered,
)
from sandbox.runtime import Sandbox, stop_on_sigterm
from sandbox.strategies.labels import COMPARED_WITH
from sandbox.strategies.modes import SEND_MODES, STRATEGIES
from sandbox.trace.facts import NOT_OBSERVED, observed_server
from sandbox.web.requests_log import RequestsLog

MAX_CLIENTS = 200
EXPLORE_RUNS, MAX_RUNS = 50, 1000


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sandbox]:
    parser = CliParser(prog="run_demo.py", description=__doc__.splitlines()[0])
    defaults = load_defaults(parser)
    add_settings_arguments(parser, defaults)
    parser.add_argument(
        "--modes",
        default=",".join(STRATEGIES),
        help=f"comma-separated modes to compare (default {','.join(STRATEGIES)})",
    )
    parser.add_argument("--clients", type=int, default=1, help="simultaneous requests per mode (default 1)")
    parser.add_argument("--serve", action="store_true", help="keep the web sandbox running and print its URL")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("traces"),
        metavar="DIR",
        help="folder for the HTML, Markdown, JSON and Perfetto files (default traces/)",
    )
    parser.add_argument("--quiz", action="store_true", help="ask the quiz in the terminal after the demo")
    parser.add_argument(
        "--explore",
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"run every ordering of a send's gates instead of the demo ({', '.join(SCENARIOS)}); writes "
        "explore-SCENARIO.html, .md and .json",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=EXPLORE_RUNS,
        help=f"with --explore: sends nobody holds, to count how often each ordering happens (default {EXPLORE_RUNS})",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be between 0 and {MAX_RUNS}, not {args.runs}")
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in args.modes if mode not in SEND_MODES]
    if unknown or not args.modes:
        parser.error(f"--modes takes a comma list of {', '.join(SEND_MODES)}; got {','.join(unknown) or 'nothing'}")
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be between 1 and {MAX_CLIENTS}, not {args.clients}")
    settings = settings_from_args(parser, args, defaults)
    if args.explore:
        if args.serve or settings.mail_server:
            parser.error("--explore runs its own sends against the embedded sink: leave out --serve and --mail-server")
        settings = settings.replace(delay_s=0.0)  # how long the sink waits changes no ordering that can happen
    if settings.class_mode and not args.serve:
        parser.error("--class is for a room: use it with --serve (the demo's own sends have no desk to join)")
    return args, Sandbox(settings, log_requests=args.serve)


def main(argv: list[str] | None = None) -> int:
    args, sandbox = parse_args(argv)
    console = Console()
    stop_on_sigterm()
    try:
        sandbox.start()
    except OSError as err:
        console.print(f"[red]cannot start the sandbox: {escape(str(err))}[/]")
        return 1
    if args.explore:
        return explore_in_terminal(console, sandbox, args.explore, args.runs, args.out)
    results = []
    try:
        if args.serve:
            print_serving(sandbox)
            threading.Event().wait()
        comparison = uuid.uuid4().hex  # the same email by every mode: one comparison
        for mode in args.modes:
            with console.status(
                f"Sending {args.clients} email(s) by [bold]{mode}[/] on the {sandbox.settings.server_kind} server..."
            ):
                results.append(run_mode(sandbox, mode, args.clients, comparison))
    except KeyboardInterrupt:
        console.print("\nStopping: no new sends; waiting for emails still on their way...")
    finally:
        undelivered = sandbox.stop()
    if results:
        print_results(console, results, sandbox.settings.delay_s if not sandbox.settings.mail_server else None)
        reports = trace_reports(results, sandbox.requests_log)
        for result in reports:
            print_trace_report(console, result)
        written = write_reports(reports, args.out)
        console.print("Wrote " + ", ".join(escape(str(path)) for path in written))
        if args.quiz:
            quiz_in_terminal(console, reports)
    print_undelivered(sandbox.report, console)
    return 1 if undelivered else 0


def explore_in_terminal(console: Console, sandbox: Sandbox, scenario: str, runs: int, out: Path) -> int:
    """Every ordering of the scenario with a progress bar, then the table, the counts and the files."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    tasks: dict[str, TaskID] = {}
    try:
        with Progress(*columns, console=console) as bar:

            def progress(phase: str, done: int, total: int | None) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            exploration = explore(sandbox, scenario, runs, progress)
    except (ExplorerError, KeyboardInterrupt) as err:
        console.print(f"[red]The exploration stopped: {escape(str(err) or 'interrupted')}[/]")
        sandbox.stop()
        return 1
    sandbox.stop()
    console.print(exploration_table(exploration))
    for line in summary(exploration):
        console.print(escape(line))
    console.print("(The sink answered at once while exploring: how long it waits changes no ordering that can happen.)")
    written = write_exploration(exploration, out)
    console.print("Wrote " + ", ".join(escape(str(path)) for path in written))
    return 1 if exploration.unexplained else 0


def trace_reports(results: list[ModeResult], log: RequestsLog | None) -> list[TraceReport]:
    """One report per mode, from its slowest client's trace, each paired with a send of the same comparison."""
    by_mode = {result.mode: result.trace for result in results if result.trace is not None}
    reports = []
    for mode, trace in by_mode.items():
        other = next((by_mode[m] for m in COMPARED_WITH.get(mode, ()) if m in by_mode), None)
        reports.append(
            report(
                trace,
                other=other,
                server=observed_server(trace, log),
                other_server=observed_server(other, log) if other is not None else NOT_OBSERVED,
            )
        )
    return reports


def quiz_in_terminal(console: Console, reports: list[TraceReport]) -> None:
    if not sys.stdin.isatty():
        console.print("Skipping --quiz: standard input is not a terminal, so nobody could answer.")
        return
    for result in reports:
        console.rule(f"Quiz on the {result.trace.mode} run")
        ask_quiz(console, result.quiz)


if __name__ == "__main__":
    sys.exit(main())
