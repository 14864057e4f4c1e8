"""Applying a staged import: match, insert, update, lists, tags, consent, all in SQL.

Runs inside the caller's transaction: either every contact of the file is written, or none.
The file's rows arrive already validated and deduplicated (import_stage.py) in the temporary
table `import_stage`. Each step then reads it once: existing contacts are matched into
`import_match`; new contacts get their ids up front into `import_new` (with their tags and
consent), so memberships, tags and the consent ledger are written from that small table
without looking the new contacts up again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, aliased

from outreach.contacts.import_keys import switch_off_row_triggers
from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    Import,
)
from outreach.contacts.service import tag_ids
from outreach.key_checks import lock_keys, restore_row_triggers

TEXT_COLUMNS = ("first_name", "last_name", "postal_code", "timezone", "region")
STAGE = sa.table("import_stage", *(sa.column(c, sa.Text) for c in (
    "email", "phone", *TEXT_COLUMNS, "fields", "tags")), sa.column("line", sa.Integer))
MATCH = sa.table("import_match", sa.column("line", sa.Integer),
                 sa.column("contact_id", sa.Integer))
TEMP_TABLES = ("import_stage", "import_rejected", "import_match", "import_new",
               "import_tag_combos")
_GRANTED, _NONE = ConsentStatus.GRANTED.value, ConsentStatus.NONE.value


def create_stage_tables(db: Session) -> None:
    """The temporary tables staging fills: valid rows, and rejected ones with their reason."""
    _drop_temp_tables(db)
    # SQLite joins on `line` by looking rows up: give it the rowid; PostgreSQL hashes instead.
    line = "INTEGER PRIMARY KEY" if _dialect(db) == "sqlite" else "INTEGER NOT NULL"
    db.execute(sa.text(
        f"CREATE TEMP TABLE import_stage (line {line}, email VARCHAR(320), phone VARCHAR(20), "
        "first_name VARCHAR(200), last_name VARCHAR(200), postal_code VARCHAR(20), "
        "timezone VARCHAR(64), region VARCHAR(8), fields TEXT, tags TEXT)"))
    db.execute(sa.text('CREATE TEMP TABLE import_rejected (line INTEGER NOT NULL, '
                       'reason TEXT NOT NULL, "values" TEXT NOT NULL)'))


@dataclass
class ImportPlan:
    """What applying needs to know about the import, as plain values, and its running counts."""

    import_id: int
    list_id: int | None
    mode: str
    granted: set[str]
    evidence: dict[str, Any]
    created_by_id: int | None
    now: datetime
    fewer_triggers: bool = False
    # Whether staged rows are looked up among existing contacts. Not when there were none as
    # the import began (the first import of a new instance, usually the biggest): two index
    # probes per row find nothing there. A contact added by someone else meanwhile makes an
    # insert fail on its unique address; the import then runs again, matching (imports.py).
    match: bool = True
    created: int = 0
    existing: int = 0
    # Tag combinations ("a|b") already in import_tag_combos, with their tags locked: files
    # repeat a few combinations, so later chunks neither look them up nor lock them again.
    tag_combos: set[str] = field(default_factory=set)
    rejected: int = 0  # rejections moved from import_rejected to import_rejections so far
    sequence: str | None = None  # contacts' id sequence (PostgreSQL), looked up once


def start_apply(db: Session, imp: Import, match: bool = False) -> ImportPlan:
    """Prepare the transaction for applying chunks of staged rows; return the plan.

    `match` forces looking staged rows up among existing contacts even if there are none.
    """
    now = _now()
    plan = ImportPlan(
        import_id=imp.id, list_id=imp.list_id, mode=imp.mode,
        granted=set(filter(None, imp.consent.split(","))), created_by_id=imp.created_by_id,
        evidence={"import_id": imp.id, "file": imp.filename, "mode": imp.mode,
                  "consent_source": imp.consent_source, "staff_user_id": imp.created_by_id,
                  "imported_at": now.isoformat()}, now=now)
    if _dialect(db) == "postgresql":
        db.execute(sa.text("SET LOCAL work_mem = '64MB'"))  # sorts and hashes stay in memory
    plan.fewer_triggers = switch_off_row_triggers(db, plan.list_id, plan.created_by_id)
    # SQLite always matches: it applies the whole file after reading it, so others may add
    # contacts between this check and then, and its errors do not name the constraint that
    # failed, so the import could not tell that it must run again (`address_taken`).
    plan.match = match or _dialect(db) != "postgresql" or bool(
        db.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM contacts)")))
    return plan


def address_taken(exc: sa.exc.IntegrityError) -> bool:
    """Whether an insert failed because a contact with the same email or phone exists."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) in ("uq_contacts_email", "uq_contacts_phone")


