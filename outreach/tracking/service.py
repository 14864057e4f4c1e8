"""Writing events in batches: dedupe, rollups, engagement dates, status moves, opt-outs.

Every writer (the hit buffer's flush, SendGrid and Twilio ingestion, unsubscribes) goes
through `record_events` while holding `write_lock()`, so that "is this the first human open of
this message?" is decided against a table nobody else is writing: unique counts stay exact
whichever worker runs which batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from outreach.blasts.models import RANK, Message
from outreach.contacts import consent
from outreach.contacts.models import Channel, Contact, Suppression
from outreach.db import utcnow
from outreach.queue import redis
from outreach.tracking.models import NO_LINK, Event, Rollup

log = logging.getLogger(__name__)
LOCK_KEY = "outreach:tracking:write-lock"
CHUNK = 500  # ids per IN (...) list: well under SQLite's parameter limit
ENGAGEMENT = {"open": "last_opened_at", "click": "last_clicked_at"}
Record = dict[str, Any]  # an Event's columns, plus "unique" once decided


@contextmanager
def write_lock(timeout: int = 600, wait: int = 300) -> Iterator[Any]:
    """Serialize event writers across workers (a Redis lock) so unique counts stay exact."""
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


def record_best_effort(session: Session, records: Sequence[Record]) -> None:
    """Record events for metrics after the effect they describe was committed; never raise.

    Used by opt-outs, which must succeed even when Redis (the lock) is down or busy.
    """
    try:
        with write_lock(wait=10):
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
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def hour_of(when: datetime) -> datetime:
    """A timestamp truncated to its hour."""
    return when.replace(minute=0, second=0, microsecond=0)


def _existing_ids(session: Session, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(ids):
        found.update(session.scalars(sa.select(Event.provider_event_id)
                                     .where(Event.provider_event_id.in_(part))))
    return found


def _unique_keys(record: Record) -> list[tuple[Any, ...]]:
    """The keys whose first human event counts as unique: per kind (and link), and clickers."""
    message, kind, link = record["message_id"], record["kind"], record.get("link_position")
    keys = [(message, kind, link if kind == "click" else None)]
    if kind == "click":
        keys.append((message, "clicker", None))
    return keys


def _seen_keys(session: Session, message_ids: Sequence[int], kinds: set[str]) -> set[tuple]:
    seen: set[tuple[Any, ...]] = set()
    for part in chunks(message_ids):
        rows = session.execute(
            sa.select(Event.message_id, Event.kind, Event.link_position).distinct()
            .where(Event.message_id.in_(part), Event.kind.in_(sorted(kinds)),
                   Event.machine.is_(False)))
        for message_id, kind, link in rows:
            seen.update(_unique_keys({"message_id": message_id, "kind": kind,
                                      "link_position": link}))
    return seen


def record_events(session: Session, records: Iterable[Record]) -> list[Record]:
    """Insert new events (deduplicated on provider_event_id), update rollups and engagement.

    Returns the records actually inserted, each with "unique" set. Call under write_lock().
    """
    batch: dict[str, Record] = {}
    for record in records:
        batch.setdefault(record["provider_event_id"], record)
    if not batch:
        return []
    existing = _existing_ids(session, list(batch))
    new = sorted((r for key, r in batch.items() if key not in existing),
                 key=lambda r: r["occurred_at"])
    if not new:
        return []
    human = [r for r in new if not r["machine"] and r.get("message_id") is not None]
    seen = _seen_keys(session, sorted({r["message_id"] for r in human}),
                      {r["kind"] for r in human}) if human else set()
    for record in new:
        record["unique"] = []
    for record in human:
        for key in _unique_keys(record):
            if key not in seen:
                seen.add(key)
                record["unique"].append(key[1])
    columns = ("message_id", "blast_id", "contact_id", "kind", "machine", "link_position",
               "provider_event_id", "detail", "occurred_at")
    now = utcnow()
    # Core, not the ORM's bulk insert: the ORM drops None values and splits the rows into an
    # executemany per distinct key set (a few rows each when opens and clicks interleave).
    session.execute(sa.insert(Event.__table__),
                    [{**{c: r.get(c) for c in columns}, "created_at": now} for r in new])
    _bump_rollups(session, new)
    _touch_contacts(session, new)
    return new


def _bump_rollups(session: Session, records: Sequence[Record]) -> None:
    """One upsert per (blast, link, hour, kind, machine) group of the batch."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
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
    table = Rollup.__table__
    stmt = dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["blast_id", "link_position", "hour", "kind", "machine"],
        set_={"total": table.c.total + stmt.excluded.total,
              "unique_count": table.c.unique_count + stmt.excluded.unique_count})
    session.execute(stmt, [
        {"blast_id": b, "link_position": link, "hour": hour, "kind": kind, "machine": machine,
         "total": total, "unique_count": unique}
        for (b, link, hour, kind, machine), (total, unique) in groups.items()])


