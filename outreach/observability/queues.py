"""What the queues and workers are doing, read from RQ's own Redis keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from outreach.queue import QUEUES

REGISTRIES = {"started": StartedJobRegistry, "failed": FailedJobRegistry,
              "scheduled": ScheduledJobRegistry}


@dataclass
class FailedJob:
    """A job in a failed registry, with the last line of its exception."""

    id: str
    queue: str
    description: str
    ended_at: datetime | None
    error: str


def queue_counts(client: Redis) -> dict[str, dict[str, int]]:
    """Per queue: jobs waiting, started, failed and scheduled (one pipelined round trip)."""
    pipe = client.pipeline(transaction=False)
    for name in QUEUES:
        queue = Queue(name, connection=client)
        pipe.llen(queue.key)
        for registry in REGISTRIES.values():
            # ZCARD, not .count: a scrape must not run RQ's registry clean-up (workers do).
            pipe.zcard(registry(queue=queue).key)
    values = iter(pipe.execute())
    return {name: {"waiting": int(next(values)),
                   **{kind: int(next(values)) for kind in REGISTRIES}} for name in QUEUES}


def workers(client: Redis) -> list[dict[str, Any]]:
    """Live workers: name, queues, state, current job, last heartbeat, jobs done and failed."""
    now = datetime.now(UTC)
    out = []
    for worker in sorted(Worker.all(connection=client), key=lambda w: w.name):
        heartbeat = worker.last_heartbeat
        if heartbeat is not None and heartbeat.tzinfo is None:
            heartbeat = heartbeat.replace(tzinfo=UTC)
        out.append({
            "name": worker.name, "queues": worker.queue_names(), "state": worker.get_state(),
            "current_job": worker.get_current_job_id(), "hostname": worker.hostname,
            "pid": worker.pid, "last_heartbeat": heartbeat,
            "seconds_since_heartbeat": (now - heartbeat).total_seconds() if heartbeat else None,
            "successful": worker.successful_job_count, "failed": worker.failed_job_count,
        })
    return out


def failed_jobs(client: Redis, limit: int = 50) -> list[FailedJob]:
    """The most recent failed jobs of every queue, newest first, with their error summary."""
    found: list[tuple[float, str, str]] = []
    for name in QUEUES:
        key = FailedJobRegistry(queue=Queue(name, connection=client)).key
        for job_id, score in client.zrevrange(key, 0, limit - 1, withscores=True):
            found.append((score, name, job_id.decode()))
    found.sort(reverse=True)
    found = found[:limit]
    jobs = Job.fetch_many([job_id for _, _, job_id in found], connection=client)
    out = []
    for (_, name, job_id), job in zip(found, jobs, strict=True):
        if job is None:
            continue  # expired between the two reads
        result = job.latest_result()
        exc = (result.exc_string if result is not None else None) or ""
        lines = [line for line in exc.strip().splitlines() if line.strip()]
        ended = job.ended_at
        if ended is not None and ended.tzinfo is None:
            ended = ended.replace(tzinfo=UTC)
        error = lines[-1] if lines else "(no exception recorded)"
        out.append(FailedJob(id=job_id, queue=name, description=job.description or "",
                             ended_at=ended, error=error))
    return out


def worker_count(client: Redis) -> int:
    """How many workers are registered and alive (their key has not expired)."""
    return len(Worker.all(connection=client))


def requeue_failed(client: Redis, job_id: str) -> str | None:
    """Put a failed job back on its queue; return the queue's name, or None if not failed."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError

    for name in QUEUES:
        registry = FailedJobRegistry(queue=Queue(name, connection=client))
        if job_id in registry:
            try:
                registry.requeue(job_id)
            except (InvalidJobOperation, NoSuchJobError):
                return None  # requeued or expired meanwhile
            return name
    return None