def apply_chunk(db: Session, plan: ImportPlan) -> None:
    """Turn the rows now in import_stage into contacts, memberships, tags and consent.

    Chunks are independent: staging removed the file's duplicates, so no row of a chunk can
    match a contact that an earlier chunk created.
    """
    params = {"now": plan.now, "list_id": plan.list_id}
    now = sa.bindparam("now", type_=Contact.created_at.type)
    matched = _build_match(db) if plan.match else 0
    plan.existing += matched
    if matched and _dialect(db) == "postgresql":
        db.execute(sa.text("ANALYZE import_match"))  # few rows: index lookups into contacts
    if matched and plan.fewer_triggers:
        lock_keys(db, "contacts", "SELECT contact_id FROM import_match")
    plan.created += _number_new(db, plan)
    _insert_new(db, now, params)
    if matched and plan.mode == "update":
        _update_existing(db, plan.now, _dialect(db))
    if plan.list_id is not None:
        _add_to_list(db, now, params, matched)
    _apply_tags(db, plan, matched)
    for channel in sorted(plan.granted):
        _grant_consent(db, plan, Channel(channel), matched)
    db.execute(sa.text("DROP TABLE IF EXISTS import_match"))
    db.execute(sa.text("DROP TABLE IF EXISTS import_new"))
    # TRUNCATE on PostgreSQL: after a DELETE the next chunks would scan the dead rows again.
    empty = "TRUNCATE" if _dialect(db) == "postgresql" else "DELETE FROM"
    db.execute(sa.text(f"{empty} import_stage"))
    # The chunk's rejections too, while the reader is busy with the next chunk, rather than
    # all of them after the last one (tens of thousands in a big file).
    _move_rejections(db, plan, empty)


def _move_rejections(db: Session, plan: ImportPlan, empty: str) -> None:
    """Move the rows in import_rejected to import_rejections, counting them."""
    plan.rejected += db.execute(sa.text(
        'INSERT INTO import_rejections (import_id, line, reason, "values") '
        'SELECT :import_id, line, reason, "values" FROM import_rejected ORDER BY line'),
        {"import_id": plan.import_id}).rowcount
    db.execute(sa.text(f"{empty} import_rejected"))


def finish_apply(db: Session, plan: ImportPlan, imp: Import) -> None:
    """Write the rejections, record the counts on the import, drop the temporary tables."""
    if plan.fewer_triggers:
        restore_row_triggers(db)
    _move_rejections(db, plan, "DELETE FROM")  # those after the last chunk (all on SQLite)
    imp.created = plan.created
    imp.updated = plan.existing if plan.mode == "update" else 0
    imp.skipped = 0 if plan.mode == "update" else plan.existing
    imp.rejected = plan.rejected
    _drop_temp_tables(db)


def _dialect(db: Session) -> str:
    return db.get_bind().dialect.name


def _now() -> datetime:
    from outreach.db import utcnow

    return utcnow()


def _drop_temp_tables(db: Session) -> None:
    for name in TEMP_TABLES:
        db.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def _temp_table(db: Session, name: str, columns: str, select: str) -> int:
    """CREATE TEMP TABLE name AS select, keyed by line on SQLite; return its row count.

    No ANALYZE on PostgreSQL: a chunk's tables are small, and the planner reads their real
    size in pages, so it hashes rather than loops even without statistics.
    """
    if _dialect(db) == "sqlite":
        db.execute(sa.text(f"CREATE TEMP TABLE {name} ({columns})"))
        return int(db.execute(sa.text(f"INSERT INTO {name} {select}")).rowcount)
    return int(db.execute(sa.text(f"CREATE TEMP TABLE {name} AS {select}")).rowcount)


def _build_match(db: Session) -> int:
    """The staged lines that are existing contacts, matching by email first, then by phone."""
    return _temp_table(
        db, "import_match", "line INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL",
        # One index probe per address: a join could hash the whole contacts table instead, for
        # every batch, however small the batch (the planner has no statistics for either).
        "SELECT line, contact_id FROM (SELECT s.line AS line, coalesce("
        "(SELECT c.id FROM contacts c WHERE c.email = s.email), "
        "(SELECT c.id FROM contacts c WHERE c.phone = s.phone)) AS contact_id "
        "FROM import_stage s) x WHERE contact_id IS NOT NULL")


