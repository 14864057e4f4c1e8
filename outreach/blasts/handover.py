"""SMS batches that hand over to the next one without a gap in the sending.

A text batch sends through a pool of threads paced by the shared rate limiter. When a batch job
ends and the next one starts (job bookkeeping, claim, contacts), nobody sends for a second or
two; when every worker reaches that point together, as workers started together and sharing one
rate do, the limiter's slots of that second are lost and the rate a carrier sees dips. So a text
batch job claims the next queued range of its blast while its last sends are still in flight
and feeds it to the same pool: for 30 to 90 s when texts are not rate-limited (so other jobs
get their turn), for most of the job's RQ timeout when they are; a random share of it, so
workers started together do not stop together. Then it ends and leaves the rest to the queued
jobs. A queued job whose rows were taken this way finds nothing to claim and ends at once.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import sqlalchemy as sa
from rq import get_current_job

from outreach import db as database
from outreach.blasts import pipeline, sending
from outreach.blasts.models import ACTIVE, Blast, BlastStatus, Message, MessageStatus
from outreach.blasts.windows import roll_expired_windows
from outreach.channels.base import SendResult
from outreach.channels.errors import ChannelConfigError
from outreach.db import utcnow

CHAIN_SECONDS = 60.0  # how long one job keeps taking further ranges (x 0.5 to 1.5)
# A rate-limited blast gains nothing from taking turns with other jobs (they share the limiter)
# and loses a little rate at every job's end: its jobs keep going for most of their RQ timeout,
# as long as one more range (at the whole rate, alone) still fits in it.
LIMITED_SHARE = 0.75

Batch = tuple[int, int, list[Any], list["Future[tuple[Any, SendResult]]"]]


def send_sms_chain(blast: Blast, first_id: int, last_id: int, rows: list[Any]) -> int:
    """Send claimed rows, then the blast's next ranges, without draining the pool in between."""
    sender = sending.SmsSender(blast)
    until = time.monotonic() + _chain_seconds(sender)
    lead = 2 * sender.concurrency  # claim the next range when this many sends are left
    attempted = 0
    with ThreadPoolExecutor(max_workers=sender.concurrency) as pool:
        current: Batch | None = _submit(pool, sender, first_id, last_id, rows)
        while current is not None:
            first, last, claimed, futures = current
            following = None
            if time.monotonic() < until:
                if len(futures) > lead:
                    wait([futures[-lead]])
                following = _claim_next(pool, sender, blast.id, last)
            try:
                results = _results(blast, claimed, futures)
            except ChannelConfigError:
                if following is not None:  # its sends fail the same way: record, put back
                    _results(blast, following[2], following[3], errors_ok=True)
                raise
            attempted += len(results)
            pipeline._reschedule_rest(blast.id, first, last)
            sending.check_circuit_breaker(blast.id, first, last)
            if following is not None and not _still_sending(blast.id):
                _withdraw(blast, following)  # paused by the breaker or by staff meanwhile
                following = None
            current = following
    pipeline.finish_if_done(blast.id)
    return attempted


def _chain_seconds(sender: sending.SmsSender) -> float:
    """How long this job may keep claiming further ranges (at random within a span, so workers
    started together do not end together)."""
    rate = sender.limiter.rate if sender.limiter is not None else 0.0
    if not rate:
        return CHAIN_SECONDS * random.uniform(0.5, 1.5)
    job = get_current_job()
    timeout = float(job.timeout or 1800) if job is not None else 1800.0
    budget = timeout * LIMITED_SHARE - pipeline.BATCH_SIZE / rate
    return max(0.0, budget * random.uniform(0.6, 1.0))


def _submit(pool: ThreadPoolExecutor, sender: sending.SmsSender, first: int, last: int,
            rows: list[Any]) -> Batch:
    send = sender.sender_for(rows)
    return first, last, rows, [pool.submit(send, row) for row in rows]


def _results(blast: Blast, rows: list[Any], futures: list[Future[tuple[Any, SendResult]]],
             errors_ok: bool = False) -> list[tuple[Any, SendResult]]:
    """Record the finished sends; on refused settings put the rest back and pause the blast."""
    results, unsent, error = [], [], None
    for row, future in zip(rows, futures, strict=True):
        try:
            results.append(future.result())
        except ChannelConfigError as exc:
            error, unsent = error or exc, [*unsent, row.id]
    sending.record_results(blast, results)
    if error is not None:
        pipeline.release(blast.id, unsent, f"Paused: the provider refused our configuration "
                         f"({error}). Fix the settings, then resume.")
        if not errors_ok:
            raise error
    return results


def _still_sending(blast_id: int) -> bool:
    session = database.session()
    status = session.scalar(sa.select(Blast.status).where(Blast.id == blast_id))
    session.commit()
    return status in ACTIVE  # preparing too: the chunks written are sent meanwhile


def _withdraw(blast: Blast, batch: Batch) -> None:
    """Take back the sends of a range that have not started; record those that have."""
    _, _, rows, futures = batch
    back = [row.id for row, future in zip(rows, futures, strict=True) if future.cancel()]
    started = [(row, future) for row, future in zip(rows, futures, strict=True)
               if not future.cancelled()]
    _results(blast, [r for r, _ in started], [f for _, f in started], errors_ok=True)
    # The blast is paused already, so release() keeps its reason and only requeues the rows.
    pipeline.release(blast.id, back, "Paused")
    session = database.session()
    if session.scalar(sa.select(Blast.status).where(Blast.id == blast.id)) == \
            BlastStatus.CANCELED.value:  # canceled: what it had not sent is canceled too
        session.execute(sa.update(Message).where(
            Message.id.in_(back), Message.status == MessageStatus.QUEUED.value)
            .values(status=MessageStatus.CANCELED.value, updated_at=utcnow())
            .execution_options(synchronize_session=False))
    session.commit()


def _claim_next(pool: ThreadPoolExecutor, sender: sending.SmsSender, blast_id: int,
                after: int) -> Batch | None:
    """Claim the blast's next range of queued, due rows (after `after` first), if it still sends."""
    if not _still_sending(blast_id):
        return None  # paused or canceled meanwhile: stop at this range
    session = database.session()
    # Another worker may claim the same rows first (both looked at once): look again then.
    for _ in range(5):
        now = utcnow()
        due = sa.and_(Message.blast_id == blast_id,
                      Message.status == MessageStatus.QUEUED.value,
                      sa.or_(Message.not_before.is_(None), Message.not_before <= now))
        ids: list[int] = []
        for lower in (after, 0):
            ids = list(session.scalars(sa.select(Message.id).where(due, Message.id > lower)
                                       .order_by(Message.id).limit(pipeline.BATCH_SIZE)))
            session.commit()
            if ids:
                break
        if not ids:
            return None  # nothing left that is due
        first, last = ids[0], ids[-1]
        blast = session.get(Blast, blast_id)
        assert blast is not None
        roll_expired_windows(session, blast, first, last)
        # Consent is checked again in the claim, as for any batch.
        rows = pipeline.claim(blast_id, first, last, blast.channel)
        if rows:
            return _submit(pool, sender, first, last, rows)
        after = last
    return None
