"""The `/metrics` scrape: the Prometheus text exposition format, written by hand.

Format 0.0.4: for each metric a `# HELP` and a `# TYPE` line, then one `name{labels} value`
line per series. Gauges are read at scrape time (queue depths from RQ's keys, messages per
channel and status from the database); counters come from the shared Redis hash that the send
path, the webhooks, the hit buffer and the rate limiter add to (observability.counters).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from redis import Redis
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, BlastStatus, MessageStatus
from outreach.metrics.counts import status_counts
from outreach.observability import counters, queues
from outreach.tracking.buffer import HITS_KEY
from outreach.tracking.models import Rollup

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "outreach_"
CHANNELS = ("email", "sms")


def _metric(lines: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[dict[str, Any], float]]) -> None:
    lines.append(f"# HELP {PREFIX}{name} {help_text}")
    lines.append(f"# TYPE {PREFIX}{name} {kind}")
    for labels, value in samples:
        lines.append(f"{PREFIX}{counters.series(name, labels)} {_number(value)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def message_counts(session: Session) -> dict[str, dict[str, int]]:
    """Messages per channel and status, through the metrics' index-range counting."""
    blasts = session.execute(sa.select(Blast.id, Blast.status, Blast.total, Blast.channel)).all()
    delivered = dict(session.execute(
        sa.select(Rollup.blast_id, sa.func.sum(Rollup.unique_count))
        .where(Rollup.kind == "delivered")
        .group_by(Rollup.blast_id)).all())
    per_blast = status_counts(session, blasts, {k: int(v or 0) for k, v in delivered.items()})
    out = {channel: dict.fromkeys((s.value for s in MessageStatus), 0) for channel in CHANNELS}
    for blast in blasts:
        counts = per_blast.get(blast.id, {})
        channel = out.setdefault(blast.channel, dict.fromkeys((s.value for s in MessageStatus), 0))
        for status in channel:
            channel[status] += int(counts.get(status, 0))
    return out


def blast_counts(session: Session) -> dict[str, int]:
    """Blasts per status."""
    out = dict.fromkeys((s.value for s in BlastStatus), 0)
    for status, n in session.execute(sa.select(Blast.status, sa.func.count())
                                     .group_by(Blast.status)):
        out[status] = int(n)
    return out


def render(session: Session, client: Redis) -> str:
    """Every series, as the text a Prometheus server scrapes."""
    lines: list[str] = []
    depth = queues.queue_counts(client)
    _metric(lines, "queue_jobs", "gauge", "Jobs waiting in each RQ queue.",
            (({"queue": name}, c["waiting"]) for name, c in depth.items()))
    for kind, what in (("started", "running now"), ("failed", "kept in the failed registry"),
                       ("scheduled", "scheduled for later (retries, send times)")):
        _metric(lines, f"queue_{kind}_jobs", "gauge", f"Jobs of each queue {what}.",
                (({"queue": name}, c[kind]) for name, c in depth.items()))
    _metric(lines, "workers", "gauge", "RQ workers alive.",
            [({}, queues.worker_count(client))])
    _metric(lines, "tracking_hits_pending", "gauge",
            "Tracking hits buffered in Redis, not yet written.", [({}, client.llen(HITS_KEY))])
    _metric(lines, "blasts", "gauge", "Blasts per status.",
            (({"status": s}, n) for s, n in blast_counts(session).items()))
    _metric(lines, "messages", "gauge", "Messages per channel and status.",
            (({"channel": ch, "status": s}, n)
             for ch, per in message_counts(session).items() for s, n in per.items()))
    values = {counters.series(name, labels): 0.0
              for name, label_sets in counters.ZERO_SERIES.items() for labels in label_sets}
    values.update(counters.read_all(client))
    by_name: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for field, value in values.items():
        by_name[field.partition("{")[0]].append((field, value))
    for name in sorted(set(counters.HELP) | set(by_name)):
        lines.append(f"# HELP {PREFIX}{name} {counters.HELP.get(name, name)}")
        lines.append(f"# TYPE {PREFIX}{name} counter")
        lines.extend(f"{PREFIX}{field} {_number(value)}" for field, value in sorted(by_name[name]))
    return "\n".join(lines) + "\n"
