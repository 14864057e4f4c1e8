"""Applying send windows and SMS quiet hours to a blast's messages, one UPDATE per zone."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Message, MessageStatus
from outreach.blasts.schedule import Rules, allowed_interval, parse_hhmm
from outreach.contacts.models import Contact
from outreach.db import utcnow


def rules_for(blast: Blast) -> Rules:
    """The blast's daily window and, for SMS, the configured quiet hours."""
    config = current_app.config
    window = ((parse_hhmm(blast.window_start), parse_hhmm(blast.window_end))
              if blast.window_start and blast.window_end else None)
    if blast.channel != "sms":
        return Rules(window=window)
    return Rules(window=window,
                 quiet_hours=(parse_hhmm(config["SMS_QUIET_START"]),
                              parse_hhmm(config["SMS_QUIET_END"])),
                 early_end=parse_hhmm(config["SMS_QUIET_END_FL_OK"]))


def apply_windows(db: Session, blast: Blast, now: datetime,
                  ids: tuple[int, int] | None = None) -> None:
    """Set not_before/not_after on the queued messages, per distinct (zone, state); only on
    those with ids in the range `ids` when given (the chunk a preparation just wrote)."""
    rules = rules_for(blast)
    if rules.window is None and rules.quiet_hours is None:
        return
    scope = [Message.blast_id == blast.id, Message.status == MessageStatus.QUEUED.value]
    if ids is not None:
        scope.append(Message.id.between(*ids))
    groups = db.execute(sa.select(Contact.timezone, Contact.region).distinct()
                        .join(Message, Message.contact_id == Contact.id)
                        .where(*scope)).all()
    for timezone, region in groups:
        start, end = allowed_interval(now, timezone, region, rules)
        members = sa.select(Contact.id).where(
            Contact.timezone.is_(None) if timezone is None else Contact.timezone == timezone,
            Contact.region.is_(None) if region is None else Contact.region == region)
        db.execute(sa.update(Message).where(*scope, Message.contact_id.in_(members))
            .values(not_before=None if start is not None and start <= now else start,
                    not_after=end).execution_options(synchronize_session=False))


def roll_expired_windows(db: Session, blast: Blast, first_id: int, last_id: int) -> None:
    """Move queued messages whose window closed before they went out to their next window."""
    now = utcnow()
    expired = db.execute(
        sa.select(Message.id, Contact.timezone, Contact.region)
        .join(Contact, Contact.id == Message.contact_id, isouter=True)
        .where(Message.blast_id == blast.id, Message.id.between(first_id, last_id),
               Message.status == MessageStatus.QUEUED.value, Message.not_after.is_not(None),
               Message.not_after <= now)).all()
    if not expired:
        return
    rules = rules_for(blast)
    updates = []
    for message_id, timezone, region in expired:
        start, end = allowed_interval(now, timezone, region, rules)
        updates.append({"mid": message_id, "nb": start, "na": end})
    table = Message.__table__
    db.execute(table.update().where(table.c.id == sa.bindparam("mid"))
               .values(not_before=sa.bindparam("nb", type_=table.c.not_before.type),
                       not_after=sa.bindparam("na", type_=table.c.not_after.type)), updates)
    db.commit()
