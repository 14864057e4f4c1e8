"""Engagement and delivery events, their hourly rollups, and inbound text messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow

NO_LINK = -1  # rollups' link_position when an event concerns no link (and the honeypot's)
# The kinds whose unique counts the figures read (opens, clicks and clickers, deliveries,
# opt-outs, spam reports). Deciding "first of its kind" costs a first_engagements row per
# message and kind, so the others (processed, deferred, bounce, dropped, Twilio's
# intermediate statuses: over a third of a provider's events) keep unique_count at 0.
UNIQUE_KINDS = frozenset({"open", "click", "delivered", "spamreport", "unsubscribe",
                          "group_unsubscribe"})


class Event(Base):
    """One delivery or engagement event (append-only; machine ones are flagged, not dropped)."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_blast_kind_occurred", "blast_id", "kind", "occurred_at"),
        sa.Index("ix_events_message_kind", "message_id", "kind"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("messages.id", ondelete="CASCADE"))
    blast_id: Mapped[int | None] = mapped_column(sa.ForeignKey("blasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    # delivered, bounce, dropped, deferred, processed, open, click, spamreport, unsubscribe,
    # group_unsubscribe, group_resubscribe, sent, queued, sending, failed, undelivered, read
    kind: Mapped[str] = mapped_column(sa.String(20))
    machine: Mapped[bool] = mapped_column(default=False)
    link_position: Mapped[int | None] = mapped_column()
    # sg_event_id, f"{MessageSid}:{MessageStatus}", or a uuid for our own hits
    provider_event_id: Mapped[str | None] = mapped_column(sa.String(120), unique=True)
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Rollup(Base):
    """Counters per blast, link, hour, kind and machine flag: metrics never scan events.

    `unique_count` counts events that were the first human one of their kind for their
    message (and link, for clicks); kind "clicker" counts messages' first human click on any
    link. Machine rows, and kinds outside UNIQUE_KINDS, keep unique_count at 0.
    """

    __tablename__ = "rollups"
    __table_args__ = (
        sa.UniqueConstraint("blast_id", "link_position", "hour", "kind", "machine"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    blast_id: Mapped[int] = mapped_column(sa.ForeignKey("blasts.id", ondelete="CASCADE"))
    link_position: Mapped[int] = mapped_column(default=NO_LINK)
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(sa.String(20))
    machine: Mapped[bool] = mapped_column(default=False)
    total: Mapped[int] = mapped_column(default=0)
    unique_count: Mapped[int] = mapped_column(default=0)


class FirstEngagement(Base):
    """A message's first human event of each kind (per link for clicks; "clicker": any link).

    Its primary key decides which event counts as unique: of concurrent writers inserting the
    same key (ON CONFLICT DO NOTHING), exactly one gets the row back, so unique counts stay
    exact with no global lock. link_position is NO_LINK but for clicks.
    """

    __tablename__ = "first_engagements"

    message_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    link_position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The holder's time: an earlier event arriving later takes the key (and the unique count
    # moves to its hour), so counts do not depend on the order events arrive in.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundSms(Base):
    """A text message a supporter sent us (keywords included, for the Replies page)."""

    __tablename__ = "inbound_sms"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    message_sid: Mapped[str] = mapped_column(sa.String(64), unique=True)
    from_number: Mapped[str] = mapped_column(sa.String(32), index=True)
    to_number: Mapped[str] = mapped_column(sa.String(32))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    keyword: Mapped[str | None] = mapped_column(sa.String(10))  # stop, start, help or None
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
