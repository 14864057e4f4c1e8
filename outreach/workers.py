"""The `outreach worker` process: an RQ worker that outlives Redis restarts and data loss.

The database is the source of truth; Redis holds only queues that the reconciler can rebuild.
So a worker must (1) keep running while Redis restarts: RQ retries a lost connection while it
waits for jobs but quits on one anywhere else, so the loop below starts a fresh worker; and
(2) make sure the reconciler job exists, because a Redis that lost its data lost that job too.
It checks every RECONCILE_SECONDS, with RQ's maintenance tasks, which also restart the
scheduler process if a Redis error killed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker

from outreach.observability.logs import JobLogContext
from outreach.queue import connection, get_queue, job_class_for

log = logging.getLogger(__name__)
RESTART_DELAY = 2.0  # seconds between a worker stopped by a Redis error and its successor


def worker_class(base: type[Worker], app: Flask, interval: int) -> type[Worker]:
    """An RQ worker class that checks the reconciler every `interval` seconds."""

    class OutreachWorker(JobLogContext, base):  # type: ignore[valid-type,misc]
        @property
        def dequeue_timeout(self) -> int:
            # Wake up at least once an interval, so maintenance runs on an idle worker too.
            return max(1, min(interval, self.worker_ttl - 15))

        def run_maintenance_tasks(self) -> None:
            super().run_maintenance_tasks()
            from outreach.blasts.pipeline import ensure_reconciler

            with app.app_context():
                ensure_reconciler(interval)

    return OutreachWorker


def build_worker(app: Flask, queues: Sequence[str], simple: bool = False) -> Worker:
    """An RQ worker on these queues, checking the reconciler every RECONCILE_SECONDS."""
    interval = int(app.config.get("RECONCILE_SECONDS") or 60)
    client = connection(app)
    cls = worker_class(SimpleWorker if simple else Worker, app, interval)
    return cls([get_queue(name, client) for name in queues], connection=client,
               job_class=job_class_for(app), maintenance_interval=interval)


def run_worker(app: Flask, queues: Sequence[str], burst: bool = False,
               with_scheduler: bool = True, simple: bool = False, **work: Any) -> None:
    """Work until asked to stop; after a Redis outage, start a fresh worker and carry on."""
    while True:
        worker = build_worker(app, queues, simple)
        try:
            worker.work(burst=burst, with_scheduler=with_scheduler, **work)
        except RedisError as exc:  # raised by teardown, when Redis is still down
            log.warning("worker stopped on a Redis error: %s", exc)
        # A signal (or `rq shutdown`) sets the shutdown date; an outage only ends work().
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return
        log.warning("worker stopped unexpectedly (Redis gone?); starting again in %.0f s",
                    RESTART_DELAY)
        time.sleep(RESTART_DELAY)
