"""Consent and suppression: the append-only ledger, the current state it implies, suppressions.

Every change of consent goes through `record_consent`, which appends to the ledger and keeps
the contact's cached current state equal to the ledger's latest entry in the same transaction.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    Suppression,
    SuppressionReason,
    SuppressionRemoval,
    Tombstone,
)
from outreach.exceptions import NotFound, ValidationError

CONSENT_COLUMN = {Channel.EMAIL: "email_consent", Channel.SMS: "sms_consent"}


def parse_channel(value: str) -> Channel:
    """A channel name, or a ValidationError naming the field."""
    try:
        return Channel(value)
    except ValueError:
        raise ValidationError("Unknown channel", {"channel": "must be email or sms"}) from None


def record_consent(db: Session, contact: Contact, channel: Channel, status: ConsentStatus,
                   source: str, evidence: dict[str, Any] | None = None,
                   actor_id: int | None = None) -> ConsentEvent:
    """Append a grant or revocation to the ledger and update the contact's current state."""
    event = ConsentEvent(contact_id=contact.id, channel=channel.value, status=status.value,
                         source=source, evidence=evidence or {}, created_by_id=actor_id)
    db.add(event)
    setattr(contact, CONSENT_COLUMN[channel], status.value)
    return event


def ledger_consent(db: Session, contact_id: int, channel: Channel) -> ConsentStatus:
    """The consent the ledger implies: its latest entry for the channel, or none."""
    status = db.scalar(
        sa.select(ConsentEvent.status)
        .where(ConsentEvent.contact_id == contact_id, ConsentEvent.channel == channel.value)
        .order_by(ConsentEvent.id.desc()).limit(1))
    return ConsentStatus(status) if status else ConsentStatus.NONE


def history(db: Session, contact_id: int) -> list[ConsentEvent]:
    """A contact's consent ledger, newest first."""
    return list(db.scalars(sa.select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
                           .order_by(ConsentEvent.id.desc())))


def address_for(contact: Contact, channel: Channel) -> str | None:
    """The contact's address on a channel."""
    return contact.email if channel is Channel.EMAIL else contact.phone


def suppression_for(db: Session, channel: Channel, address: str | None) -> Suppression | None:
    """The suppression of an address on a channel, if any."""
    if not address:
        return None
    return db.scalar(sa.select(Suppression).where(Suppression.channel == channel.value,
                                                  Suppression.address == address))


def suppress(db: Session, channel: Channel, address: str, reason: str, note: str = "",
             actor_id: int | None = None) -> Suppression:
    """Suppress an address (idempotent: an existing suppression keeps its first reason)."""
    try:
        SuppressionReason(reason)
    except ValueError:
        raise ValidationError("Unknown reason", {
            "reason": "must be one of " + ", ".join(r.value for r in SuppressionReason)}) from None
    existing = suppression_for(db, channel, address)
    if existing is not None:
        return existing
    row = Suppression(channel=channel.value, address=address, reason=reason, note=note,
                      created_by_id=actor_id)
    db.add(row)
    db.flush()
    return row


def remove_suppression(db: Session, suppression_id: int, reason: str, actor_id: int) -> None:
    """Lift a suppression (admins only, checked by the caller), recording who and why."""
    if not reason.strip():
        raise ValidationError("A reason is required", {"reason": "say why it is removed"})
    row = db.get(Suppression, suppression_id)
    if row is None:
        raise NotFound("No such suppression")
    db.add(SuppressionRemoval(channel=row.channel, address=row.address,
                              original_reason=row.reason, reason=reason.strip(),
                              removed_by_id=actor_id))
    db.delete(row)


def revoke_and_suppress(db: Session, contact: Contact, channel: Channel, reason: str,
                        source: str, evidence: dict[str, Any] | None = None) -> None:
    """Revoke a contact's consent on a channel and suppress its address there (opt-outs)."""
    if getattr(contact, CONSENT_COLUMN[channel]) != ConsentStatus.REVOKED.value:
        record_consent(db, contact, channel, ConsentStatus.REVOKED, source, evidence)
    address = address_for(contact, channel)
    if address:
        suppress(db, channel, address, reason, note=f"via {source}")


def tombstone_digest(channel: Channel, address: str) -> str:
    """The hash kept for an erased contact's address."""
    return hashlib.sha256(f"{channel.value}:{address}".encode()).hexdigest()


def is_tombstoned(db: Session, channel: Channel, address: str) -> bool:
    """True when this address belonged to a contact erased on request."""
    digest = tombstone_digest(channel, address)
    return db.scalar(sa.select(Tombstone.id).where(Tombstone.digest == digest)) is not None
