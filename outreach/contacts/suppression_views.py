"""Suppression pages: search, add, remove with a reason (admins), import and export (admins)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.contacts import consent, service
from outreach.contacts import suppressions as suppression_store
from outreach.contacts.models import Channel, Suppression, SuppressionReason
from outreach.contacts.views import COUNT_LIMIT, actor_id, bp, csv_response, error_text
from outreach.exceptions import ValidationError

PAGE_SIZE = 100
MAX_REJECTIONS_SHOWN = 200


def _region() -> str:
    return current_app.config.get("DEFAULT_REGION", "US")


def _search(args: Any) -> tuple[sa.Select[Any], dict[str, str]]:
    """The suppressions query for the page's search box and channel filter, newest first."""
    q, channel = args.get("q", "").strip(), args.get("channel", "")
    query = suppression_store.search(Channel(channel) if channel in ("email", "sms") else None,
                                     _region(), text=q)
    return query.order_by(Suppression.id.desc()), {"q": q, "channel": channel}


@bp.get("/suppressions")
@requires(Role.VIEWER)
def suppressions() -> Any:
    """Suppressed addresses, newest first, searchable by address and channel."""
    query, filters = _search(request.args)
    session = db.session()
    cursor = request.args.get("cursor") or None
    error = None
    rows: list[Suppression] = []
    total, more = service.count_up_to(session, query, COUNT_LIMIT)
    try:
        if cursor:
            query = query.where(Suppression.id < service.decode_cursor(cursor))
        rows = list(session.scalars(query.limit(PAGE_SIZE + 1)))
    except ValidationError as exc:
        error = error_text(exc)
    next_cursor = service.encode_cursor(rows[PAGE_SIZE - 1].id) if len(rows) > PAGE_SIZE else None
    return render_template("contacts/suppressions.html", suppressions=rows[:PAGE_SIZE],
                           filters=filters, next_cursor=next_cursor, paged=bool(cursor),
                           total=total, more=more, error=error,
                           reasons=[r.value for r in SuppressionReason]), (400 if error else 200)


@bp.post("/suppressions")
@requires(Role.ORGANIZER)
def add_suppression() -> Any:
    """Suppress one address on a channel."""
    form = request.form
    try:
        channel = consent.parse_channel(form.get("channel", ""))
        with db.transaction() as session:
            row, created = suppression_store.add(session, channel, form.get("address", ""),
                                                 form.get("reason", "manual"),
                                                 form.get("note", ""), actor_id(), _region())
    except ValidationError as exc:
        flash(error_text(exc), "error")
    else:
        if not created:
            flash(f"{row.address} was already suppressed ({row.reason}).", "info")
        else:
            flash(f"{row.address} is suppressed for {row.channel}.", "success")
    return redirect(url_for("contacts.suppressions"))


@bp.get("/suppressions/<int:suppression_id>/remove")
@requires(Role.ADMIN)
def confirm_remove_suppression(suppression_id: int) -> Any:
    """Ask an admin why the suppression is lifted before lifting it."""
    return render_template("contacts/suppression_remove.html", error=None,
                           suppression=suppression_store.get(db.session(), suppression_id))


@bp.post("/suppressions/<int:suppression_id>/remove")
@requires(Role.ADMIN)
def remove_suppression(suppression_id: int) -> Any:
    """Lift a suppression, recording who and why."""
    reason = request.form.get("reason", "")
    admin_id = actor_id()
    assert admin_id is not None  # @requires signed someone in
    try:
        with db.transaction() as session:
            row = suppression_store.get(session, suppression_id)
            address = row.address
            consent.remove_suppression(session, suppression_id, reason, admin_id)
    except ValidationError as exc:
        return render_template("contacts/suppression_remove.html",
                               suppression=suppression_store.get(db.session(), suppression_id),
                               error=error_text(exc)), 422
    flash(f"Suppression of {address} removed; the reason was recorded.", "success")
    return redirect(url_for("contacts.suppressions"))


@bp.post("/suppressions/import")
@requires(Role.ADMIN)
def import_suppressions() -> Any:
    """Import a CSV of suppressions and show what was added and refused."""
    upload = request.files.get("file")
    channel = request.form.get("channel", "")
    if channel not in ("", "email", "sms"):
        channel = ""
    if upload is None or not upload.filename:
        flash("Choose a CSV file to import.", "error")
        return redirect(url_for("contacts.suppressions"))
    try:
        with db.transaction() as session:
            report = suppression_store.import_file(
                session, upload.stream, channel=Channel(channel) if channel else None,
                reason=request.form.get("reason", "imported"), region=_region(),
                actor=actor_id())
    except ValidationError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("contacts.suppressions"))
    result = {"added": report.added, "existing": report.existing, "rejected": report.rejected,
              "rejections": report.rejections[:MAX_REJECTIONS_SHOWN]}
    return render_template("contacts/suppression_import.html", result=result,
                           filename=upload.filename)


def suppressions_csv(session: Session, channel: str = "") -> Iterator[str]:
    """Every suppression (or one channel's) as CSV text, a batch at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(suppression_store.SUPPRESSION_COLUMNS)
    for rows in suppression_store.suppression_rows(session, channel):
        writer.writerows(rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@bp.get("/suppressions/export.csv")
@requires(Role.ADMIN)
def export_suppressions() -> Any:
    """Download every suppression (or one channel's) as CSV."""
    channel = request.args.get("channel", "")
    channel = channel if channel in ("email", "sms") else ""
    return csv_response(suppressions_csv(db.session(), channel),
                        f"suppressions{'-' + channel if channel else ''}.csv")
