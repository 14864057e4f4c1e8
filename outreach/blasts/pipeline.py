"""The send pipeline's jobs: prepare a blast in SQL, then send it in claimed batches.

1. `prepare_blast` writes every message row with INSERT ... SELECT (consent and suppression
   joins included), one per chunk of contacts, and enqueues each chunk's batch jobs (id ranges
   of at most 1000) as soon as it is committed: the workers send while the rest is written.
2. `send_batch` claims its due rows atomically (queued -> sending, committed before any
   provider call), sends them, and records each outcome; a retried or duplicated job finds
   nothing left to claim, so nobody is messaged twice.
3. `reconcile` (every minute) marks rows stuck in "sending" after a crash as "unknown" (never
   resent) and re-enqueues batches whose jobs vanished with Redis.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from flask import current_app
from rq.job import Job, JobStatus

from outreach import db as database
from outreach import key_checks
from outreach.blasts import sending
from outreach.blasts.audience import address_column, audience_condition
from outreach.blasts.models import ACTIVE, Blast, BlastStatus, Link, Message, MessageStatus
from outreach.blasts.windows import apply_windows, roll_expired_windows
from outreach.channels.base import Outcome, SendResult
from outreach.channels.errors import ChannelConfigError
from outreach.contacts.models import Contact, Suppression
from outreach.db import insert_ignore, utcnow
from outreach.gc_pauses import no_gc_pauses
from outreach.queue import enqueue, enqueue_many, get_queue, redis

log = logging.getLogger(__name__)
BATCH_SIZE = 1000


def start_blast(blast: Blast) -> None:
    """Queue the preparation of a launched blast, now or at its send time."""
    if blast.status == BlastStatus.SCHEDULED:
        enqueue("prepare", prepare_blast, blast.id, at=blast.send_at,
                job_id=f"prepare-{blast.id}-{int(blast.send_at.timestamp())}")
    else:
        enqueue("prepare", prepare_blast, blast.id, job_id=f"prepare-{blast.id}")


def continue_blast(blast: Blast) -> None:
    """Queue what a resumed blast still has to do: its preparation (which queues the batches of
    what it wrote before the pause when done), or its queued batches."""
    if blast.status == BlastStatus.PREPARING:
        start_blast(blast)  # paused before its audience was prepared
    else:
        enqueue_batches(blast.id, only_queued=True)


# Contact ids per chunk of a preparation: each chunk is one INSERT ... SELECT, committed with
# the blast's mark, after which its batches go to the workers while the next chunk is written.
PREPARE_CHUNK = 50_000


def prepare_blast(blast_id: int) -> None:
    """Write the blast's messages for its whole audience in SQL, in chunks of contacts, and
    enqueue each chunk's batches as soon as it is committed."""
    session = database.session()
    blast = session.get(Blast, blast_id)
    if blast is None or blast.status not in (BlastStatus.SCHEDULED, BlastStatus.PREPARING):
        return  # paused, canceled or already prepared: nothing to do
    if (blast.status == BlastStatus.SCHEDULED and blast.send_at is not None
            and blast.send_at > utcnow() + timedelta(seconds=5)):
        return  # a job left from an earlier send time: the current one is queued for later
    blast.status = BlastStatus.PREPARING.value
    session.commit()
    dialect = session.get_bind().dialect.name
    now = utcnow()
    links = sending.compiled_email(blast).links if blast.channel == "email" else ()
    if links:
        session.execute(insert_ignore(Link.__table__, dialect),
                        [{"blast_id": blast.id, "position": i, "url": url}
                         for i, url in enumerate(links)])
        session.commit()
    # Foreign keys checked once per chunk instead of once per row, where the role may.
    keys_once = key_checks.may_skip_triggers(session, ("messages",))
    session.commit()
    fresh: bool | None = None  # whether this job writes into no existing row of the blast
    analyzed: int | None = None
    while True:
        # Hold the blast row while a chunk is written: a duplicated prepare job waits here and
        # then goes on from the mark; pause and cancel take effect between chunks.
        status, mark = session.execute(sa.select(Blast.status, Blast.prepared_through)
                                       .where(Blast.id == blast_id).with_for_update()).one()
        if status != BlastStatus.PREPARING:
            session.rollback()
            return
        if fresh is None:
            # A plain INSERT is much cheaper than ON CONFLICT's speculative insertion, and safe
            # where no row can exist: past the mark of a preparation that started on an empty
            # blast. A blast prepared before (resumed, prepared again) or a preparation taken
            # over from another job skips the rows it already has.
            fresh = mark is None and session.scalar(
                sa.select(Message.id).where(Message.blast_id == blast_id).limit(1)) is None
        after = int(mark or 0)
        top = session.scalar(sa.select(sa.func.max(Contact.id))) or 0
        if after >= top:
            break
        through = min(after + PREPARE_CHUNK, top)
        try:
            ids = _write_chunk(session, blast, (after, through), now, fresh, dialect,
                               keys_once)
        except key_checks.KeyGone:
            session.rollback()  # a contact erased meanwhile: write the chunk again
            continue
        # The total grows with each chunk, in its transaction (the counts derive the largest
        # status from it); a preparation over existing rows counts them all again.
        total: Any = (len(ids) if mark is None else Blast.total + len(ids)) if fresh else (
            sa.select(sa.func.count()).select_from(Message)
            .where(Message.blast_id == blast_id).scalar_subquery())
        session.execute(sa.update(Blast).where(Blast.id == blast_id).values(
            prepared_through=through, total=total))
        session.commit()
        if dialect == "postgresql" and analyzed is None and ids:
            # The workers claim this chunk's rows right away, by id range: with statistics that
            # have not seen the new rows the planner would walk all the blast's queued rows
            # through (blast_id, status) for each claim instead.
            session.execute(sa.text("ANALYZE messages"))
            session.commit()
            analyzed = through
        if ids and fresh:
            ranges = [(ids[i], ids[min(i + BATCH_SIZE, len(ids)) - 1])
                      for i in range(0, len(ids), BATCH_SIZE)]
            enqueue_many(blast.channel, send_batch, [(blast_id, a, b) for a, b in ranges],
                         job_ids=[batch_job_id(blast_id, a) for a, _ in ranges])
    # Every chunk is written (the row is still locked): the blast moves on to sending.
    values: dict[str, Any] = {"status": BlastStatus.SENDING.value, "prepared_through": None}
    if not fresh:
        values["total"] = sa.select(sa.func.count()).select_from(Message).where(
            Message.blast_id == blast_id).scalar_subquery()
    session.execute(sa.update(Blast).where(Blast.id == blast_id).values(**values))
    session.commit()
    if dialect == "postgresql":
        session.execute(sa.text("ANALYZE messages"))  # many new rows: fresh statistics
        session.commit()
    if not fresh:  # rows written before this job (or by another one) may have no batch queued
        enqueue_batches(blast_id, only_queued=True)
    finish_if_done(blast_id)


