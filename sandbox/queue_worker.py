"""The queue's consumer as a process of its own:

    SANDBOX_QUEUE_URL=redis://127.0.0.1:6379/0 SANDBOX_MAIL_SERVER=127.0.0.1:1025 \\
        huey_consumer sandbox.queue_worker.huey --workers 4 --worker-type thread

It builds the app from the same ``SANDBOX_*`` settings as the web sandbox (start that one with
``--queue-consumer external`` and the same queue URL), so both see the same Huey instance and task. Before the
consumer starts, it queues again what a killed consumer had taken (see ``sandbox.outbox``): run one consumer
process per queue, or a second one starting could take back a task the first is sending.

Give it the web sandbox's trace store too (``SANDBOX_STORE_URL``, or the same Redis queue URL): its workers' events
complete the traces the web process started, and the fate of each email reaches the web process's ``/api/stats``.
"""

from __future__ import annotations

from sandbox import create_app

app = create_app()
mail_queue = app.extensions["sandbox.queue"]
tracer = app.extensions["sandbox.tracer"]
if tracer.store is not None:
    # The web process started each trace: this one adds its workers' events, and tells it each email's fate.
    tracer.adopt = True
    app.extensions["sandbox.delivery"].on_settled = tracer.store.write_outcome
mail_queue.recover(app.extensions["sandbox.delivery"])
huey = mail_queue.huey
