"""Unsubscribing and resubscribing from an email's signed link (page or RFC 8058 one-click)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Message
from outreach.contacts import consent
from outreach.contacts.models import (
    Channel,
    ConsentStatus,
    Contact,
    SuppressionReason,
    SuppressionRemoval,
)
from outreach.db import utcnow
from outreach.tokens import read_token
from outreach.tracking.service import opt_out, record_best_effort

RESUBSCRIBE_TEXT = "Resubscribe: you will get our emails again."


@dataclass(frozen=True)
class Recipient:
    """Whom an unsubscribe link names: the message, its blast and address, the contact."""

    message_id: int
    blast_id: int
    contact_id: int | None
    address: str

    @property
    def masked(self) -> str:
        """The address with most of its local part hidden (p•••0@example.org)."""
        local, _, domain = self.address.partition("@")
        hidden = local[0] + "•" if len(local) <= 2 else local[0] + "•••" + local[-1]
        return f"{hidden}@{domain}" if domain else hidden


def recipient(session: Session, token: str) -> Recipient | None:
    """The email recipient a token names, or None when forged, unknown or not an email."""
    message_id = read_token(token)
    if message_id is None:
        return None
    row = session.execute(
        sa.select(Message.id, Message.blast_id, Message.contact_id, Message.address)
        .join(Blast, Blast.id == Message.blast_id)
        .where(Message.id == message_id, Blast.channel == Channel.EMAIL.value)).first()
    return Recipient(row.id, row.blast_id, row.contact_id, row.address) if row else None


def is_unsubscribed(session: Session, who: Recipient) -> bool:
    """True when the address is suppressed (for any reason) or the contact revoked consent."""
    if consent.suppression_for(session, Channel.EMAIL, who.address) is not None:
        return True
    contact = session.get(Contact, who.contact_id) if who.contact_id else None
    return contact is not None and contact.email_consent == ConsentStatus.REVOKED.value


def unsubscribe(session: Session, who: Recipient, method: str, ip: str | None) -> None:
    """Revoke email consent and suppress the address (committed first), then record one event."""
    evidence = {"message_id": who.message_id, "blast_id": who.blast_id, "ip": ip,
                "method": method}
    opt_out(session, Channel.EMAIL, who.address, who.contact_id, "unsubscribed", "unsubscribe",
            evidence)
    session.commit()
    record_best_effort(session, [{
        "message_id": who.message_id, "blast_id": who.blast_id, "contact_id": who.contact_id,
        "kind": "unsubscribe", "machine": False, "link_position": None,
        "provider_event_id": f"unsubscribe:{who.message_id}", "detail": {"method": method},
        "occurred_at": utcnow()}])


def resubscribe(session: Session, who: Recipient, ip: str | None) -> bool:
    """Grant consent again and lift an "unsubscribed" suppression (no other); True if done."""
    row = consent.suppression_for(session, Channel.EMAIL, who.address)
    if row is not None and row.reason != SuppressionReason.UNSUBSCRIBED.value:
        return False  # a bounce or a spam report is not lifted by a click
    contact = session.get(Contact, who.contact_id) if who.contact_id else None
    if contact is None or contact.email != who.address:
        return False
    if row is not None:
        session.add(SuppressionRemoval(channel=row.channel, address=row.address,
                                       original_reason=row.reason,
                                       reason="resubscribed by the supporter"))
        session.delete(row)
    if contact.email_consent != ConsentStatus.GRANTED.value:
        consent.record_consent(session, contact, Channel.EMAIL, ConsentStatus.GRANTED, "form",
                               {"message_id": who.message_id, "blast_id": who.blast_id,
                                "ip": ip, "form": "unsubscribe page",
                                "text": RESUBSCRIBE_TEXT})
    session.commit()
    return True
