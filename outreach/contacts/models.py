"""Contacts, lists, tags, segments, the consent ledger, suppressions and tombstones."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow


class Channel(enum.StrEnum):
    """A way of reaching a contact."""

    EMAIL = "email"
    SMS = "sms"


class ConsentStatus(enum.StrEnum):
    """A contact's consent for one channel, as the ledger's latest entry says."""

    NONE = "none"
    GRANTED = "granted"
    REVOKED = "revoked"


class SuppressionReason(enum.StrEnum):
    """Why an address must never be messaged on a channel."""

    UNSUBSCRIBED = "unsubscribed"
    STOP = "stop"
    HARD_BOUNCE = "hard_bounce"
    SPAM_REPORT = "spam_report"
    INVALID = "invalid"
    LANDLINE = "landline"
    UNREACHABLE = "unreachable"
    MANUAL = "manual"
    IMPORTED = "imported"


class Contact(Base):
    """A supporter: at least an email address or a phone number."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(sa.String(20), unique=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(200))
    last_name: Mapped[str | None] = mapped_column(sa.String(200))
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    timezone: Mapped[str | None] = mapped_column(sa.String(64))
    # US state (from the phone's area code or the ZIP): quiet hours differ in FL and OK.
    region: Mapped[str | None] = mapped_column(sa.String(8))
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Current consent, kept equal to the ledger's latest entry by consent.record_consent.
    email_consent: Mapped[str] = mapped_column(sa.String(10), default=ConsentStatus.NONE.value)
    sms_consent: Mapped[str] = mapped_column(sa.String(10), default=ConsentStatus.NONE.value)
    # Engagement, kept by the tracking ingestion so segments never scan events.
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Tag(Base):
    """A label organizers put on contacts."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)


class ContactTag(Base):
    """A tag on a contact."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(
        sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)


class ContactList(Base):
    """A named list of contacts (an audience for blasts, the target of imports and forms)."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ListMember(Base):
    """A contact's membership of a list."""

    __tablename__ = "list_members"

    list_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Segment(Base):
    """A saved rule set over contacts, compiled to one SQL query when used."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    rules: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ConsentEvent(Base):
    """One entry of the append-only consent ledger: a grant or a revocation, with evidence."""

    __tablename__ = "consent_events"
    __table_args__ = (sa.Index("ix_consent_events_contact_channel", "contact_id", "channel", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True)
    contact_id: Mapped[int] = mapped_column(sa.ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(10))
    # import, form, keyword, api, provider, staff, unsubscribe
    source: Mapped[str] = mapped_column(sa.String(20))
    evidence: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Suppression(Base):
    """An address that must never be messaged on a channel, whatever any list says."""

    __tablename__ = "suppressions"
    __table_args__ = (sa.UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    address: Mapped[str] = mapped_column(sa.String(320))
    reason: Mapped[str] = mapped_column(sa.String(20))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SuppressionRemoval(Base):
    """The record an admin leaves when lifting a suppression: who, when and why."""

    __tablename__ = "suppression_removals"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    address: Mapped[str] = mapped_column(sa.String(320))
    original_reason: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.Text)
    removed_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    removed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Tombstone(Base):
    """The hashed address of an erased contact, so a re-import cannot resubscribe them."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TransferStatus(enum.StrEnum):
    """Where a background import or export stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Import(Base):
    """A CSV import: its options, its progress and its outcome."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(10), default=TransferStatus.QUEUED.value)
    filename: Mapped[str] = mapped_column(sa.String(255))
    file_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("stored_files.id", ondelete="SET NULL"))
    list_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lists.id", ondelete="SET NULL"))
    mode: Mapped[str] = mapped_column(sa.String(10), default="add")  # add | update
    consent: Mapped[str] = mapped_column(sa.String(20), default="")  # "", email, sms, email,sms
    consent_source: Mapped[str] = mapped_column(sa.Text, default="")
    # Optional explicit mapping {contact field or "custom:<key>": column index}.
    column_map: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    phase: Mapped[str] = mapped_column(sa.String(20), default="")
    progress: Mapped[int] = mapped_column(default=0)  # percent of the file read
    skipped: Mapped[int] = mapped_column(default=0)  # existing contacts left as they were (add)
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ImportRow(Base):
    """A valid, normalized row staged by an import before it is applied in one transaction."""

    __tablename__ = "import_rows"

    # No foreign key: a staging table filled by COPY would pay a check per row for nothing.
    import_id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(320))
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    first_name: Mapped[str | None] = mapped_column(sa.String(200))
    last_name: Mapped[str | None] = mapped_column(sa.String(200))
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    timezone: Mapped[str | None] = mapped_column(sa.String(64))
    region: Mapped[str | None] = mapped_column(sa.String(8))
    fields: Mapped[str | None] = mapped_column(sa.Text)  # JSON object text, or NULL
    tags: Mapped[str | None] = mapped_column(sa.Text)  # tag names separated by "|"
    raw: Mapped[str] = mapped_column(sa.Text, default="[]")  # the row's values, JSON text


class ImportRejection(Base):
    """A row an import refused, with its line number and the reason."""

    __tablename__ = "import_rejections"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(
        sa.ForeignKey("imports.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(sa.Text)
    values: Mapped[str] = mapped_column(sa.Text, default="[]")  # the row's values, JSON text


class Export(Base):
    """A CSV export of contacts (all, a list or a segment) or of suppressions."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(10), default=TransferStatus.QUEUED.value)
    kind: Mapped[str] = mapped_column(sa.String(20))  # contacts | suppressions
    list_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lists.id", ondelete="SET NULL"))
    segment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("segments.id", ondelete="SET NULL"))
    file_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("stored_files.id", ondelete="SET NULL"))
    rows: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
