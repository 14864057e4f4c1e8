"""Suppression pages: search, add, remove with a reason (admins), import and export (admins)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import islice
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.contacts import consent, service
from outreach.contacts.csvfile import CsvError, field_key, open_csv
from outreach.contacts.models import Channel, Suppression, SuppressionReason
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.contacts.views import actor_id, bp, csv_response, error_text
from outreach.db import insert_ignore, utcnow
from outreach.exceptions import NotFound, ValidationError

PAGE_SIZE = 100
IMPORT_BATCH = 500
MAX_REJECTIONS_SHOWN = 200
ADDRESS_COLUMNS = ("address", "email", "email_address", "phone", "phone_number", "mobile",
                   "number", "to")
REASONS = frozenset(r.value for r in SuppressionReason)
CHANNEL_WORDS = {"email": "email", "sms": "sms", "text": "sms", "phone": "sms", "mobile": "sms"}


def normalize_address(channel: Channel, raw: str) -> str:
    """An address in the form suppressions store: a normalized email or an E.164 number."""
    if channel is Channel.EMAIL:
        return normalize_email(raw)
    return normalize_phone(raw, current_app.config.get("DEFAULT_REGION", "US"))


def _search(args: Any) -> tuple[sa.Select[Any], dict[str, str]]:
    """The suppressions query for the page's search box and channel filter, newest first."""
    q, channel = args.get("q", "").strip(), args.get("channel", "")
    query = sa.select(Suppression).order_by(Suppression.id.desc())
    if channel in ("email", "sms"):
        query = query.where(Suppression.channel == channel)
    if q:
        matches = [sa.func.lower(Suppression.address).contains(q.lower(), autoescape=True)]
        if "@" not in q:
            try:
                matches.append(Suppression.address == normalize_address(Channel.SMS, q))
            except InvalidAddress:
                pass
        query = query.where(sa.or_(*matches))
    return query, {"q": q, "channel": channel}


@bp.get("/suppressions")
@requires(Role.VIEWER)
def suppressions() -> Any:
    """Suppressed addresses, newest first, searchable by address and channel."""
    query, filters = _search(request.args)
    session = db.session()
    cursor = request.args.get("cursor") or None
    error = None
    rows: list[Suppression] = []
    total = int(session.scalar(sa.select(sa.func.count())
                               .select_from(query.order_by(None).subquery())) or 0)
    try:
        if cursor:
            query = query.where(Suppression.id < service.decode_cursor(cursor))
        rows = list(session.scalars(query.limit(PAGE_SIZE + 1)))
    except ValidationError as exc:
        error = error_text(exc)
    next_cursor = service.encode_cursor(rows[PAGE_SIZE - 1].id) if len(rows) > PAGE_SIZE else None
    return render_template("contacts/suppressions.html", suppressions=rows[:PAGE_SIZE],
                           filters=filters, next_cursor=next_cursor, paged=bool(cursor),
                           total=total, error=error,
                           reasons=[r.value for r in SuppressionReason]), (400 if error else 200)


@bp.post("/suppressions")
@requires(Role.ORGANIZER)
def add_suppression() -> Any:
    """Suppress one address on a channel."""
    form = request.form
    try:
        channel = consent.parse_channel(form.get("channel", ""))
        try:
            address = normalize_address(channel, form.get("address", ""))
        except InvalidAddress as exc:
            raise ValidationError("Invalid address", {"address": str(exc)}) from None
        with db.transaction() as session:
            existed = consent.suppression_for(session, channel, address)
            row = consent.suppress(session, channel, address, form.get("reason", "manual"),
                                   form.get("note", "").strip()[:2000], actor_id())
    except ValidationError as exc:
        flash(error_text(exc), "error")
    else:
        if existed is not None:
            flash(f"{row.address} was already suppressed ({row.reason}).", "info")
        else:
            flash(f"{row.address} is suppressed for {row.channel}.", "success")
    return redirect(url_for("contacts.suppressions"))


def _get(session: Session, suppression_id: int) -> Suppression:
    row = session.get(Suppression, suppression_id)
    if row is None:
        raise NotFound("No such suppression; it may have been removed already")
    return row


@bp.get("/suppressions/<int:suppression_id>/remove")
@requires(Role.ADMIN)
def confirm_remove_suppression(suppression_id: int) -> Any:
    """Ask an admin why the suppression is lifted before lifting it."""
    return render_template("contacts/suppression_remove.html",
                           suppression=_get(db.session(), suppression_id), error=None)


@bp.post("/suppressions/<int:suppression_id>/remove")
@requires(Role.ADMIN)
def remove_suppression(suppression_id: int) -> Any:
    """Lift a suppression, recording who and why."""
    reason = request.form.get("reason", "")
    admin_id = actor_id()
    assert admin_id is not None  # @requires signed someone in
    try:
        with db.transaction() as session:
            row = _get(session, suppression_id)
            address = row.address
            consent.remove_suppression(session, suppression_id, reason, admin_id)
    except ValidationError as exc:
        return render_template("contacts/suppression_remove.html",
                               suppression=_get(db.session(), suppression_id),
                               error=error_text(exc)), 422
    flash(f"Suppression of {address} removed; the reason was recorded.", "success")
    return redirect(url_for("contacts.suppressions"))


