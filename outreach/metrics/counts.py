"""Messages per status for the metrics, fast on big blasts.

Counting a million messages per status walks a million index entries (a quarter of a second on
PostgreSQL). Once a blast is prepared, its `total` is the number of its messages: the prepare
job writes the messages and `total` in one transaction, and messages are never deleted. So the
largest status (delivered when most messages got a delivery event, else sent) is derived as
`total` minus the others, which are counted through ranges of the (blast_id, status) index.
Should `total` ever disagree (the others add up to more), every status is counted instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.blasts.models import BlastStatus, Message, MessageStatus, counts_template
from outreach.slow_counts import last_value, remembered

PREPARED = (BlastStatus.SENDING.value, BlastStatus.PAUSED.value, BlastStatus.DONE.value,
            BlastStatus.CANCELED.value)
STATUSES = tuple(s.value for s in MessageStatus)


def _count(db: Session, ids: Sequence[int], statuses: Sequence[str] | None = None
           ) -> dict[int, dict[str, int]]:
    """Messages per status of each blast (only these statuses when given), with their sum."""
    out: dict[int, dict[str, int]] = {i: counts_template() for i in ids}
    if not ids:
        return out
    query = (sa.select(Message.blast_id, Message.status, sa.func.count())
             .where(Message.blast_id.in_(ids)).group_by(Message.blast_id, Message.status))
    if statuses is not None:
        query = query.where(Message.status.in_(statuses))
    for blast_id, status, n in db.execute(query):
        out[blast_id][status] = int(n)
        out[blast_id]["total"] += int(n)
    return out


def status_counts(db: Session, blasts: Sequence[Any], delivered_events: dict[int, int]
                  ) -> dict[int, dict[str, int]]:
    """Messages per status (and "failed_after_send") of blasts with id, status and total.

    delivered_events: per blast, how many messages got a delivery event (from the rollups),
    to guess the largest status. Each blast's counts are remembered while they are slow to
    count (outreach.slow_counts), keyed by its status so a state change counts afresh.
    """
    return {blast.id: remembered(f"blast:{blast.id}:{blast.status}",
                                 lambda blast=blast: _blast_counts(db, blast, delivered_events),
                                 rows=lambda counts: counts["total"])
            for blast in blasts}


def _largest_guess(blast: Any, delivered_events: dict[int, int]) -> str:
    """The status most of a prepared blast's messages probably have: the one not counted.

    While a blast sends, queued shrinks as sent grows; the largest status of the last count
    is the best guess (a wrong guess costs time, never correctness).
    """
    if blast.status in (BlastStatus.SENDING.value, BlastStatus.PAUSED.value):
        last = last_value(f"blast:{blast.id}:{blast.status}")
        if last:
            return max(STATUSES, key=lambda s: last.get(s, 0))
        return "queued"
    return "delivered" if 2 * delivered_events.get(blast.id, 0) > blast.total else "sent"


def _blast_counts(db: Session, blast: Any, delivered_events: dict[int, int]) -> dict[str, int]:
    counts: dict[str, int] | None = None
    if blast.status in PREPARED and blast.total:
        big = _largest_guess(blast, delivered_events)
        counts = _count(db, [blast.id], [s for s in STATUSES if s != big])[blast.id]
        rest = blast.total - counts["total"]
        if rest >= 0:
            counts[big], counts["total"] = rest, blast.total
        else:
            counts = None  # total disagrees: count every status
    if counts is None:
        counts = _count(db, [blast.id])[blast.id]
    counts["failed_after_send"] = int(db.scalar(
        sa.select(sa.func.count()).select_from(Message)
        .where(Message.blast_id == blast.id, Message.status == "failed",
               Message.sent_at.is_not(None))) or 0)
    return counts
