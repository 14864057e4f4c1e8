"""Who a blast reaches: its lists and segment, minus exclusions, minus anyone without consent
for the channel or with a suppressed address. One SQL condition, used to count and to prepare.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from outreach.blasts.models import Blast
from outreach.contacts.models import ConsentStatus, Contact, ListMember, Suppression
from outreach.contacts.segments import segment_condition


def address_column(channel: str) -> Any:
    """The contact column holding the address for a channel."""
    return Contact.email if channel == "email" else Contact.phone


def audience_condition(db: Session, blast: Blast,
                       contacts: tuple[int, int] | None = None) -> ColumnElement[bool]:
    """The SQL condition on contacts for everyone this blast may message, right now.

    contacts: (after, through), only contacts with after < id <= through (a chunk of a
    preparation); the list memberships are read over the same range only, so that a chunk
    costs its share of the lists and not a pass over all their members.
    """
    address = address_column(blast.channel)
    consent = Contact.email_consent if blast.channel == "email" else Contact.sms_consent
    parts: list[ColumnElement[bool]] = [
        address.is_not(None),
        consent == ConsentStatus.GRANTED.value,
        ~sa.exists().where(Suppression.channel == blast.channel, Suppression.address == address),
    ]
    members = []
    if contacts is not None:
        after, through = contacts
        parts += [Contact.id > after, Contact.id <= through]
        members = [ListMember.contact_id > after, ListMember.contact_id <= through]
    included: list[ColumnElement[bool]] = []
    if blast.list_ids:
        included.append(Contact.id.in_(sa.select(ListMember.contact_id)
                                       .where(ListMember.list_id.in_(blast.list_ids), *members)))
    if blast.segment_id is not None:
        included.append(segment_condition(db, blast.segment_id))
    # Lists and a segment together: members of the lists who also match the segment.
    parts.append(sa.and_(*included) if included else sa.false())
    if blast.exclude_list_ids:
        parts.append(Contact.id.not_in(sa.select(ListMember.contact_id)
                                       .where(ListMember.list_id.in_(blast.exclude_list_ids),
                                              *members)))
    return sa.and_(*parts)


def audience_count(db: Session, blast: Blast) -> int:
    """How many contacts the blast would reach if launched now."""
    return int(db.scalar(sa.select(sa.func.count()).select_from(Contact)
                         .where(audience_condition(db, blast))) or 0)