def import_suppressions_csv(session: Session, stream: BinaryIO, channel: str,
                            default_reason: str, actor: int | None) -> dict[str, Any]:
    """Add the suppressions a CSV lists (set-based, existing ones kept); count and reject."""
    try:
        SuppressionReason(default_reason)
    except ValueError:
        raise ValidationError("Unknown reason", {"reason": "choose a reason"}) from None
    try:
        with open_csv(stream) as source:
            return _insert_suppressions(session, source, channel, default_reason, actor)
    except CsvError as exc:  # not a CSV file, or it stops being readable text part way
        raise ValidationError(str(exc), {"file": str(exc)}) from None


def _insert_suppressions(session: Session, source: Any, channel: str, default_reason: str,
                         actor: int | None) -> dict[str, Any]:
    """Insert an opened CSV's suppressions in batches, skipping the ones that exist."""
    keys = [field_key(name) for name in source.header]
    address_col = next((keys.index(k) for k in ADDRESS_COLUMNS if k in keys), None)
    if address_col is None and len(keys) == 1:
        address_col = 0
    channel_col = keys.index("channel") if "channel" in keys else None
    reason_col = keys.index("reason") if "reason" in keys else None
    if address_col is None:
        raise ValidationError("No address column", {"file": "the file needs an address column "
                                                    "(address, email or phone)"})
    if not channel and channel_col is None:
        raise ValidationError("Which channel?", {"channel": "choose a channel, or add a "
                                                 "channel column (email or sms) to the file"})
    dialect = session.get_bind().dialect.name
    result: dict[str, Any] = {"added": 0, "existing": 0, "rejected": 0, "rejections": []}
    rows = source.rows()
    while batch := list(islice(rows, IMPORT_BATCH)):
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        for row in batch:
            problem, record = _suppression_record(row, channel, address_col, channel_col,
                                                  reason_col, default_reason, actor)
            if record is None:
                result["rejected"] += 1
                if len(result["rejections"]) < MAX_REJECTIONS_SHOWN:
                    result["rejections"].append((row.line, problem))
            elif (record["channel"], record["address"]) in pending:
                result["existing"] += 1  # repeated in the file
            else:
                pending[(record["channel"], record["address"])] = record
        if pending:
            added = len(session.execute(insert_ignore(Suppression.__table__, dialect)
                                        .values(list(pending.values()))
                                        .returning(Suppression.id)).all())
            result["added"] += added
            result["existing"] += len(pending) - added
    return result


def _suppression_record(row: Any, channel: str, address_col: int, channel_col: int | None,
                        reason_col: int | None, default_reason: str,
                        actor: int | None) -> tuple[str, dict[str, Any] | None]:
    """One CSV row as a suppression to insert, or the reason it is refused."""
    if row.error:
        return row.error, None
    values = row.values
    word = channel or (values[channel_col].strip().lower() if channel_col is not None else "")
    if word not in CHANNEL_WORDS:
        return f"unknown channel {word!r} (email or sms)", None
    ch = Channel(CHANNEL_WORDS[word])
    try:
        address = normalize_address(ch, values[address_col])
    except InvalidAddress as exc:
        return str(exc), None
    reason = (values[reason_col].strip().lower() if reason_col is not None else "") or (
        default_reason)
    if reason not in REASONS:
        return f"unknown reason {reason!r}", None
    return "", {"channel": ch.value, "address": address, "reason": reason,
                "note": "imported from a file", "created_by_id": actor, "created_at": utcnow()}


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
            result = import_suppressions_csv(session, upload.stream, channel,
                                             request.form.get("reason", "imported"), actor_id())
    except ValidationError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("contacts.suppressions"))
    return render_template("contacts/suppression_import.html", result=result,
                           filename=upload.filename)


def suppressions_csv(session: Session, channel: str = "") -> Iterator[str]:
    """Every suppression as CSV text (channel, address, reason, note, created_at), in batches."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["channel", "address", "reason", "note", "created_at"])
    last = 0
    while True:
        query = sa.select(Suppression).where(Suppression.id > last).order_by(Suppression.id)
        if channel:
            query = query.where(Suppression.channel == channel)
        batch = session.scalars(query.limit(5000)).all()
        for row in batch:
            address = row.address if row.channel == "sms" else _cell(row.address)
            writer.writerow([row.channel, address, row.reason, _cell(row.note),
                             row.created_at.isoformat()])
            last = row.id
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        session.expunge_all()
        if len(batch) < 5000:
            return


def _cell(text: str) -> str:
    """Free text made safe to open in a spreadsheet (no formula injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/suppressions/export.csv")
@requires(Role.ADMIN)
def export_suppressions() -> Any:
    """Download every suppression (or one channel's) as CSV."""
    channel = request.args.get("channel", "")
    channel = channel if channel in ("email", "sms") else ""
    return csv_response(suppressions_csv(db.session(), channel),
                        f"suppressions{'-' + channel if channel else ''}.csv")