def _consent_on_insert(channel: Channel, granted: set[str]) -> str:
    """'granted' for a new contact whose address the import consents and nobody suppressed."""
    if channel.value not in granted:
        return f"'{_NONE}'"
    column = "s.email" if channel is Channel.EMAIL else "s.phone"
    return (f"CASE WHEN {column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM suppressions x "
            f"WHERE x.channel = '{channel.value}' AND x.address = {column}) "
            f"THEN '{_GRANTED}' ELSE '{_NONE}' END")


def _number_new(db: Session, plan: ImportPlan) -> int:
    """Give each staged line that matched nobody its new contact id, in file order."""
    granted = plan.granted
    consent = (f"{_consent_on_insert(Channel.EMAIL, granted)} AS email_consent, "
               f"{_consent_on_insert(Channel.SMS, granted)} AS sms_consent")
    new = "FROM import_stage s"
    if plan.match:
        new += " WHERE NOT EXISTS (SELECT 1 FROM import_match m WHERE m.line = s.line)"
    if _dialect(db) == "postgresql":
        if plan.sequence is None:
            plan.sequence = db.scalar(sa.text("SELECT pg_get_serial_sequence('contacts', 'id')"))
        sequence = plan.sequence
        # nextval after the sort (OFFSET 0 keeps the subquery), so ids follow the file.
        select = (f"SELECT n.line, nextval('{sequence}') AS contact_id, n.tags, "
                  f"n.email_consent, n.sms_consent FROM (SELECT s.line, s.tags, {consent} "
                  f"{new} ORDER BY s.line OFFSET 0) n")
    else:
        # SQLite has one writer at a time: hold the write lock (a write that changes nothing
        # takes it) before reading max(id), so nobody else takes these ids meanwhile.
        db.execute(sa.text("DELETE FROM contacts WHERE 0"))
        select = ("SELECT s.line, (SELECT coalesce(max(id), 0) FROM contacts) + row_number() "
                  f"OVER (ORDER BY s.line) AS contact_id, s.tags, {consent} {new}")
    return _temp_table(db, "import_new", "line INTEGER PRIMARY KEY, contact_id INTEGER NOT NULL, "
                "tags TEXT, email_consent TEXT, sms_consent TEXT", select)


def _insert_new(db: Session, now: Any, params: dict[str, Any]) -> None:
    """Create the new contacts with the ids numbered for them, in file order."""
    fields = "coalesce(s.fields, '{}')"
    if _dialect(db) == "postgresql":
        fields += "::json"
    columns = ", ".join(TEXT_COLUMNS)
    staged = ", ".join(f"s.{c}" for c in TEXT_COLUMNS)
    db.execute(sa.text(
        f"INSERT INTO contacts (id, email, phone, {columns}, fields, email_consent, "
        f"sms_consent, created_at, updated_at) SELECT n.contact_id, s.email, s.phone, "
        f"{staged}, {fields}, n.email_consent, n.sms_consent, :now, :now "
        "FROM import_new n JOIN import_stage s ON s.line = n.line ORDER BY n.contact_id"
    ).bindparams(now), params)


def _add_to_list(db: Session, now: Any, params: dict[str, Any], matched: int) -> None:
    """Put every contact of the file on the import's list (existing members stay as they are)."""
    db.execute(sa.text("INSERT INTO list_members (list_id, contact_id, created_at) "
                       "SELECT :list_id, contact_id, :now FROM import_new").bindparams(now),
               params)
    if not matched:
        return
    # The WHERE keeps SQLite from reading ON CONFLICT as a join condition.
    db.execute(sa.text("INSERT INTO list_members (list_id, contact_id, created_at) "
                       "SELECT :list_id, contact_id, :now FROM import_match WHERE true "
                       "ON CONFLICT DO NOTHING").bindparams(now), params)


def _update_existing(db: Session, now: datetime, dialect: str) -> None:
    """Fill and change the fields of matched contacts; never touch consent or suppressions."""
    other = aliased(Contact)
    phone_free = ~sa.exists().where(other.phone == STAGE.c.phone)
    if dialect == "postgresql":
        merged = sa.cast(sa.cast(Contact.fields, JSONB).op("||")(sa.cast(STAGE.c.fields, JSONB)),
                         sa.JSON)
    else:
        merged = sa.func.json_patch(Contact.fields, STAGE.c.fields)
    values: dict[str, Any] = {c: sa.func.coalesce(STAGE.c[c], getattr(Contact, c))
                              for c in TEXT_COLUMNS}
    values.update(
        email=sa.func.coalesce(Contact.email, STAGE.c.email),
        phone=sa.case((sa.and_(Contact.phone.is_(None), phone_free), STAGE.c.phone),
                      else_=Contact.phone),
        fields=sa.case((STAGE.c.fields.is_(None), Contact.fields), else_=merged),
        updated_at=sa.literal(now, Contact.updated_at.type),
    )
    db.execute(sa.update(Contact)
               .where(MATCH.c.line == STAGE.c.line, MATCH.c.contact_id == Contact.id)
               .values(**values).execution_options(synchronize_session=False))


