"""Writing events in batches: dedupe, unique counts, rollups, engagement dates, status moves.

Every writer (the hit buffer's flush, SendGrid and Twilio ingestion, unsubscribes) goes through
`record_events`. The database decides both idempotency questions: an event is new when its
provider_event_id inserts (unique), and it is the first human open or click of its message
(and link) when its key inserts into first_engagements (primary key), both with ON CONFLICT DO
NOTHING. So on PostgreSQL concurrent batches need no global lock: each one writes a few
set-based statements (batch_sql) whose rows are sorted (event ids, keys, message ids, contact
ids, rollup keys), so writers take row locks in one order; the rare deadlock or unique race
with an opt-out is retried by `write_batch`. SQLite has a single writer anyway: there writers
hold `write_lock()` (Redis) so that a read-then-write never races another process.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from outreach.blasts.models import RANK, Message
from outreach.contacts import consent
from outreach.contacts.models import Channel, Contact, Suppression
from outreach.db import utcnow
from outreach.key_checks import lock_existing, may_skip_triggers, skip_row_triggers
from outreach.queue import redis
from outreach.tracking import batch_sql
from outreach.tracking.models import NO_LINK, UNIQUE_KINDS, Event, FirstEngagement, Rollup

log = logging.getLogger(__name__)
LOCK_KEY = "outreach:tracking:write-lock"
CHUNK = 500  # ids per IN (...) list: well under SQLite's parameter limit
ENGAGEMENT = {"open": "last_opened_at", "click": "last_clicked_at"}
RETRIED_SQLSTATES = {"40P01", "23505"}  # deadlock; a unique race (an opt-out's suppression)
Record = dict[str, Any]  # an Event's columns, plus "unique" once decided
T = TypeVar("T")


@contextmanager
def write_lock(timeout: int = 600, wait: int = 300) -> Iterator[Any]:
    """A Redis lock serializing its holders across workers (SQLite's writers; the hit flush)."""
    lock = redis().lock(LOCK_KEY, timeout=timeout, blocking_timeout=wait)
    if not lock.acquire():
        raise TimeoutError("the tracking write lock stayed busy; the job will be retried")
    try:
        yield lock
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired meanwhile: nothing left to release
            log.warning("tracking write lock expired before release")


def is_postgres(session: Session) -> bool:
    """True on PostgreSQL (set-based writes, no global lock)."""
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def event_writer(session: Session, wait: int = 300) -> Iterator[None]:
    """What an event writer holds: nothing on PostgreSQL, the Redis write lock on SQLite."""
    if is_postgres(session):
        yield
        return
    with write_lock(wait=wait):
        yield


def write_batch(session: Session, work: Callable[[], T], attempts: int = 3) -> T:
    """Run work as one transaction (as an event writer) and commit; retry deadlocks."""
    for attempt in range(1, attempts + 1):
        try:
            with event_writer(session):
                result = work()
                session.commit()
            return result
        except DBAPIError as exc:
            session.rollback()
            state = getattr(exc.orig, "sqlstate", None)
            if state not in RETRIED_SQLSTATES or attempt == attempts:
                raise
            log.warning("event batch hit %s (attempt %d); retrying", state, attempt)
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


# What a provider batch writes (see `references_checked_once`).
BATCH_TABLES = ("events", "first_engagements", "rollups", "messages", "contacts",
                "consent_events", "suppressions")


def references_checked_once(session: Session, records: Sequence[Record]) -> bool:
    """Lock what a provider batch's rows refer to, once, and skip the per-row key checks.

    On PostgreSQL each event row checks three foreign keys (message, blast, contact) with a
    trigger of its own, and first engagements, rollups and ledger entries theirs: about a
    fifth of the database's work for a batch. Instead (`outreach.key_checks`, when allowed):
    the batch's blasts are locked against deletion, which keeps their messages too (a message
    is only ever deleted with its blast); its contacts are locked the same way, and those
    erased since their message was read lose their reference here, as the erasure's SET NULL
    would have done. Returns whether the per-row checks are off for this transaction.
    """
    if not may_skip_triggers(session, BATCH_TABLES):
        return False
    blasts = {r["blast_id"] for r in records if r.get("blast_id") is not None}
    if lock_existing(session, "blasts", blasts) != blasts:
        return False  # a blast went away: let the per-row checks refuse what refers to it
    alive = lock_existing(session, "contacts",
                          (r["contact_id"] for r in records if r.get("contact_id") is not None))
    for record in records:
        if record.get("contact_id") is not None and record["contact_id"] not in alive:
            record["contact_id"] = None
    skip_row_triggers(session)
    return True


def record_best_effort(session: Session, records: Sequence[Record]) -> None:
    """Record events for metrics after the effect they describe was committed; never raise.

    Used by opt-outs, which must succeed even when Redis (SQLite's lock) is down or busy.
    """
    try:
        with event_writer(session, wait=10):
            record_events(session, records)
            session.commit()
    except (RedisError, TimeoutError):
        session.rollback()
        log.warning("could not record %d tracking events (lock unavailable)", len(records))


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Slices of at most size values."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def dialect_insert(session: Session, table: sa.Table) -> Any:
    """The dialect's INSERT construct (for ON CONFLICT clauses)."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def hour_of(when: datetime) -> datetime:
    """A timestamp truncated to its hour."""
    return when.replace(minute=0, second=0, microsecond=0)


def _unique_keys(record: Record) -> list[tuple[int, str, int]]:
    """The first_engagements keys of a human event: its kind (and link), and clickers."""
    message, kind, link = record["message_id"], record["kind"], record.get("link_position")
    if kind == "click":
        return [(message, "click", NO_LINK if link is None else link),
                (message, "clicker", NO_LINK)]
    return [(message, kind, NO_LINK)]


def _insert_new(session: Session, batch: dict[str, Record]) -> set[str]:
    """Insert the batch's events; return the provider ids that were not stored before."""
    if is_postgres(session):
        return batch_sql.insert_events(session, batch.values())
    existing: set[str] = set()
    for part in chunks(list(batch)):
        existing.update(session.scalars(sa.select(Event.provider_event_id)
                                        .where(Event.provider_event_id.in_(part))))
    columns = ("message_id", "blast_id", "contact_id", "kind", "machine", "link_position",
               "provider_event_id", "detail", "occurred_at")
    now = utcnow()
    rows = [{**{c: r.get(c) for c in columns}, "created_at": now}
            for key, r in batch.items() if key not in existing]
    if rows:  # Core executemany: the ORM's bulk insert splits rows by key set
        session.execute(sa.insert(Event.__table__), rows)
    return set(batch) - existing


Key = tuple[int, str, int]  # first_engagements' (message_id, kind, link_position)


def _claim_firsts(session: Session, candidates: dict[Key, datetime]
                  ) -> tuple[set[Key], dict[Key, datetime]]:
    """Claim first_engagements keys for the batch's earliest events of each key.

    Returns the keys the batch now holds, and for those taken over from an older holder
    (a later event stored first: storms, out-of-order batches) the time it held them, so its
    hour gives the unique count back. Keys are claimed in sorted order (a stable lock order).
    """
    ordered = sorted(candidates.items())
    if is_postgres(session):
        won = batch_sql.insert_firsts(session, ordered)
        rest = [(k, t) for k, t in ordered if k not in won]
        moved = batch_sql.take_over_firsts(session, rest) if rest else {}
        return won | set(moved), moved
    table = FirstEngagement.__table__
    key_cols = (table.c.message_id, table.c.kind, table.c.link_position)
    won: set[Key] = set()
    for part in chunks(ordered, 3000):
        stmt = (dialect_insert(session, table)
                .values([{"message_id": m, "kind": k, "link_position": p, "occurred_at": t}
                         for (m, k, p), t in part])
                .on_conflict_do_nothing().returning(*key_cols))
        won.update((m, k, p) for m, k, p in session.execute(stmt))
    rest = [(key, t) for key, t in ordered if key not in won]
    moved: dict[Key, datetime] = {}
    for part in chunks(rest, 300):
        times = dict(part)
        for m, k, p, held in session.execute(
                sa.select(*key_cols, table.c.occurred_at)
                .where(sa.tuple_(*key_cols).in_(list(times)))):
            if times[(m, k, p)] < held:
                moved[(m, k, p)] = held
    if moved:
        session.execute(
            table.update().where(table.c.message_id == sa.bindparam("m"),
                                 table.c.kind == sa.bindparam("k"),
                                 table.c.link_position == sa.bindparam("p"))
            .values(occurred_at=sa.bindparam("t", type_=table.c.occurred_at.type)),
            [{"m": m, "k": k, "p": p, "t": candidates[(m, k, p)]} for m, k, p in sorted(moved)])
    return won | set(moved), moved


def record_events(session: Session, records: Iterable[Record],
                  effects: Callable[[list[Record]], None] | None = None) -> list[Record]:
    """Insert new events (deduplicated on provider_event_id), update rollups and engagement.

    Returns the records actually inserted, oldest first, each with "unique" set: the kinds
    ("clicker" too) for which it is its message's earliest human event known so far. Whatever
    order events arrive in, each key's unique count ends up in the hour of its earliest event.
    effects(new) runs the caller's own writes (status moves, opt-outs) before contacts and
    rollups, the most shared rows, are touched. Call as an event writer (`write_batch`).
    """
    batch: dict[str, Record] = {}
    for record in records:
        batch.setdefault(record["provider_event_id"], record)
    if not batch:
        return []
    inserted = _insert_new(session, batch)
    new = sorted((batch[key] for key in inserted),
                 key=lambda r: (r["occurred_at"], r["provider_event_id"]))
    if not new:
        return []
    human = [r for r in new if not r["machine"] and r.get("message_id") is not None
             and r["kind"] in UNIQUE_KINDS]
    earliest: dict[Key, Record] = {}
    for record in new:
        record["unique"] = []
    for record in human:  # oldest first
        for key in _unique_keys(record):
            earliest.setdefault(key, record)
    won, moved = _claim_firsts(session, {k: r["occurred_at"] for k, r in earliest.items()})
    for key in sorted(won):
        earliest[key]["unique"].append(key[1])
    given_back = [(earliest[key], key, held) for key, held in moved.items()]
    if effects is not None:
        effects(new)
    _touch_contacts(session, new)
    _bump_rollups(session, new, given_back)
    return new


def _bump_rollups(session: Session, records: Sequence[Record],
                  given_back: Sequence[tuple[Record, Key, datetime]] = ()) -> None:
    """One upsert for every (blast, link, hour, kind, machine) group of the batch.

    given_back: (the new holder, key, when the old holder occurred) of keys taken over: the
    old holder's hour loses the unique count (and the clicker).
    """
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for r, (_, kind, link), held in given_back:
        if r.get("blast_id") is None:
            continue
        group = groups[(r["blast_id"], link, hour_of(held), kind, False)]
        group[0] -= kind == "clicker"
        group[1] -= 1
    for r in records:
        if r.get("blast_id") is None:
            continue
        hour, link = hour_of(r["occurred_at"]), r.get("link_position")
        key = (r["blast_id"], NO_LINK if link is None else link, hour, r["kind"], r["machine"])
        groups[key][0] += 1
        groups[key][1] += int(r["kind"] in r["unique"])
        if "clicker" in r["unique"]:
            groups[(r["blast_id"], NO_LINK, hour, "clicker", False)][0] += 1
            groups[(r["blast_id"], NO_LINK, hour, "clicker", False)][1] += 1
    if not groups:
        return
    if is_postgres(session):  # sorted: concurrent batches lock rollup rows in one order
        batch_sql.bump_rollups(session, sorted(groups.items()))
        return
    table = Rollup.__table__
    rows = [{"blast_id": b, "link_position": link, "hour": hour, "kind": kind, "machine": machine,
             "total": total, "unique_count": unique}
            for (b, link, hour, kind, machine), (total, unique) in sorted(groups.items())]
    for part in chunks(rows, 1000):
        stmt = dialect_insert(session, table).values(list(part))
        session.execute(stmt.on_conflict_do_update(
            index_elements=["blast_id", "link_position", "hour", "kind", "machine"],
            set_={"total": table.c.total + stmt.excluded.total,
                  "unique_count": table.c.unique_count + stmt.excluded.unique_count}))


def _touch_contacts(session: Session, records: Sequence[Record]) -> None:
    """Move contacts' last_opened_at / last_clicked_at forward (human events only)."""
    latest: dict[str, dict[int, datetime]] = defaultdict(dict)
    for r in records:
        column = ENGAGEMENT.get(r["kind"])
        if column and not r["machine"] and r.get("contact_id"):
            current = latest[column].get(r["contact_id"])
            if current is None or r["occurred_at"] > current:
                latest[column][r["contact_id"]] = r["occurred_at"]
    if not latest:
        return
    if is_postgres(session):
        batch_sql.touch_contacts(session, latest)
        return
    table = Contact.__table__
    for column, by_contact in latest.items():
        col = table.c[column]
        session.execute(
            table.update().where(table.c.id == sa.bindparam("cid"),
                                 sa.or_(col.is_(None), col < sa.bindparam("at", type_=col.type)))
            .values({column: sa.bindparam("at", type_=col.type),
                     "updated_at": table.c.updated_at}),
            [{"cid": cid, "at": at} for cid, at in sorted(by_contact.items())])


def move_messages(session: Session, moves: Sequence[Record]) -> None:
    """Apply status moves, forward only, and delivery times, in one statement.

    Each move: {"mid", "target" (a status or None), "error", "error_code", "delivered" (when
    the provider delivered it, or None)}. A message moves only to a status of higher rank (its
    error fields move with it); delivered_at keeps the earliest delivery reported whatever the
    status, so the result does not depend on the order events arrive in.
    """
    if not moves:
        return
    rows = sorted(moves, key=lambda m: m["mid"])
    if is_postgres(session):
        batch_sql.move_messages(session, rows, RANK, utcnow())
        return
    table = Message.__table__
    rank = sa.case(RANK, value=table.c.status, else_=99)
    moved = rank < sa.bindparam("rank", type_=sa.Integer)
    at = sa.bindparam("delivered", type_=table.c.delivered_at.type)
    session.execute(
        table.update()
        .where(table.c.id == sa.bindparam("mid"),
               sa.or_(moved, sa.and_(at.is_not(None), sa.or_(table.c.delivered_at.is_(None),
                                                              at < table.c.delivered_at))))
        .values(status=sa.case((moved, sa.bindparam("target", type_=sa.String)),
                               else_=table.c.status),
                error=sa.case((moved, sa.func.coalesce(sa.bindparam("error", type_=sa.Text),
                                                       table.c.error)), else_=table.c.error),
                error_code=sa.case((moved, sa.func.coalesce(
                    sa.bindparam("error_code", type_=sa.String), table.c.error_code)),
                    else_=table.c.error_code),
                updated_at=sa.case((moved, sa.bindparam("now", type_=table.c.updated_at.type)),
                                   else_=table.c.updated_at),
                delivered_at=sa.case((sa.and_(at.is_not(None), sa.or_(
                    table.c.delivered_at.is_(None), at < table.c.delivered_at)), at),
                    else_=table.c.delivered_at)),
        [{"mid": m["mid"], "rank": RANK[m["target"]] if m.get("target") else None,
          "target": m.get("target"), "error": m.get("error"), "error_code": m.get("error_code"),
          "delivered": m.get("delivered"), "now": utcnow()} for m in rows])


def advance_status(session: Session, target: str, rows: Sequence[Record]) -> None:
    """Move messages to a status of higher rank only (never back).

    Each row: {"mid", "at", "error", "error_code"}; delivered_at is set on delivery.
    """
    move_messages(session, [
        {"mid": r["mid"], "target": target, "error": r.get("error"),
         "error_code": r.get("error_code"),
         "delivered": (r.get("at") or utcnow()) if target == "delivered" else None}
        for r in rows])


def suppress_addresses(session: Session, channel: Channel, rows: Sequence[tuple[str, str, str]]
                       ) -> None:
    """Suppress (address, reason, note) rows in one INSERT; an existing one keeps its reason."""
    if not rows:
        return
    table = Suppression.__table__
    now = utcnow()
    first: dict[str, tuple[str, str]] = {}
    for address, reason, note in rows:
        first.setdefault(address, (reason, note))
    values = [{"channel": channel.value, "address": address, "reason": reason, "note": note,
               "created_at": now} for address, (reason, note) in sorted(first.items())]
    for part in chunks(values, 1000):
        session.execute(dialect_insert(session, table).values(list(part))
                        .on_conflict_do_nothing())


def opt_out(session: Session, channel: Channel, address: str, contact_id: int | None,
            reason: str, source: str, evidence: dict[str, Any]) -> None:
    """Revoke the contact's consent (if known) and suppress the address either way."""
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is not None:
        consent.revoke_and_suppress(session, contact, channel, reason, source, evidence)
    consent.suppress(session, channel, address, reason, note=f"via {source}")
