"""Staff pages for metrics: a blast's figures, chart, links and recipients; overview; replies."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.blasts.service import get_blast
from outreach.exceptions import NotFound
from outreach.metrics import overview as overview_service
from outreach.metrics import recipients as recipients_service
from outreach.metrics import service

bp = Blueprint("metrics", __name__)
PAGE_SIZE = 50


class _HttpError:
    """What error.html needs to show a domain error as a page."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", error=_HttpError(404, "Not Found", str(exc))), 404


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _outcome() -> str:
    outcome = request.args.get("outcome", "").strip()
    if outcome and outcome not in recipients_service.OUTCOMES:
        abort(400, description=f"Unknown outcome “{outcome}”.")
    return outcome


@bp.get("/blasts/<int:blast_id>/metrics")
@requires(Role.VIEWER)
def blast(blast_id: int) -> Any:
    """A blast's figures, chart, links and recipients (filtered by ?outcome=, paged by ?after=)."""
    session = db.session()
    row = get_blast(session, blast_id)
    outcome = _outcome()
    after = _int_arg("after")
    recipients, next_after = recipients_service.recipients_page(
        session, row.id, outcome, after, PAGE_SIZE)
    return render_template(
        "metrics/blast.html", blast=row, m=service.blast_metrics(session, row),
        chart=service.timeline(session, row), recipients=recipients, outcome=outcome,
        outcomes=recipients_service.OUTCOMES, next_after=next_after, paged=bool(after))


@bp.get("/blasts/<int:blast_id>/metrics/recipients.csv")
@requires(Role.VIEWER)
def recipients_csv(blast_id: int) -> Any:
    """The recipients of the current filter as a streamed CSV download."""
    row = get_blast(db.session(), blast_id)
    outcome = _outcome()
    engine = db.engine()
    db.session().close()  # the stream reads with its own session, chunk by chunk
    name = f"blast-{row.id}-recipients{'-' + outcome if outcome else ''}.csv"
    return Response(recipients_service.recipients_csv(engine, row.id, outcome),
                    mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/metrics")
@requires(Role.VIEWER)
def overview() -> Any:
    """Recent blasts side by side, totals over ?days= (default 30), list growth and opt-outs."""
    days = _int_arg("days") or 30
    data = overview_service.overview(db.session(), days)
    return render_template("metrics/overview.html", o=data,
                           periods=(7, 30, 90, 365))


@bp.get("/replies")
@requires(Role.VIEWER)
def replies() -> Any:
    """Inbound text messages, newest first (?kind= replies, stop, start or help)."""
    kind = request.args.get("kind", "").strip()
    kind = kind if kind in overview_service.REPLY_KINDS else ""
    before = _int_arg("before")
    rows, next_before = overview_service.replies(db.session(), kind or None, before, PAGE_SIZE)
    return render_template("metrics/replies.html", rows=rows, kind=kind,
                           kinds=overview_service.REPLY_KINDS, paged=bool(before),
                           next_url=url_for("metrics.replies", kind=kind or None,
                                            before=next_before) if next_before else None)