def _touch_contacts(session: Session, records: Sequence[Record]) -> None:
    """Move contacts' last_opened_at / last_clicked_at forward, one UPDATE per column."""
    latest: dict[str, dict[int, datetime]] = defaultdict(dict)
    for r in records:
        column = ENGAGEMENT.get(r["kind"])
        if column and not r["machine"] and r.get("contact_id"):
            current = latest[column].get(r["contact_id"])
            if current is None or r["occurred_at"] > current:
                latest[column][r["contact_id"]] = r["occurred_at"]
    table = Contact.__table__
    for column, by_contact in latest.items():
        col = table.c[column]
        session.execute(
            table.update().where(table.c.id == sa.bindparam("cid"),
                                 sa.or_(col.is_(None), col < sa.bindparam("at", type_=col.type)))
            .values({column: sa.bindparam("at", type_=col.type),
                     "updated_at": table.c.updated_at}),
            [{"cid": cid, "at": at} for cid, at in by_contact.items()])


def advance_status(session: Session, target: str, rows: Sequence[Record]) -> None:
    """Move messages to a status of higher rank only (never back): one executemany UPDATE.

    Each row: {"mid", "at", "error", "error_code"}; delivered_at is set once, on delivery.
    """
    if not rows:
        return
    table = Message.__table__
    lower = [status for status, rank in RANK.items() if rank < RANK[target]]
    values: dict[str, Any] = {
        "status": target, "updated_at": sa.bindparam("now", type_=table.c.updated_at.type),
        "error": sa.func.coalesce(sa.bindparam("error", type_=sa.Text), table.c.error),
        "error_code": sa.func.coalesce(sa.bindparam("error_code", type_=sa.String),
                                       table.c.error_code)}
    if target == "delivered":
        values["delivered_at"] = sa.func.coalesce(
            table.c.delivered_at, sa.bindparam("at", type_=table.c.delivered_at.type))
    now = utcnow()
    session.execute(
        table.update().where(table.c.id == sa.bindparam("mid"),
                             sa.or_(*(table.c.status == status for status in lower)))
        .values(values),
        [{"mid": r["mid"], "at": r.get("at") or now, "now": now, "error": r.get("error"),
          "error_code": r.get("error_code")} for r in rows])


def suppress_addresses(session: Session, channel: Channel, rows: Sequence[tuple[str, str, str]]
                       ) -> None:
    """Suppress (address, reason, note) rows in one INSERT; an existing one keeps its reason."""
    if not rows:
        return
    table = Suppression.__table__
    stmt = dialect_insert(session, table).on_conflict_do_nothing()
    now = utcnow()
    session.execute(stmt, [{"channel": channel.value, "address": address, "reason": reason,
                            "note": note, "created_at": now} for address, reason, note in rows])


def opt_out(session: Session, channel: Channel, address: str, contact_id: int | None,
            reason: str, source: str, evidence: dict[str, Any]) -> None:
    """Revoke the contact's consent (if known) and suppress the address either way."""
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is not None:
        consent.revoke_and_suppress(session, contact, channel, reason, source, evidence)
    consent.suppress(session, channel, address, reason, note=f"via {source}")
