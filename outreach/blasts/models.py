"""Blasts, their messages (one per contact) and their tracked links."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow


class BlastStatus(enum.StrEnum):
    """Where a blast stands."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PREPARING = "preparing"
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELED = "canceled"


# The states in which a blast sends: while preparing too, each chunk of its messages once
# written.
ACTIVE = (BlastStatus.PREPARING.value, BlastStatus.SENDING.value)


class MessageStatus(enum.StrEnum):
    """Where one message stands; it only ever moves forward (see RANK)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the provider may or may not have it: never resent
    CANCELED = "canceled"


# A later provider event may move a message to a higher rank, never to a lower one.
RANK = {"queued": 0, "sending": 1, "unknown": 2, "sent": 2, "delivered": 3, "bounced": 4,
        "failed": 4, "canceled": 5}


class Blast(Base):
    """One send of one template version to an audience."""

    __tablename__ = "blasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    channel: Mapped[str] = mapped_column(sa.String(10))
    template_id: Mapped[int] = mapped_column(sa.ForeignKey("templates.id"))
    template_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("template_versions.id"))
    list_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    segment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("segments.id", ondelete="SET NULL"))
    exclude_list_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_start: Mapped[str | None] = mapped_column(sa.String(5))  # "HH:MM" recipient time
    window_end: Mapped[str | None] = mapped_column(sa.String(5))
    throttle_per_minute: Mapped[int | None] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(12), default=BlastStatus.DRAFT.value,
                                        index=True)
    status_reason: Mapped[str | None] = mapped_column(sa.Text)  # why paused, waiting or failed
    total: Mapped[int] = mapped_column(default=0)
    # While a preparation is under way: the contact id up to which it has written messages
    # (in chunks, each committed with this mark; workers send the written ones meanwhile).
    # NULL before and after: a paused blast with messages and no mark is fully prepared.
    prepared_through: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Message(Base):
    """A blast's message to one contact: its address, status and provider id."""

    __tablename__ = "messages"
    # Every index here gets an entry per message inserted and per update (none is HOT: status
    # is indexed), so there are no more than the queries need (migration 0008): contact first
    # in the (contact, blast) key so that it also serves lookups by contact, and the provider
    # id indexed only once there is one.
    __table_args__ = (
        sa.UniqueConstraint("contact_id", "blast_id"),
        sa.UniqueConstraint("blast_id", "address"),
        sa.Index("ix_messages_blast_status", "blast_id", "status"),
        sa.Index("ix_messages_provider_id", "provider_id",
                 postgresql_where=sa.text("provider_id IS NOT NULL"),
                 sqlite_where=sa.text("provider_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    blast_id: Mapped[int] = mapped_column(sa.ForeignKey("blasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(sa.String(320))
    status: Mapped[str] = mapped_column(sa.String(10), default=MessageStatus.QUEUED.value)
    provider_id: Mapped[str | None] = mapped_column(sa.String(100))
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_code: Mapped[str | None] = mapped_column(sa.String(20))
    segments: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())  # window / quiet hours
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Link(Base):
    """A distinct URL of a blast's email, tracked by its index."""

    __tablename__ = "links"
    __table_args__ = (sa.UniqueConstraint("blast_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    blast_id: Mapped[int] = mapped_column(sa.ForeignKey("blasts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    url: Mapped[str] = mapped_column(sa.Text)


def counts_template() -> dict[str, Any]:
    """Zeroed message counts in the API's shape."""
    return {"total": 0, **{s.value: 0 for s in MessageStatus}}
