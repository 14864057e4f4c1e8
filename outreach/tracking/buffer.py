"""The hit buffer: opens and clicks go to a Redis list at request time and reach SQL in batches.

A tracking request only appends one compact record (`RPUSH outreach:hits`) and, at most about
once a second (a `SET NX EX 1` guard, sent in the same round trip), enqueues `flush_hits` on
the `events` queue; so a burst of a million hits neither slows the pages nor opens a million
transactions.

A record is one line of tab-separated text (HIT_VERSION first, the user agent last because it
is the only field that may hold a tab): a few bytes to build and a `split` to read, where a
JSON object cost more than the rest of the flush's Python work. Records in the older JSON
format (hits buffered before an upgrade) are still read.

`flush_hits` drains the list in batches of up to 10,000, each under the tracking write lock:
`LRANGE` a batch, write it (events in one executemany, rollups in one upsert per group,
contacts' engagement dates), commit, and only then `LTRIM` it off the list. A failed write
leaves the batch in Redis for the next flush, and a crash between commit and trim cannot
double count: every hit carries a random id stored as the event's provider_event_id, and
already-stored ids are skipped. Only flushers (one at a time, under the lock) remove from the
head while views append at the tail, so the trim never drops unread hits. After draining, the
flush deletes the guard and looks once more, so a hit pushed while it was finishing is never
stranded without a flush job behind it.

The "too soon after sending" machine rule needs the message's sent_at, so it is applied here,
where the messages are read anyway, and not at request time: an open costs no SQL at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import NoScriptError

from outreach import db
from outreach.blasts.models import Message
from outreach.observability import counters
from outreach.queue import enqueue, redis
from outreach.tracking import machine
from outreach.tracking.models import NO_LINK
from outreach.tracking.service import Record, chunks, record_events, write_lock

log = logging.getLogger(__name__)
HITS_KEY = "outreach:hits"
GUARD_KEY = "outreach:hits:flush-queued"
BATCH_SIZE = 10_000
HIT_VERSION = b"2"
KIND_CODES = {"open": "o", "click": "c"}
KINDS = {b"o": "open", b"c": "click"}
UA_LIMIT = 300
# RPUSH and the flush guard in one command: one round trip and one reply per hit.
PUSH_SCRIPT = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HINCRBY', 'outreach:counters', 'tracking_hits_buffered_total', 1)
if redis.call('SET', KEYS[2], 1, 'NX', 'EX', 1) then return 1 end
return 0
"""
PUSH_SHA = hashlib.sha1(PUSH_SCRIPT.encode()).hexdigest()


def encode_hit(kind: str, message_id: int, link_position: int | None,
               machine_reason: str | None, ip: str | None, user_agent: str | None,
               method: str = "GET", at: float | None = None) -> bytes:
    """One hit as a compact record (see the module docstring)."""
    fields = (
        "2", os.urandom(16).hex(), KIND_CODES[kind], str(message_id),
        "" if link_position is None else str(link_position),
        f"{time.time() if at is None else at:.6f}", machine_reason or "", method or "",
        (ip or "").replace("\t", " "), (user_agent or "")[:UA_LIMIT])
    return "\t".join(fields).encode("utf-8", "replace")


def push_record(client: Redis, record: bytes) -> bool:
    """Append one encoded hit; True when this push must enqueue a flush (the guard was free)."""
    try:
        queued = client.evalsha(PUSH_SHA, 2, HITS_KEY, GUARD_KEY, record)
    except NoScriptError:  # a restarted or new Redis: EVAL loads the script for next time
        queued = client.eval(PUSH_SCRIPT, 2, HITS_KEY, GUARD_KEY, record)
    return bool(queued)


def push_hit(kind: str, message_id: int, *, link_position: int | None, machine_reason: str | None,
             ip: str | None, user_agent: str | None, method: str = "GET") -> None:
    """Buffer one open or click; enqueue a flush unless one was enqueued in the last second."""
    record = encode_hit(kind, message_id, link_position, machine_reason, ip, user_agent, method)
    if push_record(redis(), record):
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
                counters.incr("tracking_hits_flushed_total", len(raw), client=client)
        if raw:
            continue
        client.delete(GUARD_KEY)
        if not client.llen(HITS_KEY):
            return total


def _decode(item: bytes) -> dict[str, Any]:
    """A record as the dict machine.flag_bursts and write_hits use; ValueError if malformed."""
    if item[:2] == HIT_VERSION + b"\t":
        (_, hit_id, kind, message, position, at, reason, method, ip,
         ua) = item.split(b"\t", 9)
        return {"id": hit_id.decode("ascii"), "k": KINDS[kind], "m": int(message),
                "p": int(position) if position else None, "t": float(at),
                "r": reason.decode("ascii") or None, "x": bool(reason),
                "hm": method.decode("ascii"), "ip": ip.decode("utf-8", "replace"),
                "ua": ua.decode("utf-8", "replace")}
    hit = json.loads(item)  # the format before HIT_VERSION 2
    if not (hit["k"] in ("open", "click") and isinstance(hit["m"], int)
            and isinstance(hit["t"], int | float)):
        raise ValueError("not a hit")
    return hit


def _parse(raw: Sequence[bytes]) -> list[dict[str, Any]]:
    hits = []
    for item in raw:
        try:
            hit = _decode(item)
            if isinstance(hit["id"], str) and 0 < len(hit["id"]) <= 120:
                hits.append(hit)
                continue
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            pass
        log.warning("dropping a malformed tracking hit: %r", item[:200])
    return hits


def _messages(session: Any, ids: list[int]) -> dict[int, Any]:
    """id -> (id, blast_id, contact_id, sent_at) of the batch's messages, in few queries."""
    columns = (Message.id, Message.blast_id, Message.contact_id, Message.sent_at)
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter instead of 20 IN lists of 500: one round trip, one plan.
        from sqlalchemy.dialects.postgresql import ARRAY

        rows = session.execute(sa.select(*columns).where(
            Message.id == sa.any_(sa.literal(ids, ARRAY(sa.BigInteger)))))
        return {row.id: row for row in rows}
    found: dict[int, Any] = {}
    for part in chunks(ids):
        for row in session.execute(sa.select(*columns).where(Message.id.in_(part))):
            found[row.id] = row
    return found


def _too_soon(hit: dict[str, Any], sent_at: datetime | None, open_after: float,
              click_after: float) -> bool:
    if sent_at is None:
        return False
    threshold = open_after if hit["k"] == "open" else click_after
    return machine.too_soon(hit["t"] - sent_at.timestamp(), threshold)


def write_hits(raw: Sequence[bytes]) -> int:
    """Write one batch of raw buffered hits (commits); return how many events were new.

    Malformed records are logged and skipped, so one bad record cannot block the buffer.
    """
    hits = _parse(raw)
    session = db.session()
    messages = _messages(session, sorted({h["m"] for h in hits}))
    config = current_app.config
    open_after = float(config.get("MACHINE_OPEN_SECONDS", 2))
    click_after = float(config.get("MACHINE_CLICK_SECONDS", 2))
    for hit in hits:
        message = messages.get(hit["m"])
        if not hit.get("x") and message is not None and _too_soon(hit, message.sent_at, open_after,
                                                               click_after):
            hit["x"], hit["r"] = True, "too_soon"
    machine.flag_bursts([h for h in hits if h["k"] == "click"])
    records: list[Record] = []
    for hit in hits:
        message = messages.get(hit["m"])
        if message is None:
            continue  # the message (its blast) was deleted since, or never existed
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