def _write_chunk(session: Any, blast: Blast, contacts: tuple[int, int], now: Any, fresh: bool,
                 dialect: str, keys_once: bool = False) -> list[int]:
    """INSERT ... SELECT the messages of one range of contact ids; their ids, in order.

    keys_once: the foreign keys are checked once for the chunk instead of by a trigger per
    row (`outreach.key_checks`): the blast row is held FOR UPDATE by the caller, and the
    contacts written are locked set-based right after the INSERT (KeyGone if one of them was
    erased meanwhile: the chunk must be written again).
    """
    insert = (sa.insert(Message.__table__) if fresh
              else insert_ignore(Message.__table__, dialect))
    if keys_once:
        key_checks.skip_row_triggers(session)
    ids = sorted(session.scalars(insert.from_select(
        ["blast_id", "contact_id", "address", "status", "attempts", "updated_at"],
        sa.select(sa.literal(blast.id), Contact.id, address_column(blast.channel),
                  sa.literal(MessageStatus.QUEUED.value), sa.literal(0),
                  sa.literal(now, Message.updated_at.type))
        .where(audience_condition(session, blast, contacts)).order_by(Contact.id))
        .returning(Message.__table__.c.id)))
    if keys_once:
        key_checks.restore_row_triggers(session)
        if ids:
            _lock_contacts(session, blast.id, (ids[0], ids[-1]), contacts)
    if ids:
        apply_windows(session, blast, now, (ids[0], ids[-1]))
    return ids


def _lock_contacts(session: Any, blast_id: int, messages: tuple[int, int],
                   contacts: tuple[int, int]) -> None:
    """Lock the contacts of a chunk's new messages against erasure until commit, as the
    foreign key's per-row check would have; KeyGone if some were erased meanwhile (a contact
    erased after this waits for the commit, and its messages then lose their reference)."""
    key_checks.lock_keys(
        session, "contacts",
        "SELECT contact_id FROM messages WHERE blast_id = :blast AND id BETWEEN :low AND :high",
        within="t.id > :after AND t.id <= :through", blast=blast_id, low=messages[0],
        high=messages[1], after=contacts[0], through=contacts[1])


