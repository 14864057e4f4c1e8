"""A send-rate limiter shared by every worker process through Redis (GCRA).

Redis keeps one "theoretical arrival time" (TAT) per key: the instant the next send slot opens.
Reserving n slots moves it n intervals ahead in one Lua script, atomically, using the Redis
server's clock, so workers on machines whose clocks disagree still space their sends correctly.

An idle limiter banks at most `burst` slots: the TAT may lag "now" by burst intervals, no more.
That lets senders make up a short stall (a batch ending while the next one is being claimed)
instead of losing those slots for good, and bounds any window of T seconds to rate x T + burst
+ 1 sends. With burst 0 the limiter banks nothing.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from redis import Redis

from outreach.exceptions import ConfigurationError
from outreach.observability import counters
from outreach.queue import connection

KEY_PREFIX = "outreach:ratelimit:"
# The SMS limiters bank this much sending time (at most 25 slots): enough to make up a batch
# hand-over's stall, small enough that no 10-second window passes rate x 10 by more than 3%.
BURST_SECONDS = 0.3
MAX_BURST = 25

_RESERVE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local earliest = now - tonumber(ARGV[3] or '0') * interval
if tat < earliest then tat = earliest end
local next_tat = tat + tonumber(ARGV[2]) * interval
local ttl = math.max(0, math.ceil((next_tat - now) * 1000)) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX', ttl)
return string.format('%.6f', tat - now)
"""


class RateLimiter:
    """Spaces sends 1/rate seconds apart across every process that uses the same Redis key."""

    def __init__(self, redis: Redis, key: str, rate_per_second: float | None,
                 burst: int = 0) -> None:
        self.redis = redis
        self.key = KEY_PREFIX + key
        self.rate = float(rate_per_second or 0)
        if self.rate < 0 or burst < 0:
            raise ValueError("rate_per_second and burst must not be negative")
        self.burst = int(burst)
        self.interval = 1.0 / self.rate if self.rate else 0.0
        self._script = redis.register_script(_RESERVE) if self.rate else None

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.key!r}, rate={self.rate:g}/s, burst={self.burst})"

    def acquire(self, n: int = 1) -> float:
        """Reserve n slots; return the seconds to wait before the first (0 when unlimited)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        if self._script is None:
            return 0.0
        return max(0.0, float(self._script(keys=[self.key],
                                               args=[repr(self.interval), n, self.burst])))

    def wait(self, n: int = 1) -> list[float]:
        """Reserve n slots, sleep until the first; return each slot's offset from now."""
        delay = self.acquire(n)
        if delay > 0:
            counters.count_wait(self.key.removeprefix(KEY_PREFIX), delay, client=self.redis)
            time.sleep(delay)
        return [i * self.interval for i in range(n)]


def parse_rates(spec: str | None) -> dict[str, float]:
    """Parse SMS_RATE_PER_SENDER, e.g. "+15550001111=1,MGxxxx=100", into sender → rate."""
    rates: dict[str, float] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        sender, sep, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not sep or not sender.strip() or rate < 0:
            raise ConfigurationError(
                f"SMS_RATE_PER_SENDER must look like +15550001111=1,MGxxxx=100; bad item {item!r}")
        rates[sender.strip()] = rate
    return rates


def sender_rate(config: Any, sender: str | None) -> float:
    """Sends per second for a sender: its SMS_RATE_PER_SENDER entry, else SMS_RATE_PER_SECOND."""
    overrides = parse_rates(config.get("SMS_RATE_PER_SENDER"))
    if sender and sender in overrides:
        return overrides[sender]
    try:
        return float(config.get("SMS_RATE_PER_SECOND") or 0)
    except (TypeError, ValueError):
        raise ConfigurationError("SMS_RATE_PER_SECOND must be a number") from None


def for_sender(app: Flask, sender: str | None) -> RateLimiter:
    """The limiter all workers share for one SMS sender (a phone number or Messaging Service)."""
    # One key per sender: carriers and Twilio meter throughput per number or service.
    rate = sender_rate(app.config, sender)
    return RateLimiter(connection(app), f"sms:{sender or 'default'}", rate,
                       burst=min(MAX_BURST, int(rate * BURST_SECONDS)))
