"""Keeping the sandbox a local toy: loopback by default, a loud warning otherwise, and no cross-site sends.

Any web page a student has open could otherwise POST to http://127.0.0.1:PORT/send-email/sync. Browsers mark such
requests (``Origin``, ``Sec-Fetch-Site``), so changing requests from another site are refused. A trusted-host list
stops DNS rebinding (another site's name pointed at 127.0.0.1) from looking same-origin.
"""

from __future__ import annotations

import ipaddress
import sys
from urllib.parse import urlsplit

from flask import request

from sandbox.send_request import BadInput

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_hosts(host: str) -> list[str] | None:
    """The Host header names to accept: loopback names when bound to loopback; anything when exposed on purpose."""
    return [*LOOPBACK_NAMES, host] if is_loopback(host) else None


def refuse_cross_site() -> None:
    """A ``before_request`` hook: a changing request that a browser says came from another site gets a 403."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        raise BadInput("cross-site request refused: only the sandbox's own pages may send", 403)
    origin = request.headers.get("Origin")
    if origin is not None:
        own = urlsplit(request.host_url)
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (own.scheme, own.netloc):
            raise BadInput(f"cross-site request refused: origin {origin!r} is not this sandbox", 403)


def warn_if_exposed(host: str, what: str) -> None:
    """Say loudly, on stderr, when something binds beyond this machine."""
    if not is_loopback(host):
        print(
            f"\n*** WARNING: the {what} is listening on {host}, not on 127.0.0.1. Anyone who can reach this machine "
            "can use it and read its mailbox. Use this only on a network you trust, for a class. ***\n",
            file=sys.stderr,
            flush=True,
        )
