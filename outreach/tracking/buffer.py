"""The hit buffer: opens and clicks go to a Redis list at request time and reach SQL in batches.

A tracking request only appends one compact JSON record (`RPUSH outreach:hits`) and, at most
about once a second (a `SET NX EX 1` guard), enqueues `flush_hits` on the `events` queue; so a
burst of a million hits neither slows the pages nor opens a million transactions.

`flush_hits` drains the list in batches of up to 10,000, each under the tracking write lock:
`LRANGE` a batch, write it (events in one executemany, rollups in one upsert per group,
contacts' engagement dates in one UPDATE per column), commit, and only then `LTRIM` it off the
list. A failed write leaves the batch in Redis for the next flush, and a crash between commit
and trim cannot double count: every hit carries a uuid stored as the event's
provider_event_id, and already-stored ids are skipped. Only flushers (one at a time, under the
lock) remove from the head while views append at the tail, so the trim never drops unread hits.
After draining, the flush deletes the guard and looks once more, so a hit pushed while it was
finishing is never stranded without a flush job behind it.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Message
from outreach.queue import enqueue, redis
from outreach.tracking import machine
from outreach.tracking.models import NO_LINK
from outreach.tracking.service import Record, chunks, record_events, write_lock

log = logging.getLogger(__name__)
HITS_KEY = "outreach:hits"
GUARD_KEY = "outreach:hits:flush-queued"
BATCH_SIZE = 10_000


def push_hit(kind: str, message_id: int, *, link_position: int | None, machine_reason: str | None,
             ip: str | None, user_agent: str | None, method: str = "GET") -> None:
    """Buffer one open or click; enqueue a flush unless one was enqueued in the last second."""
    record = {"id": uuid.uuid4().hex, "k": kind, "m": message_id, "p": link_position,
              "t": datetime.now(UTC).timestamp(), "x": machine_reason is not None,
              "r": machine_reason, "ip": ip, "ua": (user_agent or "")[:300], "hm": method}
    pipe = redis().pipeline(transaction=True)
    pipe.rpush(HITS_KEY, json.dumps(record, separators=(",", ":")))
    pipe.set(GUARD_KEY, 1, nx=True, ex=1)
    _, guard_set = pipe.execute()
    if guard_set:
        enqueue("events", flush_hits)


def pending() -> int:
    """How many hits wait in the buffer."""
    return int(redis().llen(HITS_KEY))


def flush_hits(batch_size: int = BATCH_SIZE) -> int:
    """Write every buffered hit to SQL in batches (the `events` queue job); return the count.

    The write lock is taken per batch, so unsubscribes and inbound STOPs wait for one batch
    at most, never for a whole burst.
    """
    client = redis()
    total = 0
    while True:
        with write_lock() as lock:
            raw = client.lrange(HITS_KEY, 0, batch_size - 1)
            if raw:
                write_hits(raw)
                if not lock.owned():  # expired mid-write: the next flush re-reads (deduped)
                    log.warning("tracking lock lost during a flush; leaving the trim to the next")
                    return total
                client.ltrim(HITS_KEY, len(raw), -1)
                total += len(raw)
        if raw:
            continue
        client.delete(GUARD_KEY)
        if not client.llen(HITS_KEY):
            return total


def _parse(raw: list[bytes]) -> list[dict[str, Any]]:
    hits = []
    for item in raw:
        try:
            hit = json.loads(item)
            if (hit["k"] in ("open", "click") and isinstance(hit["m"], int)
                    and isinstance(hit["t"], int | float) and isinstance(hit["id"], str)
                    and 0 < len(hit["id"]) <= 120):
                hits.append(hit)
                continue
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("dropping a malformed tracking hit: %r", item[:200])
    return hits


def write_hits(raw: list[bytes]) -> int:
    """Write one batch of raw buffered hits (commits); return how many events were new.

    Malformed records are logged and skipped, so one bad record cannot block the buffer.
    """
    hits = _parse(raw)
    machine.flag_bursts([h for h in hits if h["k"] == "click"])
    session = db.session()
    messages: dict[int, Any] = {}
    ids = sorted({h["m"] for h in hits})
    for part in chunks(ids):
        for row in session.execute(sa.select(Message.id, Message.blast_id, Message.contact_id)
                                   .where(Message.id.in_(part))):
            messages[row.id] = row
    records: list[Record] = []
    for hit in hits:
        message = messages.get(hit["m"])
        if message is None:
            continue  # the message (its blast) was deleted since
        detail = {k: v for k, v in (("ip", hit.get("ip")), ("useragent", hit.get("ua")),
                                    ("method", hit.get("hm")), ("reason", hit.get("r"))) if v}
        link = hit.get("p")
        records.append({
            "message_id": message.id, "blast_id": message.blast_id,
            "contact_id": message.contact_id, "kind": hit["k"], "machine": bool(hit.get("x")),
            "link_position": NO_LINK if link is None and hit["k"] == "click" else link,
            "provider_event_id": hit["id"], "detail": detail,
            "occurred_at": datetime.fromtimestamp(float(hit["t"]), UTC)})
    try:
        new = record_events(session, records)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(new)
