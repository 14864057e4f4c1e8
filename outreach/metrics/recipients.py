"""A blast's recipients filtered by outcome, a page at a time (keyset on the message id) or as CSV.

Outcomes: sent (accepted by the provider, as the "sent" figure), delivered, bounced, failed,
unknown (by the message's status now); opened, clicked (at least one human open or click, from
`events`); unsubscribed (an unsubscribe, group_unsubscribe or attributed STOP event). Each row
carries the message's human opens and clicks, read for the page's ids only through the
(message_id, kind) index.

Common outcomes are found by walking the blast's messages in id order. Rare ones (under a
tenth of a big blast) are read the other way round: a status through the (blast_id, status)
index, an event outcome as the sorted distinct message ids of its events through the
(blast_id, kind) index, so that a page never walks a million messages to find fifty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Message
from outreach.contacts.models import Contact
from outreach.csv_cells import cell
from outreach.metrics.service import OPT_OUT_KINDS, sent_condition
from outreach.tracking.models import Event, Rollup

OUTCOMES: dict[str, str] = {
    "sent": "Sent", "delivered": "Delivered", "bounced": "Bounced", "failed": "Failed",
    "unknown": "Unknown", "opened": "Opened (human)", "clicked": "Clicked (human)",
    "unsubscribed": "Opted out",
}
STATUS_OUTCOMES = ("delivered", "bounced", "failed", "unknown")
SPARSE_MIN_TOTAL = 10_000  # smaller blasts are read in id order whatever the outcome
SPARSE_SHARE = 10  # rare: held by under 1/SPARSE_SHARE of the blast's messages
EVENT_OUTCOMES = {"opened": ("open",), "clicked": ("click",), "unsubscribed": OPT_OUT_KINDS}
ROLLUP_KINDS = {"opened": ("open",), "clicked": ("clicker",), "unsubscribed": OPT_OUT_KINDS}
CSV_COLUMNS = ("message_id", "address", "contact_id", "first_name", "last_name", "status",
               "sent_at", "delivered_at", "opens", "clicks", "unsubscribed", "error")
CSV_CHUNK = 1000


def _event_ids(blast_id: int, outcome: str) -> sa.Select[Any]:
    """The message ids of an event outcome's events (human ones for opens and clicks)."""
    query = sa.select(Event.message_id).where(Event.blast_id == blast_id,
                                              Event.kind.in_(EVENT_OUTCOMES[outcome]))
    return query if outcome == "unsubscribed" else query.where(Event.machine.is_(False))


def outcome_condition(blast_id: int, outcome: str | None) -> sa.ColumnElement[bool] | None:
    """The SQL condition of an outcome filter (None for every recipient); ValueError if unknown."""
    if not outcome:
        return None
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if outcome == "sent":
        return sent_condition()
    if outcome in EVENT_OUTCOMES:
        return Message.id.in_(_event_ids(blast_id, outcome))
    return Message.status == outcome


