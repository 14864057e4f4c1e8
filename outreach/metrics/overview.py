"""The overview (recent blasts side by side, totals over a period, list growth and opt-outs per
day) and the SMS replies list.

Days are UTC days. Growth per day: new contacts (`contacts.created_at`), list joins
(`list_members.created_at`), opt-outs (consent revocations in the ledger, any source) and new
suppressions (any reason; a lifted suppression is no longer counted).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, BlastStatus
from outreach.contacts.models import ConsentEvent, ConsentStatus, Contact, ListMember, Suppression
from outreach.db import utcnow
from outreach.metrics.service import figures, rate, summaries
from outreach.slow_counts import remembered
from outreach.tracking.models import InboundSms

NOT_SENDING = (BlastStatus.DRAFT.value, BlastStatus.SCHEDULED.value)
RECENT = 10
MAX_DAYS = 365
TOTAL_KEYS = ("audience", "sent", "delivered", "bounced", "failed", "unknown", "unsubscribed",
              "spam_reports", "rate_denominator")
REPLY_KINDS = {"replies": "Replies (no keyword)", "stop": "STOP", "start": "START",
               "help": "HELP"}


def _launched() -> sa.ColumnElement[Any]:
    return sa.func.coalesce(Blast.launched_at, Blast.created_at)


def recent_blasts(db: Session, limit: int = RECENT) -> list[dict[str, Any]]:
    """The latest launched blasts, newest first, each with its core figures."""
    rows = db.execute(sa.select(Blast.id, Blast.name, Blast.channel, Blast.status,
                                Blast.total, Blast.launched_at)
                      .where(Blast.status.not_in(NOT_SENDING))
                      .order_by(_launched().desc(), Blast.id.desc()).limit(limit)).all()
    found = summaries(db, rows)
    empty = figures({}, {})
    return [{"id": r.id, "name": r.name, "channel": r.channel, "status": r.status,
             "launched_at": r.launched_at.isoformat() if r.launched_at else None,
             **found.get(r.id, empty)} for r in rows]


def totals(db: Session, since: datetime) -> dict[str, Any]:
    """The figures of every blast launched since then, added up, with rates over the sums.

    Open and click rates are over the sum of each blast's own base (delivered messages where
    the provider reports deliveries, sent ones elsewhere).
    """
    rows = db.execute(sa.select(Blast.id, Blast.status, Blast.total).where(
        Blast.status.not_in(NOT_SENDING), _launched() >= since)).all()
    per_blast = summaries(db, rows)
    out: dict[str, Any] = {"blasts": len(rows)}
    for key in TOTAL_KEYS:
        out[key] = sum(f[key] for f in per_blast.values())
    for key in ("opens", "clicks"):
        out[key] = {part: sum(f[key][part] for f in per_blast.values())
                    for part in ("unique", "total", "machine")}
    out["click_rate"] = rate(out["clicks"]["unique"], out["rate_denominator"])
    out["open_rate"] = rate(out["opens"]["unique"], out["rate_denominator"])
    out["unsubscribe_rate"] = rate(out["unsubscribed"], out["sent"])
    return out


def _per_day(db: Session, column: Any, since: datetime, *where: Any) -> dict[str, int]:
    day = sa.func.date(column)
    rows = db.execute(sa.select(day, sa.func.count()).where(column >= since, *where)
                      .group_by(day))
    return {str(d)[:10]: int(n) for d, n in rows}


def growth(db: Session, since: datetime) -> dict[str, Any]:
    """New contacts, list joins, opt-outs and suppressions per UTC day since then.

    A million contacts imported this week are a million rows to group: remembered a moment
    when slow (outreach.slow_counts).
    """
    return remembered(f"growth:{since.isoformat()}:{utcnow().date().isoformat()}",
                      lambda: _growth(db, since),
                      rows=lambda grown: sum(sum(v) for k, v in grown.items() if k != "days"))


def _growth(db: Session, since: datetime) -> dict[str, Any]:
    first: date = since.date()
    days = [(first + timedelta(days=i)).isoformat()
            for i in range((utcnow().date() - first).days + 1)]
    series = {
        "contacts": _per_day(db, Contact.created_at, since),
        "list_joins": _per_day(db, ListMember.created_at, since),
        "opt_outs": _per_day(db, ConsentEvent.created_at, since,
                             ConsentEvent.status == ConsentStatus.REVOKED.value),
        "suppressions": _per_day(db, Suppression.created_at, since),
    }
    return {"days": days, **{name: [values.get(d, 0) for d in days]
                             for name, values in series.items()}}


def overview(db: Session, days: int) -> dict[str, Any]:
    """Everything the overview shows for the last `days` days (1 to 365)."""
    days = max(1, min(MAX_DAYS, days))
    since = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)
    grown = growth(db, since)
    return {"days": days, "since": since.isoformat(), "recent": recent_blasts(db),
            "totals": totals(db, since), "growth": grown,
            "growth_totals": {k: sum(v) for k, v in grown.items() if k != "days"}}


def replies(db: Session, kind: str | None = None, before: int | None = None, limit: int = 50
            ) -> tuple[list[Any], int | None]:
    """Inbound texts newest first (optionally one keyword, or plain replies), and the next id."""
    query = (sa.select(InboundSms.id, InboundSms.from_number, InboundSms.body,
                       InboundSms.keyword, InboundSms.created_at, InboundSms.contact_id,
                       Contact.first_name, Contact.last_name)
             .outerjoin(Contact, Contact.id == InboundSms.contact_id)
             .order_by(InboundSms.id.desc()).limit(limit + 1))
    if kind == "replies":
        query = query.where(InboundSms.keyword.is_(None))
    elif kind in REPLY_KINDS:
        query = query.where(InboundSms.keyword == kind)
    if before:
        query = query.where(InboundSms.id < before)
    rows = db.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
