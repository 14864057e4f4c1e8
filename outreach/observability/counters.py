"""Process-shared counters in one Redis hash, incremented where the work already happens.

Every web process and worker adds to the same `outreach:counters` hash (HINCRBY, or
HINCRBYFLOAT for seconds), so `/metrics` reports totals for the whole deployment with one
HGETALL. A field is the series as Prometheus writes it without the `outreach_` prefix, e.g.
`messages_sent_total{channel="email"}`. Counting is best effort: a Redis failure is logged
and swallowed, because losing a count must never break sending or a webhook.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis

log = logging.getLogger(__name__)
KEY = "outreach:counters"

# The counters this project increments, with the help text /metrics prints for them.
HELP: dict[str, str] = {
    "messages_sent_total": "Messages the provider accepted, per channel.",
    "messages_failed_total": "Messages the provider refused permanently, per channel.",
    "messages_retried_total": "Send attempts put back for a retry (429, 5xx), per channel.",
    "messages_unknown_total": "Send attempts whose outcome is unknown, per channel.",
    "webhook_events_total": "Authenticated provider webhook events received.",
    "tracking_hits_buffered_total": "Open and click hits buffered in Redis.",
    "tracking_hits_flushed_total": "Buffered tracking hits written to the database.",
    "ratelimit_waits_total": "Sends that waited for the shared SMS rate limiter.",
    "ratelimit_wait_seconds_total": "Seconds spent waiting for the shared SMS rate limiter.",
}
# Series /metrics shows as 0 before their first increment, so rate() works from the start.
ZERO_SERIES: dict[str, list[dict[str, str]]] = {
    **{name: [{"channel": "email"}, {"channel": "sms"}] for name in (
        "messages_sent_total", "messages_failed_total", "messages_retried_total",
        "messages_unknown_total")},
    "webhook_events_total": [{"provider": "sendgrid", "webhook": "events"},
                             {"provider": "twilio", "webhook": "status"},
                             {"provider": "twilio", "webhook": "inbound"}],
    "tracking_hits_buffered_total": [{}],
    "tracking_hits_flushed_total": [{}],
}
# Message statuses record_results writes, and the counter each one adds to.
OUTCOME_COUNTERS = {"sent": "messages_sent_total", "failed": "messages_failed_total",
                    "queued": "messages_retried_total", "unknown": "messages_unknown_total"}


def series(name: str, labels: Mapping[str, Any]) -> str:
    """The hash field (Prometheus series without prefix) for a name and its labels."""
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _client(client: Redis | None) -> Redis:
    if client is not None:
        return client
    from outreach.queue import redis

    return redis()


def incr(name: str, amount: float = 1, *, client: Redis | None = None, **labels: Any) -> None:
    """Add amount to a counter (one Redis round trip); never raises."""
    incr_many([(name, amount, labels)], client=client)


def incr_many(items: Iterable[tuple[str, float, Mapping[str, Any]]], *,
              client: Redis | None = None) -> None:
    """Add to several counters in one pipelined round trip; never raises."""
    try:
        pending = [(series(name, labels), amount) for name, amount, labels in items if amount]
        if not pending:
            return
        pipe = _client(client).pipeline(transaction=False)
        for field, amount in pending:
            if isinstance(amount, float):
                pipe.hincrbyfloat(KEY, field, amount)
            else:
                pipe.hincrby(KEY, field, amount)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - a lost count must never break the counted work
        log.warning("could not update counters: %s: %s", type(exc).__name__, exc)


def count_outcomes(channel: str, statuses: Iterable[str]) -> None:
    """Count a batch's recorded message statuses per channel (one round trip per batch)."""
    tally = Counter(statuses)
    incr_many((OUTCOME_COUNTERS[status], n, {"channel": channel})
              for status, n in tally.items() if status in OUTCOME_COUNTERS)


def read_all(client: Redis) -> dict[str, float]:
    """Every counter's current value, keyed by series."""
    values: dict[str, float] = {}
    for field, raw in client.hgetall(KEY).items():
        number = float(raw)
        values[field.decode()] = int(number) if number.is_integer() else number
    return values


def count_wait(limiter: str, seconds: float, *, client: Redis | None = None) -> None:
    """Count one wait for a rate limiter, and the seconds it lasted (one round trip)."""
    incr_many([("ratelimit_waits_total", 1, {"limiter": limiter}),
               ("ratelimit_wait_seconds_total", float(seconds), {"limiter": limiter})],
              client=client)
