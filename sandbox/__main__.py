"""``python -m sandbox``: serve the web sandbox with its embedded sink until Ctrl-C or SIGTERM."""

from __future__ import annotations

import threading

from sandbox.config import CliParser, add_settings_arguments, load_defaults, settings_from_args
from sandbox.render.terminal import print_undelivered
from sandbox.runtime import Sandbox, stop_on_sigterm
from sandbox.smtp.faults import describe_faults


def main(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="python -m sandbox", description="Serve the concurrency sandbox.")
    defaults = load_defaults(parser)
    add_settings_arguments(parser, defaults)
    settings = settings_from_args(parser, parser.parse_args(argv), defaults)
    stop_on_sigterm()
    sandbox = Sandbox(settings, log_requests=True)
    try:
        sandbox.start()
    except OSError as err:
        parser.exit(1, f"cannot start the sandbox: {err}\n")
    try:
        print_serving(sandbox)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nStopping: no new sends; waiting for emails still on their way...")
    finally:
        sandbox.stop()
    print_undelivered(sandbox.report)
    return 0


def print_serving(sandbox: Sandbox) -> None:
    target = (
        f"the embedded sink on {sandbox.sink.address} ({describe_faults(sandbox.sink.handler.faults)})"
        if sandbox.sink
        else "the SMTP server at {}:{}".format(*sandbox.settings.mail_server)
    )
    settings = sandbox.settings
    server = (
        f"pooled server: waitress, {settings.http_threads} threads"
        if settings.server_kind == "pooled"
        else f"{settings.server_kind} server"
    )
    print(f"Concurrency sandbox on {sandbox.url} ({server}), sending to {target}.")
    print(f"Lessons: {sandbox.url}lessons    Mailbox: {sandbox.url}mailbox")
    config = sandbox.app.config if sandbox.app is not None else {}
    if config.get("SANDBOX_CLASS"):
        print(f"Class mode. On the projector: {sandbox.url}  join code {config['SANDBOX_JOIN_CODE']}")
        print(f"Instructor's view (keep it to yourself): {sandbox.url}class?token={config['SANDBOX_INSTRUCTOR_TOKEN']}")
    for other in sandbox.other_servers:
        print(f"The same app on a {other.server_mode} server, for the lessons that compare: {other.url}")
    if sandbox.requeued:
        print(
            f"{len(sandbox.requeued)} email(s) a stopped run had taken from the queue were queued again "
            "(see /api/failures for any that may arrive twice)."
        )
    print("Press Ctrl-C to stop.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
