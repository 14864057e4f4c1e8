"""The hit buffer: opens and clicks go to a Redis list at request time and reach SQL in batches.

A tracking request only appends one compact record (`RPUSH outreach:hits`) and, at most about
once a second (a `SET NX EX 1` guard, sent in the same round trip), enqueues `flush_hits` on
the `events` queue; so a burst of a million hits neither slows the pages nor opens a million
transactions. The hit layer pushes through `HitPusher` (a connection per thread, the command
pre-packed), which costs a fifth of the CPU of a redis-py command.

A record is one line of tab-separated text (HIT_VERSION first, the user agent last because it
is the only field that may hold a tab): a few bytes to build and a `split` to read, where a
JSON object cost more than the rest of the flush's Python work. Records in the older JSON
format (hits buffered before an upgrade) are still read.

`flush_hits` drains the list in batches of up to 10,000 (while hits trickle in, one batch about
every FLUSH_INTERVAL seconds, not one per handful of hits), each under the tracking write lock:
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
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
FLUSH_INTERVAL = 1.0  # seconds between batches while hits trickle in (see flush_hits)
MAX_FLUSH_SECONDS = 60.0  # then a flush job hands over to a fresh one
HIT_VERSION = b"2"
KIND_CODES = {"open": "o", "click": "c"}
KINDS = {b"o": "open", b"c": "click"}
UA_LIMIT = 300
DETAIL_FIELDS = (("ip", "ip"), ("ua", "useragent"), ("hm", "method"), ("r", "reason"))
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


class HitPusher:
    """push_record at a fraction of the CPU, for the hit layer's threads.

    redis-py's command path (connection pool checkout, retry and observability wrappers,
    argument encoding, reply parsing) costs ~150 us of CPU per command, more than the rest of
    a hit. Here each thread keeps one connection of its own, built from the client's pool
    settings (URL, password, TLS, unix socket, timeouts), and sends the EVALSHA pre-packed:
    the prefix is encoded once, only the record is appended, and the one-line reply is read
    off the socket: ~30 us of CPU in all. A dropped connection (Redis restarted) is retried
    once on a fresh one; a second failure, or a timeout (the push may have landed), raises
    RedisError.
    """

    def __init__(self, client: Redis) -> None:
        self.client = client
        pool = client.connection_pool
        self._connect = lambda: pool.connection_class(**pool.connection_kwargs)
        self._local = threading.local()
        # "*6\r\n$7\r\nEVALSHA\r\n..." up to the record, the command's last argument.
        prefix = b"".join(self._connect().pack_command("EVALSHA", PUSH_SHA, 2, HITS_KEY,
                                                       GUARD_KEY, b""))
        self._prefix = prefix[:-len(b"$0\r\n\r\n")]

    @staticmethod
    def _roundtrip(sock: socket.socket, packed: bytes) -> bytes:
        """Send the command, read its one-line reply (an integer, or an error).

        The reply is read off the socket here, not through redis-py's parser (a third of the
        push's CPU): nothing else reads this connection between commands, so no bytes are
        left behind in a parser's buffer.
        """
        sock.sendall(packed)
        reply = sock.recv(256)
        while not reply.endswith(b"\r\n"):
            more = sock.recv(256)
            if not more:
                raise RedisConnectionError("Redis closed the connection")
            reply += more
        return reply

    def push(self, record: bytes) -> bool:
        """Append one encoded hit; True when this push must enqueue a flush."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        packed = b"%s$%d\r\n%s\r\n" % (self._prefix, len(record), record)
        for attempt in (1, 2):
            try:
                if conn._sock is None:
                    conn.connect()
                reply = self._roundtrip(conn._sock, packed)
                if reply[:1] == b":":
                    return reply != b":0\r\n"
                if reply.startswith(b"-NOSCRIPT"):  # a new Redis: EVAL loads the script again
                    conn.send_command("EVAL", PUSH_SCRIPT, 2, HITS_KEY, GUARD_KEY, record,
                                      check_health=False)
                    return bool(conn.read_response())
                raise ResponseError(reply[1:-2].decode("utf-8", "replace"))
            except (TimeoutError, RedisTimeoutError) as exc:  # before OSError, its base
                conn.disconnect()  # the push may have landed: a retry could count it twice
                if isinstance(exc, RedisError):
                    raise
                raise RedisTimeoutError("timeout talking to Redis") from exc
            except (RedisConnectionError, OSError) as exc:
                conn.disconnect()  # the next attempt connects afresh
                if attempt == 2:
                    if isinstance(exc, RedisError):
                        raise
                    raise RedisConnectionError(str(exc)) from exc
        return False


def push_hit(kind: str, message_id: int, *, link_position: int | None, machine_reason: str | None,
             ip: str | None, user_agent: str | None, method: str = "GET") -> None:
    """Buffer one open or click; enqueue a flush unless one was enqueued in the last second."""
    record = encode_hit(kind, message_id, link_position, machine_reason, ip, user_agent, method)
    if push_record(redis(), record):
        enqueue("events", flush_hits)