def _apply_tags(db: Session, plan: ImportPlan, matched: int) -> None:
    """Tag the imported contacts through a small table of the file's tag combinations.

    The table lives until the import ends and grows with each combination a chunk brings
    for the first time; its tags are locked once, when they join it (locks last until commit).
    """
    combos = db.scalars(sa.text("SELECT DISTINCT tags FROM import_stage "
                                "WHERE tags IS NOT NULL")).all()
    if not combos:
        return
    fresh = [combo for combo in combos if combo not in plan.tag_combos]
    if fresh:
        if not plan.tag_combos:
            db.execute(sa.text("CREATE TEMP TABLE import_tag_combos (combo TEXT, tag_id INTEGER)"))
        names = sorted({name for combo in fresh for name in combo.split("|")})
        ids = tag_ids(db, names)  # one look-up for every new combination of this chunk
        pairs = [{"combo": combo, "tag_id": ids[name]} for combo in fresh
                 for name in combo.split("|")]
        db.execute(sa.text("INSERT INTO import_tag_combos (combo, tag_id) "
                           "VALUES (:combo, :tag_id)"), pairs)
        lock_keys(db, "tags", "SELECT unnest(CAST(:tag_ids AS INTEGER[]))",
                  tag_ids=sorted({ids[name] for name in names}))
        plan.tag_combos.update(fresh)
    db.execute(sa.text("INSERT INTO contact_tags (contact_id, tag_id) SELECT n.contact_id, "
                       "k.tag_id FROM import_new n JOIN import_tag_combos k ON k.combo = n.tags"))
    if not matched:
        return
    db.execute(sa.text("INSERT INTO contact_tags (contact_id, tag_id) SELECT m.contact_id, "
                       "k.tag_id FROM import_match m JOIN import_stage s ON s.line = m.line "
                       "JOIN import_tag_combos k ON k.combo = s.tags WHERE true "
                       "ON CONFLICT DO NOTHING"))


def _grant_consent(db: Session, plan: ImportPlan, channel: Channel, matched: int) -> None:
    """Record the consent the import gave: for its new contacts (granted at insert) and for
    existing ones that had none. A revoked consent is never granted back, and a suppression
    is never lifted, by an import.
    """
    state, address = f"{channel.value}_consent", channel_column(channel)
    params = {"channel": channel.value, "none": _NONE, "evidence": plan.evidence,
              "by": plan.created_by_id, "now": plan.now}
    db.execute(_consent_events(f"import_new WHERE {state} = '{_GRANTED}'"), params)
    if not matched:
        return
    # Existing contacts: only where the file's address is theirs, they gave no answer yet,
    # and the address is not suppressed.
    eligible = ("SELECT c.id AS contact_id FROM import_match m "
                "JOIN import_stage s ON s.line = m.line JOIN contacts c ON c.id = m.contact_id "
                f"WHERE s.{address} = c.{address} AND c.{state} = :none AND NOT EXISTS "
                "(SELECT 1 FROM suppressions x WHERE x.channel = :channel "
                f"AND x.address = c.{address})")
    db.execute(_consent_events(f"({eligible}) e"), params)
    db.execute(sa.text(f"UPDATE contacts SET {state} = '{_GRANTED}' WHERE id IN "
                       f"(SELECT contact_id FROM ({eligible}) e)"), params)


def channel_column(channel: Channel) -> str:
    """The contacts column holding a channel's address."""
    return "email" if channel is Channel.EMAIL else "phone"


def _consent_events(source: str) -> sa.TextClause:
    """INSERT a granted consent event from the import for each contact_id of `source`."""
    return sa.text(
        "INSERT INTO consent_events (contact_id, channel, status, source, evidence, "
        f"created_by_id, created_at) SELECT contact_id, :channel, '{_GRANTED}', 'import', "
        f":evidence, :by, :now FROM {source}").bindparams(
            sa.bindparam("evidence", type_=ConsentEvent.evidence.type),
            sa.bindparam("by", type_=sa.Integer),
            sa.bindparam("now", type_=ConsentEvent.created_at.type))
