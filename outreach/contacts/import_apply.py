"""Applying a staged import: dedupe, match, insert, update, lists, tags, consent, all in SQL.

Runs inside the caller's transaction: either every contact of the file is written, or none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    ContactTag,
    Import,
    ImportRejection,
    ImportRow,
    ListMember,
    Suppression,
)
from outreach.contacts.service import tag_ids
from outreach.db import insert_ignore, utcnow

R = ImportRow
TEXT_COLUMNS = ("first_name", "last_name", "postal_code", "timezone", "region")


def apply_import(db: Session, imp: Import) -> None:
    """Turn the staged rows of an import into contacts, memberships, tags and consent."""
    dialect = db.get_bind().dialect.name
    mine = R.import_id == imp.id
    now = utcnow()
    if dialect == "postgresql":
        # The staging rows arrived by COPY just now: without statistics the planner picks
        # nested loops over them, which turns the set-based steps below quadratic.
        db.execute(sa.text("ANALYZE import_rows"))
    for column in ("email", "phone"):
        _reject_duplicates(db, imp.id, column)
    _match_existing(db, imp.id)
    db.execute(sa.update(R).where(mine, R.contact_id.is_not(None)).values(is_new=False))
    created = _count(db, mine, R.is_new.is_(True))
    existing = _count(db, mine, R.is_new.is_(False))
    _insert_new(db, imp.id, now)
    _match_existing(db, imp.id)  # the new contacts have ids now
    if imp.mode == "update":
        _update_existing(db, imp.id, now, dialect)
    if imp.list_id is not None:
        db.execute(insert_ignore(ListMember.__table__, dialect).from_select(
            ["list_id", "contact_id", "created_at"],
            sa.select(sa.literal(imp.list_id), R.contact_id,
                      sa.literal(now, ListMember.created_at.type)).where(mine)))
    _apply_tags(db, imp.id, dialect)
    for channel in filter(None, imp.consent.split(",")):
        _grant_consent(db, imp, Channel(channel), now)
    db.execute(sa.delete(R).where(mine))
    imp.created = created
    imp.updated = existing if imp.mode == "update" else 0
    imp.skipped = 0 if imp.mode == "update" else existing
    imp.rejected = int(db.scalar(sa.select(sa.func.count()).select_from(ImportRejection)
                                 .where(ImportRejection.import_id == imp.id)) or 0)


def _count(db: Session, *conditions: Any) -> int:
    return int(db.scalar(sa.select(sa.func.count()).select_from(R).where(*conditions)) or 0)


def _reject_duplicates(db: Session, import_id: int, column: str) -> None:
    """Reject each row repeating an address of an earlier row of the file."""
    inner = aliased(R)  # not correlated with the DELETE's own import_rows
    col = getattr(inner, column)
    first = (sa.select(col.label("address"), sa.func.min(inner.line).label("first_line"))
             .where(inner.import_id == import_id, col.is_not(None))
             .group_by(col).having(sa.func.count() > 1).subquery())
    later = (sa.select(inner.line).join(first, first.c.address == col)
             .where(inner.import_id == import_id, inner.line != first.c.first_line))
    reason = (sa.literal(f"duplicate in file (same {column} as line ")
              + sa.cast(first.c.first_line, sa.String) + sa.literal(")"))
    db.execute(sa.insert(ImportRejection).from_select(
        ["import_id", "line", "reason", "values"],
        later.with_only_columns(sa.literal(import_id), inner.line, reason, inner.raw)))
    doomed = later.correlate(None).scalar_subquery()
    db.execute(sa.delete(R).where(R.import_id == import_id, R.line.in_(doomed)))


def _match_existing(db: Session, import_id: int) -> None:
    """Link staged rows to existing contacts: by email first, then by phone."""
    for column in ("email", "phone"):
        staged, existing = getattr(R, column), getattr(Contact, column)
        db.execute(sa.update(R).where(R.import_id == import_id, R.contact_id.is_(None),
                                      staged.is_not(None))
                   .values(contact_id=sa.select(Contact.id).where(existing == staged)
                           .scalar_subquery()))


def _insert_new(db: Session, import_id: int, now: datetime) -> None:
    """Create a contact for every staged row that matched nobody, in file order."""
    stamp = sa.literal(now, Contact.created_at.type)
    none = sa.literal(ConsentStatus.NONE.value)
    fields = sa.func.coalesce(R.fields, "{}")
    if db.get_bind().dialect.name == "postgresql":
        fields = sa.cast(fields, sa.JSON)
    db.execute(sa.insert(Contact).from_select(
        ["email", "phone", *TEXT_COLUMNS, "fields", "email_consent", "sms_consent",
         "created_at", "updated_at"],
        sa.select(R.email, R.phone, *(getattr(R, c) for c in TEXT_COLUMNS), fields, none, none,
                  stamp, stamp)
        .where(R.import_id == import_id, R.contact_id.is_(None)).order_by(R.line)))


def _update_existing(db: Session, import_id: int, now: datetime, dialect: str) -> None:
    """Fill and change the fields of matched contacts; never touch consent or suppressions."""
    other = aliased(Contact)
    phone_free = ~sa.exists().where(other.phone == R.phone)
    if dialect == "postgresql":
        merged = sa.cast(sa.cast(Contact.fields, JSONB).op("||")(sa.cast(R.fields, JSONB)),
                         sa.JSON)
    else:
        merged = sa.func.json_patch(Contact.fields, R.fields)
    values: dict[str, Any] = {c: sa.func.coalesce(getattr(R, c), getattr(Contact, c))
                              for c in TEXT_COLUMNS}
    values.update(
        email=sa.func.coalesce(Contact.email, R.email),
        phone=sa.case((sa.and_(Contact.phone.is_(None), phone_free), R.phone),
                      else_=Contact.phone),
        fields=sa.case((R.fields.is_(None), Contact.fields), else_=merged),
        updated_at=sa.literal(now, Contact.updated_at.type),
    )
    db.execute(sa.update(Contact)
               .where(Contact.id == R.contact_id, R.import_id == import_id,
                      R.is_new.is_(False))
               .values(**values).execution_options(synchronize_session=False))


def _apply_tags(db: Session, import_id: int, dialect: str) -> None:
    """Tag the imported contacts: one INSERT per distinct combination of tags in the file."""
    combos = db.scalars(sa.select(R.tags).where(R.import_id == import_id, R.tags.is_not(None))
                        .distinct()).all()
    for combo in combos:
        for tag_id in tag_ids(db, combo.split("|")).values():
            db.execute(insert_ignore(ContactTag.__table__, dialect).from_select(
                ["contact_id", "tag_id"],
                sa.select(R.contact_id, sa.literal(tag_id))
                .where(R.import_id == import_id, R.tags == combo)))


def _grant_consent(db: Session, imp: Import, channel: Channel, now: datetime) -> None:
    """Record consent for the file's addresses that have none yet and are not suppressed.

    A revoked consent is never granted back, and a suppression is never lifted, by an import.
    """
    state = getattr(Contact, f"{channel.value}_consent")
    address = Contact.email if channel is Channel.EMAIL else Contact.phone
    staged = R.email if channel is Channel.EMAIL else R.phone
    suppressed = sa.exists().where(Suppression.channel == channel.value,
                                   Suppression.address == address)
    eligible = (sa.select(Contact.id).join(R, R.contact_id == Contact.id)
                .where(R.import_id == imp.id, staged == address,
                       state == ConsentStatus.NONE.value, ~suppressed))
    evidence = {"import_id": imp.id, "file": imp.filename, "mode": imp.mode,
                "consent_source": imp.consent_source, "staff_user_id": imp.created_by_id,
                "imported_at": now.isoformat()}
    db.execute(sa.insert(ConsentEvent).from_select(
        ["contact_id", "channel", "status", "source", "evidence", "created_by_id", "created_at"],
        eligible.with_only_columns(
            Contact.id, sa.literal(channel.value), sa.literal(ConsentStatus.GRANTED.value),
            sa.literal("import"), sa.literal(evidence, ConsentEvent.evidence.type),
            sa.literal(imp.created_by_id, sa.Integer),
            sa.literal(now, ConsentEvent.created_at.type))))
    db.execute(sa.update(Contact).where(Contact.id.in_(eligible.correlate(None).scalar_subquery()))
               .values(**{f"{channel.value}_consent": ConsentStatus.GRANTED.value})
               .execution_options(synchronize_session=False))
