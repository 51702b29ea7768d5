"""A small HTTP client for the demo, the benchmarks and the tests: one JSON call, timed on the client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    started_ns: int
    elapsed_ms: float


def call(
    url: str,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request and return the status and JSON body, whatever the status (4xx and 5xx included)."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    started = time.perf_counter_ns()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    return Reply(status, json.loads(payload) if payload else {}, started, elapsed_ms)