def _engagement(db: Session, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Human opens, clicks and opt-outs per message, for these message ids."""
    out: dict[int, dict[str, int]] = {i: {"opens": 0, "clicks": 0, "unsubscribed": 0}
                                      for i in ids}
    if not ids:
        return out
    key = {"open": "opens", "click": "clicks", **dict.fromkeys(OPT_OUT_KINDS, "unsubscribed")}
    rows = db.execute(sa.select(Event.message_id, Event.kind, sa.func.count())
                      .where(Event.message_id.in_(ids), Event.kind.in_(list(key)),
                             Event.machine.is_(False))
                      .group_by(Event.message_id, Event.kind))
    for message_id, kind, n in rows:
        if kind in OPT_OUT_KINDS:
            out[message_id]["unsubscribed"] = 1  # a flag: page, provider or STOP alike
        else:
            out[message_id][key[kind]] += int(n)
    return out


def sparse(db: Session, blast_id: int, outcome: str | None) -> bool:
    """True when under a tenth of a big blast's messages have this outcome (see above)."""
    if outcome not in STATUS_OUTCOMES and outcome not in EVENT_OUTCOMES:
        return False
    total = int(db.scalar(sa.select(Blast.total).where(Blast.id == blast_id)) or 0)
    if total < SPARSE_MIN_TOTAL:
        return False
    cap = total // SPARSE_SHARE
    if outcome in EVENT_OUTCOMES:  # people, from the rollups' unique counts
        kinds = ROLLUP_KINDS[outcome]
        found = db.scalar(sa.select(sa.func.sum(Rollup.unique_count)).where(
            Rollup.blast_id == blast_id, Rollup.kind.in_(kinds), Rollup.machine.is_(False)))
    else:  # count no further than the cap through the index
        found = db.scalar(sa.select(sa.func.count()).select_from(
            sa.select(sa.literal(1)).where(Message.blast_id == blast_id,
                                           Message.status == outcome).limit(cap).subquery()))
    return int(found or 0) < cap


def recipients_page(db: Session, blast_id: int, outcome: str | None = None,
                    after: int | None = None, limit: int = 50, few: bool | None = None
                    ) -> tuple[list[dict[str, Any]], int | None]:
    """Up to limit recipients after a message id, and the id to continue after (or None).

    few: whether the outcome is rare (see `sparse`); found out when None.
    """
    if few is None:
        few = sparse(db, blast_id, outcome)
    query = (sa.select(Message.id, Message.address, Message.contact_id, Message.status,
                       Message.sent_at, Message.delivered_at, Message.error,
                       Contact.first_name, Contact.last_name)
             .outerjoin(Contact, Contact.id == Message.contact_id)
             .where(Message.blast_id == blast_id).limit(limit + 1))
    if few and outcome in EVENT_OUTCOMES:
        mid = (Event.message_id + 0).label("mid")  # through the (blast_id, kind) index
        ids = (_event_ids(blast_id, outcome).with_only_columns(mid).distinct()
               .order_by(mid).limit(limit + 1))
        if after:
            ids = ids.where(Event.message_id > after)
        query = query.where(Message.id.in_(list(db.scalars(ids))))
    else:
        condition = outcome_condition(blast_id, outcome)
        if condition is not None:
            query = query.where(condition)
        if after:
            query = query.where((Message.id + 0 if few else Message.id) > after)
    # "+ 0": a rare status is read through its index and sorted, not looked for in id order
    query = query.order_by(Message.id + 0 if few else Message.id)
    rows = db.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    engagement = _engagement(db, [r.id for r in rows])
    data = [{"message_id": r.id, "address": r.address, "contact_id": r.contact_id,
             "first_name": r.first_name, "last_name": r.last_name, "status": r.status,
             "sent_at": r.sent_at, "delivered_at": r.delivered_at, "error": r.error,
             **engagement[r.id]} for r in rows]
    return data, (rows[-1].id if more and rows else None)


def recipient_json(row: dict[str, Any]) -> dict[str, Any]:
    """A recipient row as the API shows it (timestamps in ISO 8601)."""
    return {**row, "unsubscribed": bool(row["unsubscribed"]),
            **{k: row[k].isoformat() if row[k] else None for k in ("sent_at", "delivered_at")}}


def _line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([cell(v) for v in values])
    return buffer.getvalue()


def recipients_csv(engine: sa.Engine, blast_id: int, outcome: str | None) -> Iterator[str]:
    """The filtered recipients as CSV text, chunk by chunk, from a session of its own.

    Each chunk is read in its own short transaction, so a slow download never holds a
    connection idle in transaction; a client that goes away closes the generator and session.
    """
    outcome_condition(blast_id, outcome)  # refuse an unknown outcome before streaming
    yield _line(CSV_COLUMNS)
    with Session(engine) as session:
        few = sparse(session, blast_id, outcome)
        after: int | None = None
        while True:
            rows, after = recipients_page(session, blast_id, outcome, after, CSV_CHUNK, few)
            session.rollback()  # end the read-only transaction between chunks
            if rows:
                yield "".join(_line([row[c] for c in CSV_COLUMNS]) for row in rows)
            if after is None:
                return
