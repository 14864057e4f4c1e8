"""A blast's figures: outcomes from message counts, engagement from rollups, rates and links.

How each figure is computed (never by scanning `events`; message counts as in
outreach.metrics.counts):
- audience: the blast's messages (one per recipient, written when the audience was prepared).
- sent: messages the provider accepted: status sent, delivered or bounced, or failed after
  acceptance (sent_at set: dropped by SendGrid, undelivered by Twilio).
- delivered, failed, unknown, canceled, pending (queued or sending): messages in that status.
- bounced: messages in status bounced; "hard" when the address carries a hard_bounce
  suppression on the blast's channel or the message had a bounce event of type "bounce";
  "soft" otherwise (blocked: the receiver refused the sender, not the address). See
  outreach.metrics.bounces.
- unsubscribed (opt-outs): first human unsubscribe per message (rollups' unique counts of
  "unsubscribe" and "group_unsubscribe"): the footer page, RFC 8058 one-click, SendGrid's
  unsubscribe events and STOP replies attributed to the last text sent to that number.
- spam_reports: first spam report per message (rollups' unique count of "spamreport").
- opens and clicks: "unique" and "total" count humans only: unique is the first human open
  per message, and for clicks a message's first human click on any link (the "clicker"
  rollup); "machine" is the total of machine ones (proxies, scanners, honeypot).
- rates: over delivered messages once any delivery event came in, else over sent ones;
  click-to-open is unique human clicks over unique human opens.
- SMS: segments of the messages sent, times SMS_SEGMENT_PRICE (default 0.0079 USD).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Link, Message, counts_template
from outreach.db import utcnow
from outreach.metrics.bounces import hard_bounces
from outreach.metrics.counts import status_counts
from outreach.tracking.models import NO_LINK, Rollup

DEFAULT_SEGMENT_PRICE = 0.0079
SENT_STATUSES = ("sent", "delivered", "bounced")
OPT_OUT_KINDS = ("unsubscribe", "group_unsubscribe")
MAX_HOURLY_POINTS = 24 * 14  # a longer timeline is drawn per day
Sums = dict[tuple[str, int, bool], tuple[int, int]]


def sent_condition() -> sa.ColumnElement[bool]:
    """Messages the provider accepted (the "sent" figure and the recipients filter)."""
    return sa.or_(Message.status.in_(SENT_STATUSES),
                  sa.and_(Message.status == "failed", Message.sent_at.is_not(None)))


def rate(part: int, whole: int) -> float | None:
    """part / whole rounded to 4 places, or None when whole is 0."""
    return round(part / whole, 4) if whole else None


def rollup_sums(db: Session, ids: Any) -> dict[int, Sums]:
    """{blast: {(kind, link, machine): (total, unique)}} summed over hours."""
    out: dict[int, Sums] = defaultdict(dict)
    rows = db.execute(
        sa.select(Rollup.blast_id, Rollup.kind, Rollup.link_position, Rollup.machine,
                  sa.func.sum(Rollup.total), sa.func.sum(Rollup.unique_count))
        .where(Rollup.blast_id.in_(ids))
        .group_by(Rollup.blast_id, Rollup.kind, Rollup.link_position, Rollup.machine))
    for blast_id, kind, link, machine, total, unique in rows:
        out[blast_id][(kind, int(link), bool(machine))] = (int(total or 0), int(unique or 0))
    return out


def _total(sums: Sums, kinds: Iterable[str], machine: bool | None = None,
           unique: bool = False, link: int | None = None) -> int:
    """Sum of rollup totals (or unique counts) over kinds, any link unless one is given."""
    wanted = set(kinds)
    return sum(pair[1 if unique else 0] for (kind, pos, mach), pair in sums.items()
               if kind in wanted and (machine is None or mach == machine)
               and (link is None or pos == link))


def figures(counts: dict[str, int], sums: Sums) -> dict[str, Any]:
    """The contract's figures (and rates) from status counts and rollup sums."""
    sent = sum(counts.get(s, 0) for s in SENT_STATUSES) + counts.get("failed_after_send", 0)
    delivered = counts.get("delivered", 0)
    delivery_events = _total(sums, ["delivered"]) > 0
    base = delivered if delivery_events else sent
    opens = {"unique": _total(sums, ["open"], False, unique=True),
             "total": _total(sums, ["open"], False), "machine": _total(sums, ["open"], True)}
    clicks = {"unique": _total(sums, ["clicker"], False, unique=True),
              "total": _total(sums, ["click"], False), "machine": _total(sums, ["click"], True)}
    unsubscribed = _total(sums, OPT_OUT_KINDS, False, unique=True)
    return {
        "audience": counts.get("total", 0), "sent": sent, "delivered": delivered,
        "bounced": counts.get("bounced", 0), "failed": counts.get("failed", 0),
        "unknown": counts.get("unknown", 0), "canceled": counts.get("canceled", 0),
        "pending": counts.get("queued", 0) + counts.get("sending", 0),
        "unsubscribed": unsubscribed,
        "spam_reports": _total(sums, ["spamreport"], False, unique=True),
        "opens": opens, "clicks": clicks,
        "rate_base": "delivered" if delivery_events else "sent", "rate_denominator": base,
        "delivery_rate": rate(delivered, sent) if delivery_events else None,
        "open_rate": rate(opens["unique"], base), "click_rate": rate(clicks["unique"], base),
        "click_to_open_rate": rate(clicks["unique"], opens["unique"]),
        "unsubscribe_rate": rate(unsubscribed, sent),
    }


