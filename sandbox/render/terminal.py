"""Terminal output with rich: the demo's comparison table and the report of undelivered email."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt
from rich.table import Table

from sandbox.demo import ModeResult, median
from sandbox.explorer import Exploration, yes_no
from sandbox.render.document import TraceReport
from sandbox.strategies.delivery import UNKNOWN, StopReport
from sandbox.strategies.labels import PROMISE_COLUMNS, PROMISES, short_label, title
from sandbox.trace.clock import format_ms
from sandbox.trace.quiz import Question

WIDE_TERMINAL = 140


def comparison_table(results: Sequence[ModeResult], delay_s: float | None) -> Table:
    """One row per mode: what the clients waited for, and when the sink had the email.

    Response times are the server's own (from the moment it had the request, the clock every trace uses); the
    clients' own measurement is beside them, with the difference (the network and the client).
    """
    title = "Same email, different routes" + (f" (sink delay set to {delay_s:g} s)" if delay_s is not None else "")
    table = Table(title=title)
    table.add_column("mode", no_wrap=True)
    table.add_column("server")
    table.add_column("clients", justify="right")
    table.add_column("response\nmedian", justify="right")
    table.add_column("response\nmax", justify="right")
    table.add_column("client's own\nmax (diff)", justify="right")
    table.add_column("accepted\nmedian", justify="right")
    table.add_column("delivered\n/sent", justify="right")
    for result in results:
        accepted = [ms for ms in result.accepted_ms if ms is not None]
        complete = result.delivered == result.clients
        slowest = max(result.client_ms)
        server_max = max(result.response_ms, default=None)
        difference = f" (+{format_ms(max(0.0, slowest - server_max))})" if server_max is not None else ""
        table.add_row(
            escape(short_label(result.mode)),
            result.server,
            str(result.clients),
            format_ms(median(result.response_ms)),
            format_ms(server_max),
            format_ms(slowest) + difference,
            format_ms(median(accepted)),
            f"[{'green' if complete else 'red'}]{result.delivered}/{result.clients}[/]",
        )
    return table


def takeaway(results: Sequence[ModeResult]) -> str | None:
    """Sentences for the class, each chosen from the figures just measured; none unless both sends delivered."""
    by_mode = {r.mode: r for r in results}
    if "sync" not in by_mode or "thread" not in by_mode:
        return None
    sync, thread = by_mode["sync"], by_mode["thread"]
    if sync.errors or thread.errors or sync.delivered < sync.clients or thread.delivered < thread.clients:
        return None
    sync_ms, thread_ms = median(sync.response_ms), median(thread.response_ms)
    if sync_ms is None or thread_ms is None:
        return None
    sentences = [f"Median answer: blocking route {format_ms(sync_ms)}, thread route {format_ms(thread_ms)}"]
    if thread_ms > 0 and sync_ms >= 2 * thread_ms:
        sentences[0] += f": the thread route answered {sync_ms / thread_ms:.0f}x sooner."
    else:
        sentences[0] += ": in this run the thread route did not answer much sooner."
    sync_accepted = [ms for ms in sync.accepted_ms if ms is not None]
    thread_accepted = [ms for ms in thread.accepted_ms if ms is not None]
    if sync_accepted and thread_accepted:
        sync_mid, thread_mid = median(sync_accepted), median(thread_accepted)
        sentence = (
            f"The sink accepted the emails after a median of {format_ms(sync_mid)} (blocking) and "
            f"{format_ms(thread_mid)} (thread)"
        )
        if thread_mid >= sync_mid:
            sentence += ": the thread did not make the email arrive sooner"
        elif thread_mid >= 0.9 * sync_mid:
            sentence += ": about as soon either way"
        spared = sync_ms >= 2 * thread_ms
        sentence += (
            "; what the thread changed is who waited for it." if spared and thread_mid >= 0.9 * sync_mid else "."
        )
        sentences.append(sentence)
    return " ".join(sentences)


def promises_table(modes: Sequence[str]) -> Table:
    table = Table(title="What each mode promises")
    table.add_column("mode", no_wrap=True)
    for column in PROMISE_COLUMNS:
        table.add_column(column)
    for mode in modes:
        if mode in PROMISES:
            table.add_row(short_label(mode), *PROMISES[mode])
    return table


def print_results(console: Console, results: Sequence[ModeResult], delay_s: float | None) -> None:
    console.print(comparison_table(results, delay_s))
    if sum(r.mode in PROMISES for r in results) > 1:
        console.print(promises_table([r.mode for r in results]))
    sentence = takeaway(results)
    if sentence:
        console.print(sentence)
    for result in results:
        for error in result.errors:
            console.print(f"[red]{escape(result.mode)}: {escape(error)}[/]")


def exploration_table(exploration: Exploration) -> Table:
    """Every ordering with its outcome and how often the runs nobody held took it (never: highlighted)."""
    table = Table(title=f"Every ordering of the {exploration.scenario} scenario", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("Releases, in order")
    for _, heading in exploration.columns:
        table.add_column(heading)
    table.add_column(f"Runs nobody held (of {exploration.free_runs})", justify="right")
    for n, ordering in enumerate(exploration.orderings, 1):
        never = exploration.free_runs and not ordering.observed
        table.add_row(
            str(n),
            "\n".join(escape(step.label) for step in ordering.steps),
            *(yes_no(getattr(ordering.outcome, name)) for name, _ in exploration.columns),
            f"[bold yellow]{ordering.observed} (never seen)[/]" if never else str(ordering.observed),
        )
    return table


def print_undelivered(report: StopReport, console: Console | None = None) -> None:
    """Name every email that did not certainly arrive, so none is lost without a word: failed ones, ones whose fate
    the app cannot know, ones sent again after a crash; and say what waits in the queue. With an embedded sink, each
    one's copies in its mailbox settle what the app could not know."""
    console = console or Console()
    if report.queue_problem:
        console.print(f"[red]The queue: {escape(report.queue_problem)}.[/]")
    if report.still_queued:
        console.print(
            f"{report.still_queued} queued email(s) are not delivered yet; they will be sent when the sandbox starts "
            "again with the same queue."
        )
    if report.duplicates:
        table = Table(title=f"{len(report.duplicates)} email(s) sent again after a crash cut an attempt")
        rows = [(d.trace_id, d.mode, d.reason, d.at) for d in report.duplicates]
        console.print(_report_table(table, ("trace id", "mode", "why", "at"), rows, report.in_mailbox))
    failures = report.undelivered
    if not failures:
        if report.still_queued == 0 and not report.duplicates:
            console.print("Every accepted email was delivered.")
        return
    unknown = sum(f.outcome == UNKNOWN for f in failures)
    headings = [f"{len(failures) - unknown} email(s) not delivered"] if len(failures) > unknown else []
    if unknown:
        heading = f"{unknown} email(s) the app cannot tell arrived or not"
        if report.in_mailbox is not None:
            arrived = sum(1 for f in failures if f.outcome == UNKNOWN and report.in_mailbox.get(f.trace_id, 0))
            heading += f" (the sink's mailbox has {arrived} of them)"
        headings.append(heading)
    rows = [(f.trace_id, f.mode, f.outcome, f.error, f.at) for f in failures]
    columns = ("trace id", "mode", "outcome", "error", "at")
    console.print(_report_table(Table(title="; ".join(headings)), columns, rows, report.in_mailbox))


