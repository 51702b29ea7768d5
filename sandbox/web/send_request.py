"""Read and check what a client asks ``POST /send-email/<mode>`` to send, before anything reaches SMTP."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Request, request, url_for
from werkzeug.exceptions import BadRequest, ClientDisconnected, HTTPException

from sandbox.trace.tracer import current_binding

MAX_FIELD_CHARS = 1000
DEFAULTS = {"to": "student@example.com", "subject": "Welcome to the concurrency sandbox", "name": "Student"}
# A comparison id ties the sends of one comparison ("Send both", the demo) together; it is never part of the email.
COMPARISON = re.compile(r"[A-Za-z0-9-]{1,64}")


class BadInput(HTTPException):
    """A 4xx answer whose description tells the client what to fix."""

    def __init__(self, description: str, code: int = 400) -> None:
        super().__init__(description)
        self.code = code


@dataclass(frozen=True)
class SendRequest:
    to: str
    subject: str
    name: str
    comparison: str | None = None


def request_fields() -> dict[str, str]:
    """The welcome email's fields from this send request, checked (BadInput names the first problem), with the link
    the email carries. A ``comparison`` id ties this send's trace to the others of its comparison."""
    fields = parse_send_request(request)
    binding = current_binding()
    if fields.comparison and binding is not None:
        binding.tracer.join_comparison(binding.trace_id, fields.comparison)
    return {
        "to": fields.to,
        "subject": fields.subject,
        "name": fields.name,
        "link": url_for("sandbox.index", _external=True),
    }


def parse_send_request(request: Request) -> SendRequest:
    """The checked fields, or BadInput naming the first problem found."""
    fields = {**DEFAULTS, **_read_fields(request)}
    comparison = fields.pop("comparison", None)
    if comparison is not None and not (isinstance(comparison, str) and COMPARISON.fullmatch(comparison)):
        raise BadInput("'comparison' must be 1 to 64 letters, digits or dashes")
    for key, value in fields.items():
        if not isinstance(value, str):
            raise BadInput(f"'{key}' must be a string")
        if len(value) > MAX_FIELD_CHARS:
            raise BadInput(f"'{key}' is longer than {MAX_FIELD_CHARS} characters", 413)
        check_text(key, value)
    try:
        address = validate_email(fields["to"].strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        raise BadInput(f"'to' is not a valid email address: {err}") from err
    return SendRequest(
        to=address.normalized,
        subject=fields["subject"].strip() or DEFAULTS["subject"],
        name=fields["name"].strip() or DEFAULTS["name"],
        comparison=comparison,
    )


# Characters a field may not hold. Line and paragraph breaks of every kind (all that ``str.splitlines()`` splits on,
# which Python's email package may fold into a header break): a subject holding one could add headers or end the
# header block. Other control characters, because no mail client shows them. Lone surrogates, because they are not
# text at all and cannot be encoded for the wire.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate (not valid Unicode)",
}


def check_text(key: str, value: str) -> None:
    """Refuse a field holding a character that could break the email's headers or cannot be sent at all."""
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category in REFUSED_CATEGORIES and char != "\t":
            raise BadInput(
                f"'{key}' contains {REFUSED_CATEGORIES[category]} (U+{ord(char):04X}) at position {index}: "
                "line breaks could inject email headers, and control characters cannot be shown"
            )


def unreadable(err: BadRequest) -> BadInput:
    """The 400 for a body that could not be read, saying so when it was cut short."""
    if isinstance(err, ClientDisconnected):
        return BadInput("the body ended before its Content-Length, so nothing was sent")
    return BadInput(f"the body could not be read: {err.description}")


def read_json(request: Request) -> Any:
    """The request's JSON body; BadInput for a body that is not JSON, nested too deeply to parse, or not text."""
    try:
        return request.get_json(silent=False)
    except RecursionError as err:
        raise BadInput("the JSON body is nested too deeply") from err
    except BadRequest as err:
        raise unreadable(err) from err


def _read_fields(request: Request) -> dict[str, object]:
    try:
        if request.is_json:
            body = read_json(request) if request.content_length != 0 else {}
            if not isinstance(body, dict):
                raise BadInput('the JSON body must be an object, e.g. {"to": "student@example.com"}')
        elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            body = request.form.to_dict(flat=False)
            repeated = sorted(key for key, values in body.items() if len(values) > 1)
            if repeated:
                raise BadInput(f"each field may appear once; repeated: {', '.join(repeated)}")
            body = {key: values[0] for key, values in body.items()}
        elif request.get_data(cache=True):
            raise BadInput("send the fields as JSON (application/json) or as a form")
        else:
            body = {}
    except BadRequest as err:  # malformed JSON or form; BadInput and 413 pass through untouched
        raise unreadable(err) from err
    allowed = [*DEFAULTS, "comparison"]
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return body
