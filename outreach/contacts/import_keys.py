"""An import's foreign keys, checked once per statement instead of once per inserted row.

PostgreSQL checks a foreign key with a trigger per inserted row: a lookup and a row lock in
the referenced table, about 5 us each. An import of a million contacts inserts some three
million rows that reference contacts, its list, its tags and its staff user, so the checks
alone cost more than everything else the database does for it.

What those rows reference is known in advance: contacts the import inserted itself (nobody
else sees them before the commit, so nobody can delete them), contacts it matched, one list,
a few tags, one user. Locking those once with FOR KEY SHARE, which is what each trigger does
row by row, gives the same guarantee; the per-row triggers are then switched off for the rest
of the transaction with `session_replication_role = replica`. That happens only when:

- the database is PostgreSQL and the role may set that parameter (a superuser, or since
  PostgreSQL 15 a role granted it: `GRANT SET ON PARAMETER session_replication_role TO ...`);
- the tables the import writes have no trigger of their own that replica mode would silence
  too (only the internal foreign key triggers, or triggers enabled ALWAYS).

Otherwise the import runs with the per-row checks: slower, with the same result.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

WRITTEN_TABLES = ("contacts", "list_members", "contact_tags", "consent_events", "tags")


class KeyGone(Exception):
    """A row the import references was deleted meanwhile; the import must run again."""


def switch_off_row_triggers(db: Session, list_id: int | None, user_id: int | None) -> bool:
    """Lock the list and user an import refers to and skip per-row triggers, if that is safe.

    Returns whether it did; the import then locks the contacts it matches (`lock_keys`)
    before referring to them, and its tags where it chooses them.
    """
    if not may_skip_triggers(db):
        return False
    if list_id is not None:
        lock_keys(db, "lists", "SELECT :id", id=list_id)
    if user_id is not None:
        lock_keys(db, "users", "SELECT :id", id=user_id)
    db.execute(sa.text("SET LOCAL session_replication_role = replica"))
    return True


def switch_on_row_triggers(db: Session) -> None:
    """Back to normal for the rest of the transaction (its end resets it anyway)."""
    db.execute(sa.text("SET LOCAL session_replication_role = DEFAULT"))


def lock_keys(db: Session, table: str, ids: str, **params: object) -> None:
    """Lock rows by id against deletion until commit; KeyGone if some no longer exist."""
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time: nobody deletes anything meanwhile
    wanted, locked = db.execute(sa.text(
        f"SELECT (SELECT count(DISTINCT k) FROM ({ids}) w (k)), "
        f"(SELECT count(*) FROM (SELECT 1 FROM {table} t WHERE t.id IN ({ids}) "
        "FOR KEY SHARE OF t) l)"), params).one()
    if wanted != locked:
        raise KeyGone(f"{wanted - locked} row(s) of {table} the import refers to were deleted "
                      "while it ran; run it again")


def may_skip_triggers(db: Session) -> bool:
    """Whether this transaction may switch off the per-row triggers of the written tables."""
    if db.get_bind().dialect.name != "postgresql":
        return False
    tables = ", ".join(f"'{name}'::regclass" for name in WRITTEN_TABLES)
    version, superuser, silenced = db.execute(sa.text(
        "SELECT current_setting('server_version_num')::int, "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        "EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O' "
        f"AND tgrelid IN ({tables}))")).one()
    if silenced:
        return False
    if superuser:
        return True
    return version >= 150000 and bool(db.scalar(sa.text(
        "SELECT has_parameter_privilege('session_replication_role', 'SET')")))
