"""What every kind of server writes on a request's environ, so the app knows how the server had it.

A trace's own clock starts only when Flask gets the request; these stamps say what came before: when the server had
the request (``ARRIVED_NS``, ``time.perf_counter_ns()``), its id in the app's requests log, which kind of server had
it and which thread accepted it. The pooled server adds the size of its pool.
"""

from __future__ import annotations

ARRIVED_NS = "sandbox.arrived_ns"
REQUEST_ID = "sandbox.request_id"
SERVER_KIND = "sandbox.server"  # "threaded", "single" or "pooled": which server really had the request
ACCEPTOR = "sandbox.arrived_thread"  # (name, native id) of the thread that accepted it
POOL_THREADS = "sandbox.pool_threads"  # the pooled server's number of threads

READ_TIMEOUT_S = 5.0  # how long a request's head, then its body, may take to arrive
STOP_POLL_S = 0.1  # how often a server's accepting thread looks whether stop() was asked for

Arrival = tuple[int, int]  # (request id in the log, arrived_ns)
