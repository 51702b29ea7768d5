"""Keeping the sandbox a local toy: loopback by default, a loud warning otherwise, and no cross-site sends.

Any web page a student has open could otherwise POST to http://127.0.0.1:PORT/send-email/sync. Browsers mark such
requests (``Origin``, ``Referer``, ``Sec-Fetch-Site``), so changing requests from another site are refused, except
from the sandbox's other server (same scheme and host name, the other port: see ``SERVER_PORTS_KEY``), which may
also read the answers (CORS), so a lesson page on one server can send through the other. A
trusted-host list stops DNS rebinding (another site's name pointed at this machine) from looking same-origin, bound
to loopback or not. The sandbox checks hosts itself rather than through Flask's ``TRUSTED_HOSTS``: Werkzeug 3.1 cuts
each trusted name at its first ``:``, so it can never trust an IPv6 address such as ``[::1]``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Response, current_app, request

from sandbox.web.send_request import BadInput

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
TRUSTED_HOSTS_KEY = "SANDBOX_TRUSTED_HOSTS"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SERVER_PORTS_KEY = "SANDBOX_SERVER_PORTS"  # {server kind: port} of the servers one sandbox runs
HOST_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")
CONTENT_LENGTH = re.compile(r"[0-9]+")
# Documentation addresses: connecting a UDP socket to one sends nothing, it only picks the route (and its address).
ROUTE_PROBES = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(name: str) -> str:
    """``name`` as the trusted-host list holds it: lower case, an IPv6 address unbracketed and compressed.

    Raises ValueError for anything that is not a bare host name or address (a port, a scheme, a space...).
    """
    bare = name.strip().lower()
    try:
        return ipaddress.ip_address(bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare).compressed
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(bare):
        raise ValueError(f"{name!r} is not a host name or address; give it bare, e.g. classroom.local or 10.0.0.5")
    return bare


def trusted_hosts(host: str, allowed: Iterable[str] = ()) -> list[str]:
    """The names a ``Host`` header may give (ports aside) when the app is bound to ``host``, plus ``allowed``.

    Loopback binds answer to the loopback names; any other bind also to this machine's names and addresses, and to
    ``host`` itself unless it is a wildcard such as 0.0.0.0. Addresses of other interfaces are not all found with
    the standard library: name them with ``--allow-host``.
    """
    names = [*LOOPBACK_NAMES, *allowed]
    if not is_loopback(host):
        names += machine_names()
    if not _is_wildcard(host):
        names.append(host)
    return list(dict.fromkeys(host_name(name) for name in names))


@functools.cache
def machine_names() -> tuple[str, ...]:
    """This machine's host name, FQDN and their addresses, and the addresses its default routes leave from."""
    hostname = socket.gethostname()
    names = [hostname, socket.getfqdn()]
    try:
        names += [str(info[4][0]) for info in socket.getaddrinfo(hostname, None)]
    except OSError:
        pass
    for family, probe in ROUTE_PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.connect((probe, 9))
                names.append(udp.getsockname()[0])
        except OSError:  # no route of that family
            pass
    usable = []
    for name in names:
        try:
            usable.append(host_name(name.partition("%")[0]))  # a link-local address's %zone is no part of a Host
        except ValueError:
            pass
    return tuple(dict.fromkeys(usable))


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def refuse_untrusted_host() -> None:
    """A ``before_request`` hook: a ``Host`` header naming something other than this sandbox gets a 400."""
    if "Host" not in request.headers:  # HTTP/1.0 without one: no browser, so no rebinding
        return
    trusted = current_app.config[TRUSTED_HOSTS_KEY]
    host = request.host  # "" when Werkzeug found characters no host name has
    name = host[1 : host.find("]")] if host.startswith("[") else host.partition(":")[0]
    try:
        if host and host_name(name) in trusted:
            return
    except ValueError:
        pass
    raise BadInput(
        f"Host {request.headers['Host']!r} is not trusted: this sandbox answers to {_listed(trusted)}. "
        "To reach it by another name, start it with --allow-host NAME (or SANDBOX_ALLOW_HOSTS=NAME,...).",
        400,
    )


def _listed(names: list[str]) -> str:
    """The names as a ``Host`` header gives them: an IPv6 address in brackets."""
    return ", ".join(f"[{name}]" if ":" in name else name for name in names)


def refuse_unclear_length() -> None:
    """A ``before_request`` hook: a body whose length is not one plain number is refused before any route reads it.

    Werkzeug reads ``Content-Length: abc`` (or ``-1``, or ``5, 7`` from two headers) as an empty body, so a send
    would go out with the default fields instead of what the client meant.
    """
    length = request.environ.get("CONTENT_LENGTH")
    if length is None or length == "":
        return
    if not CONTENT_LENGTH.fullmatch(length.strip(" \t")):
        raise BadInput(f"Content-Length must be one whole number of bytes, not {length!r}", 400)
    if "Transfer-Encoding" in request.headers:
        raise BadInput("send a body with Content-Length or with Transfer-Encoding, not both", 400)


def refuse_cross_site() -> None:
    """A ``before_request`` hook: a changing request that a browser says came from another site gets a 403.

    ``Origin`` is the browser's word; without it, ``Referer`` (the page that sent the request) is. Without either,
    the client is no browser (curl, a script), and cross-site forgery needs a browser.
    """
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site == "cross-site" or (site == "same-site" and (origin is None or not is_other_server(origin))):
        raise BadInput("cross-site request refused: only the sandbox's own pages may send", 403)
    for header in ("Origin", "Referer"):
        sender = request.headers.get(header)
        if sender is not None:
            if not is_own_origin(sender):
                raise BadInput(f"cross-site request refused: {header.lower()} {sender!r} is not this sandbox", 403)
            return


def is_own_origin(url: str) -> bool:
    """Whether ``url`` is on this request's server or the sandbox's other one, by the same scheme and host name."""
    own, theirs = _origin(request.host_url), _origin(url)
    if own is None or theirs is None:
        return False
    ports = {own[2], *current_app.config.get(SERVER_PORTS_KEY, {}).values()}
    return theirs[:2] == own[:2] and theirs[2] in ports


def is_other_server(url: str) -> bool:
    """Whether ``url`` is on the sandbox's other server (not this request's)."""
    return _origin(url) != _origin(request.host_url) and is_own_origin(url)


def other_server_origin(kind: str) -> str | None:
    """The origin of this sandbox's server of ``kind`` as this request's client reaches it (its host name, the
    other port); None when the sandbox runs no such server apart from this one."""
    own = _origin(request.host_url)
    port = current_app.config.get(SERVER_PORTS_KEY, {}).get(kind)
    if own is None or port is None or port == own[2]:
        return None
    host = f"[{own[1]}]" if ":" in own[1] else own[1]
    return f"{own[0]}://{host}:{port}"


def allow_own_origins(response: Response) -> Response:
    """An ``after_request`` hook: a page on the sandbox's other server may read this answer (CORS), with the
    visitor's desk cookie sent along, and a preflight from it learns that it may POST JSON; nobody else is named."""
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin is None or not is_other_server(origin):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"  # the desk cookie rides along
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port (the default one filled in): what makes two URLs the same origin."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is no number
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname, port


def warn_if_exposed(host: str, what: str) -> None:
    """Say loudly, on stderr, when something binds beyond this machine."""
    if not is_loopback(host):
        print(
            f"\n*** WARNING: the {what} is listening on {host}, not on 127.0.0.1. Anyone who can reach this machine "
            "can use it and read its mailbox. Use this only on a network you trust, for a class. ***\n",
            file=sys.stderr,
            flush=True,
        )
