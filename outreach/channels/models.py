"""What the outbox adapters stored instead of sending."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow


class OutboxEmail(Base):
    """An email the outbox adapter kept: exactly what a provider would have received."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    from_email: Mapped[str] = mapped_column(sa.String(400))
    to_email: Mapped[str] = mapped_column(sa.String(400), index=True)
    reply_to: Mapped[str | None] = mapped_column(sa.String(400))
    subject: Mapped[str] = mapped_column(sa.Text)
    html: Mapped[str] = mapped_column(sa.Text)
    text: Mapped[str] = mapped_column(sa.Text)
    headers: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class OutboxSms(Base):
    """A text message the outbox adapter kept."""

    __tablename__ = "outbox_sms"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    from_number: Mapped[str] = mapped_column(sa.String(64))
    to_number: Mapped[str] = mapped_column(sa.String(32), index=True)
    body: Mapped[str] = mapped_column(sa.Text)
    segments: Mapped[int] = mapped_column(default=1)