def summaries(db: Session, blasts: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """The core figures of blasts (rows with id, status and total) in four queries or so."""
    ids = [b.id for b in blasts]
    if not ids:
        return {}
    sums = rollup_sums(db, ids)
    counts = status_counts(db, blasts, _delivered(sums))
    return {i: figures(counts.get(i, counts_template()), sums.get(i, {})) for i in ids}


def _delivered(sums: dict[int, Sums]) -> dict[int, int]:
    return {i: _total(s, ["delivered"], unique=True) for i, s in sums.items()}


def message_counts(db: Session, blasts: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """Messages per status of blasts, as the blast pages and the blasts API show them."""
    counts = status_counts(db, blasts, _delivered(rollup_sums(db, [b.id for b in blasts])))
    return {i: {k: v for k, v in c.items() if k != "failed_after_send"}
            for i, c in counts.items()}


def segment_price() -> float:
    """The configured price of one SMS segment (SMS_SEGMENT_PRICE, USD)."""
    try:
        return float(current_app.config.get("SMS_SEGMENT_PRICE", DEFAULT_SEGMENT_PRICE))
    except (TypeError, ValueError):
        return DEFAULT_SEGMENT_PRICE


def sms_cost(db: Session, blast: Blast) -> dict[str, Any]:
    """SMS segments of the messages sent, and their estimated cost."""
    segments = int(db.scalar(sa.select(sa.func.coalesce(sa.func.sum(Message.segments), 0))
                             .where(Message.blast_id == blast.id, sent_condition())) or 0)
    price = segment_price()
    return {"segments": segments, "segment_price": price, "currency": "USD",
            "cost": round(segments * price, 4)}


def links(db: Session, blast_id: int, sums: Sums) -> list[dict[str, Any]]:
    """The blast's links in order, with human clicks (total, unique) and machine clicks."""
    rows = db.execute(sa.select(Link.position, Link.url).where(Link.blast_id == blast_id)
                      .order_by(Link.position))
    return [{"position": pos, "url": url,
             "clicks": _total(sums, ["click"], False, link=pos),
             "unique": _total(sums, ["click"], False, unique=True, link=pos),
             "machine": _total(sums, ["click"], True, link=pos)} for pos, url in rows]


def blast_metrics(db: Session, blast: Blast) -> dict[str, Any]:
    """Every figure of one blast, in the API's shape (the contract's names and more)."""
    sums = rollup_sums(db, [blast.id]).get(blast.id, {})
    counts = status_counts(db, [blast], {blast.id: _total(sums, ["delivered"], unique=True)})
    body = figures(counts[blast.id], sums)
    hard = hard_bounces(db, blast, body["bounced"])
    return {
        "blast_id": blast.id, "name": blast.name, "channel": blast.channel,
        "status": blast.status, **body,
        "bounces": {"hard": hard, "soft": body["bounced"] - hard},
        "links": links(db, blast.id, sums),
        "honeypot_clicks": _total(sums, ["click"], True, link=NO_LINK),
        "sms": sms_cost(db, blast) if blast.channel == "sms" else None,
        "generated_at": utcnow().isoformat(),
    }


def _bucket(when: datetime, unit: str) -> datetime:
    when = when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0) if unit == "day" else when


def timeline(db: Session, blast: Blast) -> dict[str, Any]:
    """Opens and clicks per hour (per day past two weeks), human and machine apart."""
    rows = db.execute(
        sa.select(Rollup.hour, Rollup.kind, Rollup.machine, sa.func.sum(Rollup.total))
        .where(Rollup.blast_id == blast.id, Rollup.kind.in_(("open", "click")))
        .group_by(Rollup.hour, Rollup.kind, Rollup.machine).order_by(Rollup.hour)).all()
    names = ("opens_human", "opens_machine", "clicks_human", "clicks_machine")
    if not rows:
        return {"unit": "hour", "at": [], "labels": [], **{n: [] for n in names}}
    first, last = rows[0][0], rows[-1][0]
    if blast.launched_at is not None and blast.launched_at < first:
        first = blast.launched_at
    unit = "day" if (last - first) > timedelta(hours=MAX_HOURLY_POINTS) else "hour"
    step = timedelta(days=1) if unit == "day" else timedelta(hours=1)
    start, end = _bucket(first, unit), _bucket(last, unit)
    points = [start + step * i for i in range(int((end - start) / step) + 1)]
    index = {point: i for i, point in enumerate(points)}
    series = {n: [0] * len(points) for n in names}
    for hour, kind, machine, total in rows:
        name = ("opens_" if kind == "open" else "clicks_") + ("machine" if machine else "human")
        series[name][index[_bucket(hour, unit)]] += int(total or 0)
    label = "%b %d" if unit == "day" else "%b %d %H:00"
    return {"unit": unit, "at": [p.isoformat() for p in points],
            "labels": [p.strftime(label) for p in points], **series}
