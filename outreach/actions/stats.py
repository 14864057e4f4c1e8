"""Counters of action pages: the daily rollup per page and source, and the figures read from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.actions.models import ActionPage, Letter, PageStat, Submission
from outreach.blasts.models import Blast
from outreach.db import utcnow

COUNTERS = ("views", "submissions", "new_contacts", "letters")


def today() -> date:
    """The current UTC day (rollups are kept per UTC day)."""
    return utcnow().date()


def _upsert(db: Session) -> Any:
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(PageStat.__table__)


def bump(db: Session, page_id: int, source: str, **counts: int) -> None:
    """Add to a page's counters for today and this source (one upsert)."""
    values = {name: int(counts.get(name, 0)) for name in COUNTERS}
    if not any(values.values()):
        return
    table = PageStat.__table__
    stmt = _upsert(db)
    stmt = stmt.on_conflict_do_update(
        index_elements=["page_id", "day", "source"],
        set_={name: table.c[name] + stmt.excluded[name] for name in COUNTERS})
    db.execute(stmt.values(page_id=page_id, day=today(), source=source[:60], **values))


def bump_page(db: Session, page_id: int, **counts: int) -> None:
    """Add to the page's own counters (signature_count, letters_sent) atomically."""
    table = ActionPage.__table__
    db.execute(sa.update(table).where(table.c.id == page_id).values(
        **{name: table.c[name] + value for name, value in counts.items()}))


def actions_by_blast(db: Session, blast_id: int) -> int:
    """Actions taken (counted submissions) by supporters a blast brought to an action page."""
    return int(db.scalar(sa.select(sa.func.count()).select_from(Submission).where(
        Submission.blast_id == blast_id, Submission.counted.is_(True))) or 0)


def actions_by_blasts(db: Session, blast_ids: Sequence[int]) -> dict[int, int]:
    """Actions taken per blast, for many blasts in one query."""
    out = dict.fromkeys(blast_ids, 0)
    if blast_ids:
        rows = db.execute(sa.select(Submission.blast_id, sa.func.count())
                          .where(Submission.blast_id.in_(list(blast_ids)),
                                 Submission.counted.is_(True))
                          .group_by(Submission.blast_id))
        out.update({int(blast): int(n) for blast, n in rows})
    return out


def _rate(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def source_label(db: Session, source: str, blast_names: dict[int, str]) -> str:
    """A readable name for a rollup source ("blast:12" becomes the blast's name)."""
    if source.startswith("blast:") and source[6:].isdigit():
        name = blast_names.get(int(source[6:]))
        return f"Blast: {name}" if name else "Blast (deleted)"
    return source


def figures(db: Session, page: ActionPage, days: int = 60) -> dict[str, Any]:
    """A page's figures: totals, conversion, by source, by day and letters by status."""
    sums = [sa.func.coalesce(sa.func.sum(PageStat.__table__.c[n]), 0).label(n)
            for n in COUNTERS]
    total_row = db.execute(sa.select(*sums).where(PageStat.page_id == page.id)).one()
    totals = {name: int(getattr(total_row, name)) for name in COUNTERS}
    by_source = [dict(source=row.source, **{n: int(getattr(row, n)) for n in COUNTERS})
                 for row in db.execute(sa.select(PageStat.source, *sums)
                                       .where(PageStat.page_id == page.id)
                                       .group_by(PageStat.source)
                                       .order_by(sa.desc("submissions"), PageStat.source))]
    by_day = [dict(day=row.day, **{n: int(getattr(row, n)) for n in COUNTERS})
              for row in db.execute(sa.select(PageStat.day, *sums)
                                    .where(PageStat.page_id == page.id)
                                    .group_by(PageStat.day)
                                    .order_by(PageStat.day.desc()).limit(days))]
    blast_ids = [int(s["source"][6:]) for s in by_source
                 if s["source"].startswith("blast:") and s["source"][6:].isdigit()]
    names = dict(db.execute(sa.select(Blast.id, Blast.name).where(Blast.id.in_(blast_ids))).all()
                 ) if blast_ids else {}
    for row in by_source:
        row["label"] = source_label(db, row["source"], names)
        row["conversion"] = _rate(row["submissions"], row["views"])
        row["blast_id"] = (int(row["source"][6:]) if row["source"].startswith("blast:")
                           and row["source"][6:].isdigit() else None)
    for row in by_day:
        row["conversion"] = _rate(row["submissions"], row["views"])
    peak = max((row["submissions"] for row in by_day), default=0)
    for row in by_day:
        row["bar"] = round(row["submissions"] * 100 / peak) if peak else 0
    letters = dict(db.execute(sa.select(Letter.status, sa.func.count())
                              .where(Letter.page_id == page.id).group_by(Letter.status)).all())
    return {"totals": totals, "conversion": _rate(totals["submissions"], totals["views"]),
            "by_source": by_source, "by_day": by_day,
            "letters": {status: int(n) for status, n in letters.items()},
            "letters_sent": page.letters_sent, "signatures": page.signature_count}
