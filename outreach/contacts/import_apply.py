"""Applying a staged import: dedupe, match, insert, update, lists, tags, consent, all in SQL.

Runs inside the caller's transaction: either every contact of the file is written, or none.
Staged rows are never updated in place (on PostgreSQL each UPDATE rewrites the row): matches
go into temporary tables built in one pass with CREATE TABLE AS.
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
# Which staged line is which contact, before the import created any, and after.
BEFORE = sa.table("import_match_before", sa.column("line", sa.Integer),
                  sa.column("contact_id", sa.Integer))
AFTER = sa.table("import_match", sa.column("line", sa.Integer),
                 sa.column("contact_id", sa.Integer))
COMBOS = sa.table("import_tag_combos", sa.column("combo", sa.Text),
                  sa.column("tag_id", sa.Integer))
TEMP_TABLES = ("import_match_before", "import_match", "import_tag_combos")


def apply_import(db: Session, imp: Import) -> None:
    """Turn the staged rows of an import into contacts, memberships, tags and consent."""
    dialect = db.get_bind().dialect.name
    now = utcnow()
    _drop_temp_tables(db)
    if dialect == "postgresql":
        db.execute(sa.text("SET LOCAL work_mem = '64MB'"))  # sorts and hashes stay in memory
        # Rows that arrived by COPY have no statistics yet: without them the planner picks
        # nested loops, and the set-based steps below turn quadratic.
        db.execute(sa.text("ANALYZE import_rows"))
    for column in ("email", "phone"):
        _reject_duplicates(db, imp.id, column)
    _build_match(db, imp.id, BEFORE.name)
    created = _count(db, BEFORE, BEFORE.c.contact_id.is_(None))
    existing = _count(db, BEFORE, BEFORE.c.contact_id.is_not(None))
    granted = set(filter(None, imp.consent.split(",")))
    _insert_new(db, imp.id, now, granted, dialect)
    _build_match(db, imp.id, AFTER.name)
    if imp.mode == "update":
        _update_existing(db, imp.id, now, dialect)
    if imp.list_id is not None:
        db.execute(insert_ignore(ListMember.__table__, dialect).from_select(
            ["list_id", "contact_id", "created_at"],
            # The WHERE also keeps SQLite from reading ON CONFLICT as a join condition.
            sa.select(sa.literal(imp.list_id), AFTER.c.contact_id,
                      sa.literal(now, ListMember.created_at.type))
            .where(AFTER.c.contact_id.is_not(None))))
    _apply_tags(db, imp.id, dialect)
    for channel in sorted(granted):
        _grant_consent(db, imp, Channel(channel), now)
    db.execute(sa.delete(R).where(R.import_id == imp.id))
    _drop_temp_tables(db)
    imp.created = created
    imp.updated = existing if imp.mode == "update" else 0
    imp.skipped = 0 if imp.mode == "update" else existing
    imp.rejected = int(db.scalar(sa.select(sa.func.count()).select_from(ImportRejection)
                                 .where(ImportRejection.import_id == imp.id)) or 0)


def _drop_temp_tables(db: Session) -> None:
    for name in TEMP_TABLES:
        db.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def _count(db: Session, table: Any, *conditions: Any) -> int:
    return int(db.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions)) or 0)


def _build_match(db: Session, import_id: int, name: str) -> None:
    """A temporary table of (line, contact id) matching by email first, then by phone."""
    by_email, by_phone = aliased(Contact), aliased(Contact)
    query = (sa.select(R.line.label("line"),
                       sa.func.coalesce(by_email.id, by_phone.id).label("contact_id"))
             .outerjoin(by_email, by_email.email == R.email)
             .outerjoin(by_phone, by_phone.phone == R.phone)
             .where(R.import_id == import_id))
    compiled = query.compile(dialect=db.get_bind().dialect,
                             compile_kwargs={"literal_binds": True})
    db.execute(sa.text(f"CREATE TEMP TABLE {name} AS {compiled}"))
    if db.get_bind().dialect.name == "postgresql":
        db.execute(sa.text(f"ANALYZE {name}"))


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
    inserted = db.execute(sa.insert(ImportRejection).from_select(
        ["import_id", "line", "reason", "values"],
        later.with_only_columns(sa.literal(import_id), inner.line, reason, inner.raw))).rowcount
    if inserted:
        doomed = later.correlate(None).scalar_subquery()
        db.execute(sa.delete(R).where(R.import_id == import_id, R.line.in_(doomed)))


def _consent_on_insert(channel: Channel, staged: Any, granted: set[str]) -> Any:
    """'granted' for a new contact whose address the import consents and nobody suppressed."""
    if channel.value not in granted:
        return sa.literal(ConsentStatus.NONE.value)
    suppressed = sa.exists().where(Suppression.channel == channel.value,
                                   Suppression.address == staged)
    return sa.case((sa.and_(staged.is_not(None), ~suppressed), ConsentStatus.GRANTED.value),
                   else_=ConsentStatus.NONE.value)


def _insert_new(db: Session, import_id: int, now: datetime, granted: set[str],
                dialect: str) -> None:
    """Create a contact for every staged row that matched nobody, in file order."""
    stamp = sa.literal(now, Contact.created_at.type)
    fields = sa.func.coalesce(R.fields, "{}")
    if dialect == "postgresql":
        fields = sa.cast(fields, sa.JSON)
    db.execute(sa.insert(Contact).from_select(
        ["email", "phone", *TEXT_COLUMNS, "fields", "email_consent", "sms_consent",
         "created_at", "updated_at"],
        sa.select(R.email, R.phone, *(getattr(R, c) for c in TEXT_COLUMNS), fields,
                  _consent_on_insert(Channel.EMAIL, R.email, granted),
                  _consent_on_insert(Channel.SMS, R.phone, granted), stamp, stamp)
        .join(BEFORE, BEFORE.c.line == R.line)
        .where(R.import_id == import_id, BEFORE.c.contact_id.is_(None)).order_by(R.line)))


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
               .where(R.import_id == import_id, BEFORE.c.line == R.line,
                      BEFORE.c.contact_id == Contact.id)
               .values(**values).execution_options(synchronize_session=False))


def _apply_tags(db: Session, import_id: int, dialect: str) -> None:
    """Tag the imported contacts in one INSERT, through a small table of tag combinations."""
    combos = db.scalars(sa.select(R.tags).where(R.import_id == import_id, R.tags.is_not(None))
                        .distinct()).all()
    if not combos:
        return
    db.execute(sa.text(f"CREATE TEMP TABLE {COMBOS.name} (combo TEXT, tag_id INTEGER)"))
    pairs = [{"combo": combo, "tag_id": tag_id} for combo in combos
             for tag_id in tag_ids(db, combo.split("|")).values()]
    db.execute(sa.insert(COMBOS), pairs)
    db.execute(insert_ignore(ContactTag.__table__, dialect).from_select(
        ["contact_id", "tag_id"],
        sa.select(AFTER.c.contact_id, COMBOS.c.tag_id)
        .select_from(R).join(AFTER, AFTER.c.line == R.line).join(COMBOS, COMBOS.c.combo == R.tags)
        .where(R.import_id == import_id)))


def _grant_consent(db: Session, imp: Import, channel: Channel, now: datetime) -> None:
    """Record the consent the import gave: for its new contacts (granted at insert) and for
    existing ones that had none. A revoked consent is never granted back, and a suppression
    is never lifted, by an import.
    """
    state = getattr(Contact, f"{channel.value}_consent")
    address = Contact.email if channel is Channel.EMAIL else Contact.phone
    staged = R.email if channel is Channel.EMAIL else R.phone
    evidence = {"import_id": imp.id, "file": imp.filename, "mode": imp.mode,
                "consent_source": imp.consent_source, "staff_user_id": imp.created_by_id,
                "imported_at": now.isoformat()}
    event = [sa.literal(channel.value), sa.literal(ConsentStatus.GRANTED.value),
             sa.literal("import"), sa.literal(evidence, ConsentEvent.evidence.type),
             sa.literal(imp.created_by_id, sa.Integer),
             sa.literal(now, ConsentEvent.created_at.type)]
    columns = ["contact_id", "channel", "status", "source", "evidence", "created_by_id",
               "created_at"]
    new = (sa.select(Contact.id, *event).select_from(BEFORE)
           .join(AFTER, AFTER.c.line == BEFORE.c.line)
           .join(Contact, Contact.id == AFTER.c.contact_id)
           .where(BEFORE.c.contact_id.is_(None), state == ConsentStatus.GRANTED.value))
    db.execute(sa.insert(ConsentEvent).from_select(columns, new))
    suppressed = sa.exists().where(Suppression.channel == channel.value,
                                   Suppression.address == address)
    eligible = (sa.select(Contact.id).select_from(BEFORE)
                .join(R, sa.and_(R.line == BEFORE.c.line, R.import_id == imp.id))
                .join(Contact, Contact.id == BEFORE.c.contact_id)
                .where(staged == address, state == ConsentStatus.NONE.value, ~suppressed))
    db.execute(sa.insert(ConsentEvent).from_select(columns, eligible.add_columns(*event)))
    db.execute(sa.update(Contact).where(Contact.id.in_(eligible.correlate(None).scalar_subquery()))
               .values(**{f"{channel.value}_consent": ConsentStatus.GRANTED.value})
               .execution_options(synchronize_session=False))
