"""Foreign keys checked once per statement instead of once per written row (PostgreSQL).

PostgreSQL checks a foreign key with a trigger per written row: a lookup and a row lock in
the referenced table (FOR KEY SHARE), about 5 us each plus the executor's overhead. Bulk
writers whose references are known in advance (an import's contacts and list; an event
batch's blasts and contacts) lock those rows once, set-based, which gives the same guarantee,
and then switch the per-row triggers off for the rest of their transaction with
`session_replication_role = replica`. That happens only when:

- the database is PostgreSQL and the role may set that parameter (a superuser, or since
  PostgreSQL 15 a role granted it: `GRANT SET ON PARAMETER session_replication_role TO ...`);
- the tables the writer touches have no trigger of their own that replica mode would silence
  too (only the internal foreign key triggers, or triggers enabled ALWAYS).

Otherwise the writer runs with the per-row checks: slower, with the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session


class KeyGone(Exception):
    """A row the writer references was deleted meanwhile; the work must run again."""


def may_skip_triggers(db: Session, tables: Sequence[str]) -> bool:
    """Whether this transaction may switch off the per-row triggers of these tables."""
    if db.get_bind().dialect.name != "postgresql":
        return False
    names = ", ".join(f"'{name}'::regclass" for name in tables)
    version, superuser, silenced = db.execute(sa.text(
        "SELECT current_setting('server_version_num')::int, "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        "EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O' "
        f"AND tgrelid IN ({names}))")).one()
    if silenced:
        return False
    if superuser:
        return True
    return version >= 150000 and bool(db.scalar(sa.text(
        "SELECT has_parameter_privilege('session_replication_role', 'SET')")))


def skip_row_triggers(db: Session) -> None:
    """Per-row triggers off for the rest of the transaction (after the keys are locked)."""
    db.execute(sa.text("SET LOCAL session_replication_role = replica"))


def restore_row_triggers(db: Session) -> None:
    """Back to normal for the rest of the transaction (its end resets it anyway)."""
    db.execute(sa.text("SET LOCAL session_replication_role = DEFAULT"))


def lock_keys(db: Session, table: str, ids: str, within: str = "", **params: object) -> None:
    """Lock rows by id against deletion until commit; KeyGone if some no longer exist.

    ids: SQL selecting the ids; within: an optional condition on the locked rows `t` that
    holds for every one of them (an id range, say), so the planner reads only that part.
    """
    if db.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time: nobody deletes anything meanwhile
    where = f"{within} AND " if within else ""
    wanted, locked = db.execute(sa.text(
        f"SELECT (SELECT count(DISTINCT k) FROM ({ids}) w (k)), "
        f"(SELECT count(*) FROM (SELECT 1 FROM {table} t WHERE {where}t.id IN ({ids}) "
        "FOR KEY SHARE OF t) l)"), params).one()
    if wanted != locked:
        raise KeyGone(f"{wanted - locked} row(s) of {table} referred to were deleted "
                      "meanwhile; run it again")


def lock_existing(db: Session, table: str, ids: Iterable[int]) -> set[int]:
    """Lock these rows (in id order) against deletion until commit; return those that exist."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    from sqlalchemy.dialects.postgresql import ARRAY

    return set(db.scalars(sa.text(
        f"SELECT id FROM {table} WHERE id = ANY(:ids) ORDER BY id FOR KEY SHARE"
    ).bindparams(sa.bindparam("ids", wanted, type_=ARRAY(sa.BigInteger)))))