def _report_table(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[str]], in_mailbox: Mapping[str, int] | None
) -> Table:
    """Rows keyed by trace id, escaped, with the sink's count of copies when there is one to ask."""
    for column in (*columns, *(["copies in the sink's mailbox"] if in_mailbox is not None else [])):
        table.add_column(column)
    for row in rows:
        copies = [str(in_mailbox.get(row[0], 0))] if in_mailbox is not None else []
        table.add_row(*(escape(value) for value in (*row, *copies)))
    return table


def execution_table(result: TraceReport, wide: bool = True) -> Table:
    """All five columns when the terminal is wide; narrower, the states go under the action, dimmed."""
    trace = result.trace
    table = Table(title=escape(f"{title(trace.mode)}: execution table (trace {trace.trace_id[:8]})"))
    table.add_column("Step", justify="right")
    table.add_column("Time", justify="right", no_wrap=True)
    table.add_column("Thread", no_wrap=True)
    table.add_column("Action", ratio=3)
    if wide:
        table.add_column("Thread State", ratio=1)
        table.add_column("Main App State", ratio=1)
    table.add_column("Output", ratio=1)
    for row in result.rows:
        output = escape(row.output or "-")
        thread, action = escape(row.thread), escape(row.action)
        if wide:
            table.add_row(
                str(row.step),
                format_ms(row.t_ms),
                thread,
                action,
                escape(row.thread_state),
                escape(row.main_app_state),
                output,
            )
        else:
            states = f"[dim]{escape(row.thread_state)}; server: {escape(row.main_app_state)}[/]"
            table.add_row(str(row.step), format_ms(row.t_ms), thread, f"{action}\n{states}", output)
    return table


def tracker_table(result: TraceReport) -> Table:
    """The state tracker turned on its side (one line per moment) so it fits a terminal."""
    tracker = result.tracker
    table = Table(title="State tracker")
    table.add_column("When", no_wrap=True)
    for name in tracker.variables:
        table.add_column(name)
    for index, column in enumerate(tracker.columns):
        table.add_row(column, *(escape(values[index]) for values in tracker.variables.values()))
    return table


def print_trace_report(console: Console, result: TraceReport) -> None:
    console.print(execution_table(result, wide=console.width >= WIDE_TERMINAL))
    console.print(tracker_table(result))
    for moment in result.moments:
        console.print(f"[bold]{escape(moment.title)}[/] (step {moment.step}) {escape(moment.text)}")
    console.print()


def ask_quiz(console: Console, questions: Sequence[Question], stream: TextIO | None = None) -> int:
    """Ask each question at the prompt, say at once whether the answer was right and why; returns the score.

    Answers come from ``stream`` when given (a test), else from the terminal.
    """
    score = 0
    letters = "ABCD"
    for number, question in enumerate(questions, start=1):
        console.print(f"\n[bold]{number}. {escape(question.question)}[/]")
        for letter, option in zip(letters, question.options, strict=False):
            console.print(f"   {letter}. {escape(option)}")
        choice = Prompt.ask(
            "Your answer",
            choices=list(letters[: len(question.options)]),
            console=console,
            case_sensitive=False,
            stream=stream,
        )
        picked = letters.index(choice.upper())
        if picked == question.answer:
            score += 1
            console.print(f"[green]{escape(question.feedback[picked])}[/]")
        else:
            console.print(f"[red]Not quite.[/] {escape(question.feedback[picked])}")
            console.print(f"The answer is {letters[question.answer]}: {escape(question.options[question.answer])}.")
    console.print(f"\n[bold]Score: {score} of {len(questions)}[/]")
    return score
