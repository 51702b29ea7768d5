"""The queue's consumer as a process of its own:

    SANDBOX_QUEUE_URL=redis://127.0.0.1:6379/0 SANDBOX_MAIL_SERVER=127.0.0.1:1025 \\
        huey_consumer sandbox.queue_worker.huey --workers 4 --worker-type thread

It builds the app from the same ``SANDBOX_*`` settings as the web sandbox (start that one with
``--queue-consumer external`` and the same queue URL), so both see the same Huey instance and task. Before the
consumer starts, it queues again what a killed consumer had taken (see ``sandbox.outbox``): run one consumer
process per queue, or a second one starting could take back a task the first is sending.
"""

from __future__ import annotations

from sandbox import create_app

app = create_app()
mail_queue = app.extensions["sandbox.queue"]
mail_queue.recover(app.extensions["sandbox.delivery"])
huey = mail_queue.huey
