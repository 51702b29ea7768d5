"""The queue's consumer as a process of its own:

    SANDBOX_QUEUE_URL=redis://127.0.0.1:6379/0 SANDBOX_MAIL_SERVER=127.0.0.1:1025 \\
        huey_consumer sandbox.queue_worker.huey --workers 4 --worker-type thread

It builds the app from the same ``SANDBOX_*`` settings as the web sandbox (start that one with
``--queue-consumer external`` and the same queue URL), so both see the same Huey instance and task.
"""

from __future__ import annotations

from sandbox import create_app

app = create_app()
huey = app.extensions["sandbox.queue"].huey
