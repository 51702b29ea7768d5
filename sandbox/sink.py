"""``python -m sandbox.sink``: the SMTP sink (``sandbox.smtp.sink``) on its own, for a class or another app."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from sandbox.config import CliParser, add_settings_arguments, load_defaults, settings_from_args
from sandbox.smtp.faults import describe_faults
from sandbox.smtp.sink import Sink, StoredMessage
from sandbox.web.security import warn_if_exposed


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.sink``: run the sink alone and print one line per accepted message."""
    parser = CliParser(prog="python -m sandbox.sink", description="Run the slow SMTP sink on its own.")
    defaults = load_defaults(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add_settings_arguments(parser, defaults, sink_only=True)
    args = parser.parse_args(argv)
    settings = settings_from_args(parser, args, defaults)
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    def show(message: StoredMessage) -> None:
        print(
            f"{message.received_at}  #{message.id}  {message.mail_from} -> {', '.join(message.rcpt_tos)}  "
            f"{message.subject!r} ({message.size} bytes)",
            flush=True,
        )

    warn_if_exposed(args.host, "SMTP sink")
    sink = Sink(args.host, settings.smtp_port, settings.faults(), on_message=show)
    try:
        sink.start()
    except OSError as err:
        parser.exit(1, f"cannot start the sink on {args.host}:{settings.smtp_port}: {err}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"SMTP sink listening on {sink.address} ({describe_faults(sink.handler.faults, sink.handler.receiving)}); "
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    print(f"Sink stopped after accepting {len(sink.mailbox.messages())} message(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
