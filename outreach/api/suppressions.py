"""The JSON API for suppressions: addresses never to be messaged on a channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import actor_id, limit_arg, page_json
from outreach.auth import requires
from outreach.contacts import consent, service
from outreach.contacts.csvfile import CsvError, field_key, open_csv
from outreach.contacts.models import Channel, Suppression, SuppressionReason
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.db import insert_ignore, utcnow
from outreach.exceptions import ValidationError

IMPORT_BATCH = 5000
MAX_REPORTED_REJECTIONS = 1000
ADDRESS_COLUMNS = ("address", "email", "phone", "mobile", "number")


# Service functions (candidates for outreach.contacts.consent) ---------------------------------

def normalize_address(channel: Channel, raw: str, region: str, field: str = "address") -> str:
    """An address normalized for its channel, or a 422 naming the field."""
    try:
        if channel is Channel.EMAIL:
            return normalize_email(raw)
        return normalize_phone(raw, region)
    except InvalidAddress as exc:
        raise ValidationError("Invalid address", {field: str(exc)}) from None


def search_suppressions(channel: Channel | None, address: str | None,
                        region: str) -> sa.Select[Any]:
    """A query of suppressions, by id, optionally of one channel or one address."""
    query = sa.select(Suppression).order_by(Suppression.id)
    if channel is not None:
        query = query.where(Suppression.channel == channel.value)
    if address:
        candidates = {address.strip(), address.strip().lower()}
        for kind in Channel:
            try:
                candidates.add(normalize_address(kind, address, region))
            except ValidationError:
                pass
        query = query.where(Suppression.address.in_(sorted(candidates)))
    return query


def add_suppression(db: Session, channel: Channel, address: str, reason: str, note: str,
                    actor: int | None) -> tuple[Suppression, bool]:
    """Suppress an address; return the suppression and whether it is new (idempotent)."""
    existing = consent.suppression_for(db, channel, address)
    if existing is not None:
        return existing, False
    try:
        with db.begin_nested():
            return consent.suppress(db, channel, address, reason, note, actor), True
    except IntegrityError:  # another request suppressed it at the same moment
        row = consent.suppression_for(db, channel, address)
        assert row is not None
        return row, False


def import_suppressions(db: Session, stream: BinaryIO, channel: Channel | None,
                        reason: str, region: str, actor: int | None) -> dict[str, Any]:
    """Suppress every address of a CSV (channel, address, reason) with set-based inserts."""
    try:
        source = open_csv(stream)
    except CsvError as exc:
        raise ValidationError(str(exc), {"file": str(exc)}) from None
    keys = [field_key(name) for name in source.header]
    columns = {name: keys.index(name) if name in keys else None
               for name in ("channel", "reason", "note")}
    columns["address"] = next((keys.index(k) for k in ADDRESS_COLUMNS if k in keys), None)
    if columns["address"] is None:
        raise ValidationError("No address column", {"file": "needs an address column"})
    if columns["channel"] is None and channel is None:
        raise ValidationError("No channel", {
            "channel": "give a channel column in the file or a channel field"})
    statement = (insert_ignore(Suppression.__table__, db.get_bind().dialect.name)
                 .returning(Suppression.id))
    report: dict[str, Any] = {"rows_total": 0, "added": 0, "existing": 0, "rejected": 0,
                              "rejections": []}
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            added = len(db.execute(statement, batch).all())
            report["added"] += added
            report["existing"] += len(batch) - added
            batch.clear()

    try:
        for line, values, error in _rows(source):
            report["rows_total"] += 1
            try:
                if error:
                    raise ValidationError(error)
                row = _suppression_row(values, columns, channel, reason, region)
            except ValidationError as exc:
                report["rejected"] += 1
                if len(report["rejections"]) < MAX_REPORTED_REJECTIONS:
                    detail = next(iter(exc.fields.values()), exc.message)
                    report["rejections"].append({"line": line, "reason": detail})
                continue
            batch.append({**row, "created_by_id": actor, "created_at": utcnow()})
            if len(batch) >= IMPORT_BATCH:
                flush()
    except CsvError as exc:
        raise ValidationError(str(exc), {"file": str(exc)}) from None
    flush()
    return report


def _suppression_row(values: list[str], columns: dict[str, int | None],
                     channel: Channel | None, reason: str, region: str) -> dict[str, str]:
    """One row of a suppression file, checked and normalized, or a ValidationError."""

    def cell(name: str) -> str:
        index = columns[name]
        return values[index].strip() if index is not None and index < len(values) else ""

    row_channel = consent.parse_channel(cell("channel").lower()) if cell("channel") else channel
    if row_channel is None:
        raise ValidationError("no channel")
    row_reason = cell("reason").lower() or reason
    if row_reason not in set(SuppressionReason):
        raise ValidationError(f"unknown reason {row_reason!r}")
    return {"channel": row_channel.value,
            "address": normalize_address(row_channel, cell("address"), region),
            "reason": row_reason, "note": cell("note") or "imported"}


def _rows(source: Any) -> Iterator[tuple[int, list[str], str | None]]:
    for row in source.rows():
        yield row.line, row.values, row.error


# Views --------------------------------------------------------------------------------------

def suppression_json(row: Suppression) -> dict[str, Any]:
    """A suppression as the API shows it."""
    return {"id": row.id, "channel": row.channel, "address": row.address,
            "reason": row.reason, "note": row.note or "", "created_by_id": row.created_by_id,
            "created_at": row.created_at.isoformat()}


def _region() -> str:
    return current_app.config.get("DEFAULT_REGION", "US")


@bp.get("/suppressions")
@requires(Role.VIEWER)
def list_suppressions() -> Any:
    """Suppressions, optionally of one channel or address, a page at a time."""
    raw_channel = request.args.get("channel", "").strip()
    channel = consent.parse_channel(raw_channel) if raw_channel else None
    limit = limit_arg()
    session = db.session()
    query = search_suppressions(channel, request.args.get("address"), _region())
    rows, next_cursor = service.page(session, query, limit, request.args.get("cursor"),
                                     Suppression.id)
    return jsonify(page_json([suppression_json(r) for r in rows], next_cursor))


@bp.post("/suppressions")
@requires(Role.ORGANIZER)
def create_suppression() -> Any:
    """Suppress an address on a channel: 201 when new, 200 with the one already there."""
    data = json_body()
    bad = {k: "must be a string" for k in ("channel", "address", "reason", "note")
           if k in data and not isinstance(data[k], str)}
    bad.update({k: "required" for k in ("channel", "address") if not data.get(k)})
    if isinstance(data.get("reason"), str) and data["reason"] not in set(SuppressionReason):
        bad["reason"] = "must be one of " + ", ".join(r.value for r in SuppressionReason)
    if bad:
        raise ValidationError("Invalid suppression", bad)
    channel = consent.parse_channel(data["channel"])
    address = normalize_address(channel, data["address"], _region())
    with db.transaction() as session:
        row, created = add_suppression(session, channel, address,
                                       data.get("reason") or SuppressionReason.MANUAL.value,
                                       data.get("note", ""), actor_id())
    return jsonify(suppression_json(row)), (201 if created else 200)


@bp.delete("/suppressions/<int:suppression_id>")
@requires(Role.ADMIN)
def delete_suppression(suppression_id: int) -> Any:
    """Lift a suppression (admin), saying why; the removal is recorded."""
    body = request.get_json(silent=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is None:
        reason = request.args.get("reason", "")
    if not isinstance(reason, str):
        raise ValidationError("Invalid reason", {"reason": "must be a string"})
    with db.transaction() as session:
        consent.remove_suppression(session, suppression_id, reason, actor_id())
    return "", 204


@bp.post("/suppressions/import")
@requires(Role.ADMIN)
def import_suppressions_view() -> Any:
    """Suppress the addresses of a CSV file (admin); report counts and rejected lines."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Attach the CSV file as `file`", {"file": "required"})
    raw_channel = request.form.get("channel", "").strip()
    channel = consent.parse_channel(raw_channel) if raw_channel else None
    reason = request.form.get("reason", "").strip() or SuppressionReason.IMPORTED.value
    if reason not in set(SuppressionReason):
        raise ValidationError("Unknown reason", {
            "reason": "must be one of " + ", ".join(r.value for r in SuppressionReason)})
    with db.transaction() as session:
        report = import_suppressions(session, upload.stream, channel, reason, _region(),
                                     actor_id())
    return jsonify(report)
