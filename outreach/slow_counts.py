"""Counts that are slow on big tables, remembered for a time proportional to what they cost.

A blast's progress or a list's size on a million rows walks a million index entries; fifty staff
members polling those pages while the blast sends would spend the machine's CPU on counting
the same numbers again and again. So a count that took `elapsed` seconds is kept in Redis,
shared by every web process, for FACTOR x `elapsed` (at most MAX_SECONDS): counting then costs
at most about 1/FACTOR of one core, whatever the traffic. Past its time a remembered value is
still served to everyone but the one request that counts again (a short Redis lock), so a burst
of requests never counts in parallel.

Only counts over at least MIN_ROWS rows that took at least MIN_SECONDS are remembered. The
row threshold keeps every small database exact whatever the machine's load (a busy machine
makes any count slow, and a figure just changed by a webhook must show at once); on a million
rows a figure a few seconds old is the price of pages that answer.

If Redis is unreachable, every count is computed: a cache must never break a page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")
log = logging.getLogger(__name__)

PREFIX = "outreach:slow-count:"
MIN_SECONDS = 0.05  # cheaper than this: not worth remembering, always exact
MIN_ROWS = 100_000  # fewer rows counted than this: always exact
FACTOR = 10.0       # remembered 10x as long as it took: at most ~10% of a core on recounts
MAX_SECONDS = 10.0  # nobody waits longer than this for a fresh figure
KEEP_SECONDS = 300  # a stale value is still served while one request recounts
LOCK_SECONDS = 60


def _client() -> Any:
    from outreach.queue import redis

    return redis()


def remembered(key: str, compute: Callable[[], T], rows: Callable[[T], int]) -> T:
    """`compute()` (a JSON-able value), or its remembered value while that is fresh enough.

    rows(value): how many rows the value counts (its size decides whether it may be kept).
    """
    try:
        client = _client()
        raw = client.get(PREFIX + key)
    except RedisError:
        return compute()
    if raw is not None:
        entry = json.loads(raw)
        if entry["until"] > time.time():
            return entry["value"]  # type: ignore[no-any-return]
        try:
            if not client.set(PREFIX + key + ":lock", 1, nx=True, ex=LOCK_SECONDS):
                return entry["value"]  # type: ignore[no-any-return]  # someone is recounting
        except RedisError:
            return compute()
    started = time.perf_counter()
    value = compute()
    elapsed = time.perf_counter() - started
    try:
        if elapsed >= MIN_SECONDS and rows(value) >= MIN_ROWS:
            until = time.time() + min(MAX_SECONDS, FACTOR * elapsed)
            client.set(PREFIX + key, json.dumps({"value": value, "until": until}),
                       ex=KEEP_SECONDS)
        else:
            client.delete(PREFIX + key)  # small or cheap again: stay exact
        client.delete(PREFIX + key + ":lock")
    except RedisError:
        log.warning("could not remember the count %s", key)
    return value


def last_value(key: str) -> Any:
    """The value remembered under `key` however old, or None (a hint, never a figure shown)."""
    try:
        raw = _client().get(PREFIX + key)
    except RedisError:
        return None
    return json.loads(raw)["value"] if raw is not None else None
