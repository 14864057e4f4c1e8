"""Hard and soft bounces of a blast.

A bounced message is a hard bounce when its address carries a hard_bounce suppression on the
blast's channel, or when the provider called it a bounce (a bounce event of type "bounce");
otherwise it is soft (type "blocked": the receiver refused the sender, not the address).

The two sets are read through indexes (bounced messages via (blast_id, status), typed bounce
events via (blast_id, kind)) and united here; the few typed events whose address is not
suppressed are checked against the message's status. A blast's bounced messages change only
as bounce events arrive, so the count is memoized in Redis per (blast, bounced count) for a
minute: a manual change to a suppression shows within that minute.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Message
from outreach.contacts.models import Suppression, SuppressionReason
from outreach.queue import redis
from outreach.tracking.models import Event
from outreach.tracking.service import chunks

log = logging.getLogger(__name__)
MEMO_SECONDS = 60


def count_hard_bounces(db: Session, blast: Blast) -> int:
    """Bounced messages with a hard_bounce suppression or a bounce event of type "bounce"."""
    suppressed = set(db.scalars(
        sa.select(Message.id).join(Suppression, sa.and_(
            Suppression.channel == blast.channel, Suppression.address == Message.address,
            Suppression.reason == SuppressionReason.HARD_BOUNCE.value))
        .where(Message.blast_id == blast.id, Message.status == "bounced")))
    typed = set(db.scalars(
        sa.select(Event.message_id).distinct()
        .where(Event.blast_id == blast.id, Event.kind == "bounce",
               Event.detail["type"].as_string() == "bounce")))
    extra = 0
    for part in chunks(sorted(typed - suppressed)):
        extra += int(db.scalar(sa.select(sa.func.count()).select_from(Message).where(
            Message.id.in_(part), Message.status == "bounced")) or 0)
    return len(suppressed) + extra


def hard_bounces(db: Session, blast: Blast, bounced: int) -> int:
    """The blast's hard bounces, out of `bounced` bounced messages (memoized, see above)."""
    if not bounced:
        return 0
    key = f"outreach:metrics:hard-bounces:{blast.id}:{bounced}"
    try:
        cached = redis().get(key)
    except RedisError:
        log.warning("Redis is unavailable: counting hard bounces without the memo")
        cached = None
    if cached is not None:
        return int(cached)
    count = count_hard_bounces(db, blast)
    try:
        redis().set(key, count, ex=MEMO_SECONDS)
    except RedisError:
        pass
    return count