def pending() -> int:
    """How many hits wait in the buffer."""
    return int(redis().llen(HITS_KEY))


def flush_hits(batch_size: int = BATCH_SIZE, interval: float = FLUSH_INTERVAL,
               max_seconds: float = MAX_FLUSH_SECONDS) -> int:
    """Write every buffered hit to SQL in batches (the `events` queue job); return the count.

    The write lock is taken per batch, so unsubscribes and inbound STOPs wait for one batch
    at most, never for a whole burst. While hits trickle in (the last batch was not full),
    the next batch is read about `interval` seconds after it, not at once: a batch has a fixed
    cost (the lock, half a dozen statements, a commit) that a handful of hits cannot carry.
    After `max_seconds` the job hands over to a fresh one at the back of the events queue, so
    a steady stream of hits never keeps provider webhooks waiting behind it.
    """
    client = redis()
    total = 0
    started = time.monotonic()
    small_read_at: float | None = None  # when the last batch was read, if it was not full
    while True:
        if small_read_at is not None and 0 < client.llen(HITS_KEY) < batch_size:
            time.sleep(max(0.0, interval - (time.monotonic() - small_read_at)))
        if total and time.monotonic() - started >= max_seconds:
            _hand_over(client)
            return total
        read_at = time.monotonic()
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
            small_read_at = read_at if len(raw) < batch_size else None
            continue
        small_read_at = None
        client.delete(GUARD_KEY)
        if not client.llen(HITS_KEY):
            return total


def _hand_over(client: Redis) -> None:
    """Queue the next flush (as a hit would: under the guard) and let this job end."""
    client.delete(GUARD_KEY)
    if client.llen(HITS_KEY) and client.set(GUARD_KEY, 1, nx=True, ex=1):
        enqueue("events", flush_hits)


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


def _messages(session: Any, ids: list[int]) -> dict[int, tuple[int, int, float | None]]:
    """id -> (blast_id, contact_id, sent_at as a unix time) of the batch's messages."""
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter instead of 20 IN lists of 500 (one round trip, one plan), and
        # plain tuples with sent_at as epoch seconds: through the ORM's rows and the
        # UTCDateTime decorator this read cost as much Python as the rest of the batch.
        rows = session.connection().exec_driver_sql(
            f"SELECT id, blast_id, contact_id, extract(epoch FROM sent_at)::float8 "
            f"FROM {Message.__tablename__} WHERE id = ANY(%(ids)s::bigint[])", {"ids": ids})
        return {mid: (blast, contact, sent) for mid, blast, contact, sent in rows}
    columns = (Message.id, Message.blast_id, Message.contact_id, Message.sent_at)
    found: dict[int, tuple[int, int, float | None]] = {}
    for part in chunks(ids):
        for mid, blast, contact, sent in session.execute(
                sa.select(*columns).where(Message.id.in_(part))):
            found[mid] = (blast, contact, None if sent is None else sent.timestamp())
    return found


def write_hits(raw: Sequence[bytes]) -> int:
    """Write one batch of raw buffered hits (commits); return how many events were new.

    Malformed records are logged and skipped, so one bad record cannot block the buffer.
    """
    parsed = _parse(raw)
    session = db.session()
    messages = _messages(session, sorted({h["m"] for h in parsed}))
    # Hits of messages deleted since (their blast), or that never existed, are dropped.
    hits = [h for h in parsed if h["m"] in messages]
    config = current_app.config
    after = {"open": float(config.get("MACHINE_OPEN_SECONDS", 2)),
             "click": float(config.get("MACHINE_CLICK_SECONDS", 2))}
    too_soon = machine.too_soon
    for hit in hits:
        sent = messages[hit["m"]][2]
        if (not hit.get("x") and sent is not None
                and too_soon(hit["t"] - sent, after[hit["k"]])):
            hit["x"], hit["r"] = True, "too_soon"
    machine.flag_bursts([h for h in hits if h["k"] == "click"])
    records: list[Record] = []
    append, from_timestamp = records.append, datetime.fromtimestamp
    for hit in hits:
        blast, contact, _ = messages[hit["m"]]
        detail = {}
        for key, name in DETAIL_FIELDS:
            value = hit.get(key)
            if value:
                detail[name] = value
        kind, link = hit["k"], hit.get("p")
        append({"message_id": hit["m"], "blast_id": blast, "contact_id": contact, "kind": kind,
                "machine": bool(hit.get("x")),
                "link_position": NO_LINK if link is None and kind == "click" else link,
                "provider_event_id": hit["id"], "detail": detail,
                "occurred_at": from_timestamp(float(hit["t"]), UTC)})
    try:
        new = record_events(session, records)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(new)
