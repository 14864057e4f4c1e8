"""Moderating letters the word list flagged: approve (then deliver) or reject before delivery."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.actions.models import (
    ActionPage,
    DeliveryMode,
    Letter,
    LetterStatus,
    LetterTarget,
)
from outreach.db import utcnow
from outreach.exceptions import Conflict, NotFound


def flagged_letters(db: Session, page_id: int | None = None, limit: int = 200) -> list[Any]:
    """Letters waiting for a moderator, oldest first, with their page and target."""
    query = (sa.select(Letter, ActionPage.title, ActionPage.slug, LetterTarget.name)
             .join(ActionPage, ActionPage.id == Letter.page_id)
             .join(LetterTarget, LetterTarget.id == Letter.target_id)
             .where(Letter.status == LetterStatus.FLAGGED.value)
             .order_by(Letter.id).limit(limit))
    if page_id is not None:
        query = query.where(Letter.page_id == page_id)
    return list(db.execute(query))


def flagged_count(db: Session) -> int:
    """How many letters wait for a moderator."""
    return int(db.scalar(sa.select(sa.func.count()).select_from(Letter).where(
        Letter.status == LetterStatus.FLAGGED.value)) or 0)


def moderate(db: Session, letter_id: int, approve: bool, actor_id: int | None
             ) -> tuple[Letter, list[tuple[str, Any, tuple[Any, ...]]], list[int]]:
    """Approve or reject a flagged letter; return it, its delivery jobs and digest pages."""
    from outreach.actions import jobs

    letter = db.get(Letter, letter_id)
    if letter is None:
        raise NotFound(f"No letter {letter_id}")
    if letter.status != LetterStatus.FLAGGED.value:
        raise Conflict(f"This letter is {letter.status}, not waiting for moderation")
    letter.status = (LetterStatus.APPROVED if approve else LetterStatus.REJECTED).value
    letter.moderated_by_id, letter.moderated_at = actor_id, utcnow()
    db.flush()
    if not approve:
        return letter, [], []
    page = db.get(ActionPage, letter.page_id)
    assert page is not None
    if page.delivery_mode == DeliveryMode.ONE_BY_ONE.value:
        return letter, [("email", jobs.deliver_letter, (letter.id,))], []
    return letter, [], [page.id]
