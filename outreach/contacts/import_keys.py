"""An import's foreign keys, checked once per statement instead of once per inserted row.

An import of a million contacts inserts some three million rows that reference contacts, its
list, its tags and its staff user, so the per-row checks alone cost more than everything else
the database does for it. What those rows reference is known in advance: contacts the import
inserted itself (nobody else sees them before the commit, so nobody can delete them), contacts
it matched, one list, a few tags, one user. See `outreach.key_checks` for when the per-row
triggers may be switched off.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from outreach import key_checks
from outreach.key_checks import lock_keys, skip_row_triggers

WRITTEN_TABLES = ("contacts", "list_members", "contact_tags", "consent_events", "tags")


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
    skip_row_triggers(db)
    return True


def may_skip_triggers(db: Session) -> bool:
    """Whether this transaction may switch off the per-row triggers of the import's tables."""
    return key_checks.may_skip_triggers(db, WRITTEN_TABLES)