def batch_ranges(blast_id: int, only_queued: bool = False) -> list[tuple[int, int]]:
    """(first id, last id) of consecutive groups of at most 1000 of a blast's messages."""
    session = database.session()
    if not only_queued:
        # One preparation numbers its rows consecutively: the ranges follow from the ends.
        low, high, count = session.execute(
            sa.select(sa.func.min(Message.id), sa.func.max(Message.id), sa.func.count())
            .where(Message.blast_id == blast_id)).one()
        if count and high - low + 1 == count:
            return [(a, min(a + BATCH_SIZE - 1, high))
                    for a in range(int(low), int(high) + 1, BATCH_SIZE)]
    numbered = sa.select(
        Message.id, ((sa.func.row_number().over(order_by=Message.id) - 1) // BATCH_SIZE)
        .label("n")).where(Message.blast_id == blast_id)
    if only_queued:
        numbered = numbered.where(Message.status == MessageStatus.QUEUED.value)
    sub = numbered.subquery()
    rows = session.execute(sa.select(sa.func.min(sub.c.id), sa.func.max(sub.c.id))
                           .group_by(sub.c.n).order_by(sa.func.min(sub.c.id)))
    return [(int(a), int(b)) for a, b in rows]


def enqueue_batches(blast_id: int, only_queued: bool = False) -> int:
    """Enqueue one send job per id range, all in one Redis round trip."""
    session = database.session()
    blast = session.get(Blast, blast_id)
    assert blast is not None
    ranges = batch_ranges(blast_id, only_queued)
    enqueue_many(blast.channel, send_batch, [(blast_id, a, b) for a, b in ranges],
                 job_ids=[batch_job_id(blast_id, a) for a, _ in ranges])
    return len(ranges)


def batch_job_id(blast_id: int, first_id: int) -> str:
    """The RQ job id of a batch, so a reconciler can tell whether it is still queued."""
    return f"send-{blast_id}-{first_id}"


OPTED_OUT = "opted out or suppressed before sending"


class Claimed(list[Any]):
    """The rows a claim moved to sending (a list of rows), and how many it canceled."""

    canceled = 0


def _may_send(channel: str, row: Any) -> Any:
    """Whether the message `row` (a messages table or alias) may go out now: its contact still
    consents to the channel at that address, and the address is not suppressed."""
    address = address_column(channel)
    state = Contact.email_consent if channel == "email" else Contact.sms_consent
    # Scalar subqueries, one index lookup per row of the range: EXISTS under an OR may be
    # planned as a hash of every contact or suppression, a cost that grows with the whole
    # database at every batch.
    consenting = (sa.select(sa.and_(state == "granted", address == row.c.address))
                  .where(Contact.id == row.c.contact_id).scalar_subquery())
    suppressed = (sa.select(sa.literal(1)).where(Suppression.channel == channel,
                                                 Suppression.address == row.c.address)
                  .limit(1).scalar_subquery())
    return sa.and_(consenting.is_(True), suppressed.is_(None))


def claim(blast_id: int, first_id: int, last_id: int, channel: str) -> Claimed:
    """Atomically move this range's due rows from queued to sending and return them.

    Consent is checked in the same statement: a due row whose contact opted out (on the
    blast's channel) or whose address was suppressed since preparation is canceled instead
    (counted in the result's `canceled`, not returned).
    """
    session = database.session()
    now = utcnow()
    table = Message.__table__

    def due(t: Any) -> Any:
        return sa.and_(t.c.blast_id == blast_id, t.c.id.between(first_id, last_id),
                       t.c.status == MessageStatus.QUEUED.value,
                       sa.or_(t.c.not_before.is_(None), t.c.not_before <= now))

    # The rows to take, with the consent verdict computed once per row: joined as FROM.
    row = table.alias("r")
    picked = sa.select(row.c.id, _may_send(channel, row).label("ok")).where(due(row))
    if session.get_bind().dialect.name == "postgresql":
        # SKIP LOCKED lets a duplicated job pass over rows another job is claiming (SQLite
        # runs one writer at a time: the UPDATE itself is atomic there).
        picked = picked.with_for_update(skip_locked=True, of=row)
    taken = picked.subquery("taken")
    # The range again outside the subquery: without it PostgreSQL may hash-join the taken
    # ids against a scan of every message.
    target = sa.and_(due(table), table.c.id == taken.c.id)
    ok = taken.c.ok
    values = {"status": sa.case((ok, MessageStatus.SENDING.value),
                                else_=MessageStatus.CANCELED.value),
              "claimed_at": sa.case((ok, sa.literal(now, table.c.claimed_at.type)),
                                    else_=table.c.claimed_at),
              "attempts": table.c.attempts + sa.case((ok, 1), else_=0),
              "error": sa.case((ok, table.c.error), else_=OPTED_OUT),
              "updated_at": now}
    # Core on the session's connection: no ORM bookkeeping for the 1000 rows returned.
    rows = session.connection().execute(
        table.update().where(target).values(**values)
        .returning(table.c.id, table.c.contact_id, table.c.address, table.c.attempts,
                   table.c.status)).all()
    database.commit_durably(session)  # the claim is on disk before any provider call
    sending_ = MessageStatus.SENDING.value
    claimed = Claimed(sorted((r for r in rows if r.status == sending_), key=itemgetter(0)))
    claimed.canceled = len(rows) - len(claimed)
    return claimed


def send_batch(blast_id: int, first_id: int, last_id: int) -> int:
    """Send the due messages of one id range of a blast; returns how many were attempted."""
    session = database.session()
    blast = session.get(Blast, blast_id)
    if blast is None or blast.status not in ACTIVE:  # preparing: a chunk is written, send it
        return 0  # paused or canceled: resume re-enqueues what is left
    if blast.window_start or blast.channel == "sms":  # only windows and quiet hours expire
        roll_expired_windows(session, blast, first_id, last_id)
    rows = claim(blast_id, first_id, last_id, blast.channel)
    if rows and blast.channel == "sms":
        from outreach.blasts import handover  # it builds on this module

        return handover.send_sms_chain(blast, first_id, last_id, rows)
    with no_gc_pauses():
        results: list[tuple[Any, SendResult]] = []
        if rows:
            try:
                results = sending.send_rows(blast, rows)
            except ChannelConfigError as exc:
                # Nothing left for the provider: put the rows back and stop until someone
                # fixes the settings, then fail the job so RQ records why.
                release(blast_id, [r.id for r in rows], f"Paused: the provider refused our "
                        f"configuration ({exc}). Fix the settings, then resume.")
                raise
        # A claim that took every id of the range (ids are unique) leaves in it only the rows
        # the provider asked to retry, and the range's finished messages are this batch's:
        # both follow from the outcomes, without reading the range again.
        whole = len(rows) + rows.canceled == last_id - first_id + 1
        if not whole or any(result.outcome is Outcome.RETRY for _, result in results):
            _reschedule_rest(blast_id, first_id, last_id)
        if whole:
            sending.check_breaker_outcomes(blast, results)
        else:
            sending.check_circuit_breaker(blast_id, first_id, last_id)
    finish_if_done(blast_id)
    return len(rows)


def release(blast_id: int, message_ids: list[int], reason: str) -> None:
    """Return claimed rows to the queue and pause the blast with a reason."""
    session = database.session()
    session.rollback()
    session.execute(sa.update(Message).where(Message.id.in_(message_ids),
                                             Message.status == MessageStatus.SENDING.value)
                    .values(status=MessageStatus.QUEUED.value, claimed_at=None)
                    .execution_options(synchronize_session=False))
    session.execute(sa.update(Blast).where(Blast.id == blast_id, Blast.status.in_(ACTIVE))
                    .values(status=BlastStatus.PAUSED.value, status_reason=reason))
    session.commit()


def _reschedule_rest(blast_id: int, first_id: int, last_id: int) -> None:
    """Queue this batch again for its rows that are not due yet (windows, retries)."""
    session = database.session()
    pending, nxt = session.execute(sa.select(sa.func.count(), sa.func.min(Message.not_before))
                                   .where(Message.blast_id == blast_id,
                                          Message.id.between(first_id, last_id),
                                          Message.status == MessageStatus.QUEUED.value)).one()
    if not pending:
        return
    at = max(nxt or utcnow(), utcnow() + timedelta(seconds=1))
    blast = session.get(Blast, blast_id)
    assert blast is not None
    enqueue(blast.channel, send_batch, blast_id, first_id, last_id, at=at,
            job_id=f"{batch_job_id(blast_id, first_id)}-at{int(at.timestamp())}")


def finish_if_done(blast_id: int) -> bool:
    """Mark a sending blast done once no message is queued or being sent."""
    session = database.session()
    open_rows = sa.exists().where(Message.blast_id == blast_id, Message.status.in_(
        [MessageStatus.QUEUED.value, MessageStatus.SENDING.value]))
    done = session.execute(sa.update(Blast).where(
        Blast.id == blast_id, Blast.status == BlastStatus.SENDING.value, ~open_rows)
        .values(status=BlastStatus.DONE.value, finished_at=utcnow(), status_reason=None)
    ).rowcount
    session.commit()
    return bool(done)


def reconcile() -> dict[str, int]:
    """Repair what crashes leave: stale claims become unknown; vanished batches are requeued."""
    session = database.session()
    stale = utcnow() - timedelta(seconds=current_app.config["SEND_STALE_SECONDS"])
    unknown = session.execute(sa.update(Message).where(
        Message.status == MessageStatus.SENDING.value, Message.claimed_at < stale)
        .values(status=MessageStatus.UNKNOWN.value, updated_at=utcnow(),
                error="the worker stopped while sending; the provider may have it")
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    requeued = 0
    for blast in session.scalars(sa.select(Blast).where(Blast.status.in_(ACTIVE))).all():
        if blast.status == BlastStatus.PREPARING:
            if not _job_alive(f"prepare-{blast.id}"):
                enqueue("prepare", prepare_blast, blast.id, job_id=f"prepare-{blast.id}")
                requeued += 1
            continue
        ranges = batch_ranges(blast.id, only_queued=True)
        retries = _scheduled_retries(blast.channel)
        lost = [(a, b) for a, b in ranges if not _job_alive(batch_job_id(blast.id, a))
                and batch_job_id(blast.id, a) not in retries]
        if lost:
            enqueue_many(blast.channel, send_batch, [(blast.id, a, b) for a, b in lost],
                         job_ids=[batch_job_id(blast.id, a) for a, _ in lost])
            requeued += len(lost)
        finish_if_done(blast.id)
    return {"unknown": int(unknown or 0), "requeued": requeued}


def _job_alive(job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis())
    except Exception:  # noqa: BLE001 - NoSuchJobError and friends: the job is gone
        return False
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED,
                                             JobStatus.SCHEDULED, JobStatus.DEFERRED)


def _scheduled_retries(queue_name: str) -> set[str]:
    """Batch job ids that have a later run waiting in the queue's scheduled registry."""
    registry = get_queue(queue_name).scheduled_job_registry
    return {job_id.rsplit("-at", 1)[0] for job_id in registry.get_job_ids()}


RECONCILE_JOB_ID = "outreach-reconcile"


def schedule_reconciler(interval: int | None = None) -> None:
    """Keep one reconcile job running every `interval` seconds (idempotent)."""
    interval = interval or int(current_app.config.get("RECONCILE_SECONDS") or 60)
    enqueue("default", run_reconciler, interval, job_id=RECONCILE_JOB_ID,
            at=utcnow() + timedelta(seconds=interval))


def ensure_reconciler(interval: int | None = None) -> bool:
    """Schedule the reconciler again if Redis lost it (a restart without its data); True if so."""
    registry = get_queue("default").scheduled_job_registry
    if redis().zscore(registry.key, RECONCILE_JOB_ID) is not None:
        return False
    try:
        status = Job.fetch(RECONCILE_JOB_ID, connection=redis()).get_status(refresh=False)
    except Exception:  # noqa: BLE001 - NoSuchJobError and friends: the job is gone
        status = None
    if status in (JobStatus.QUEUED, JobStatus.STARTED):
        return False  # about to run, or running: it schedules its next run itself
    log.warning("the reconciler job was missing from Redis; scheduling it again")
    schedule_reconciler(interval)
    return True


def run_reconciler(interval: int | None = None) -> dict[str, int]:
    """The periodic job: reconcile, then schedule the next run."""
    from outreach.tracking.buffer import flush_hits

    result = reconcile()
    # A safety net for tracking hits whose flush job was lost (the views queue one per second).
    enqueue("events", flush_hits, job_id="outreach-flush-hits")
    schedule_reconciler(interval)
    return result
