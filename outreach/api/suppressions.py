"""The JSON API for suppressions: addresses never to be messaged on a channel."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import actor_id, limit_arg, page_json
from outreach.auth import requires
from outreach.contacts import consent, service, suppressions
from outreach.contacts.models import Suppression, SuppressionReason
from outreach.exceptions import ValidationError

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
    query = suppressions.search(channel, _region(), address=request.args.get("address"))
    rows, next_cursor = service.page(session, query.order_by(Suppression.id), limit,
                                     request.args.get("cursor"), Suppression.id)
    return jsonify(page_json([suppression_json(r) for r in rows], next_cursor))


@bp.post("/suppressions")
@requires(Role.ORGANIZER)
def create_suppression() -> Any:
    """Suppress an address on a channel: 201 when new, 200 with the one already there."""
    data = json_body()
    bad = {k: "must be a string" for k in ("channel", "address", "reason", "note")
           if k in data and not isinstance(data[k], str)}
    bad.update({k: "required" for k in ("channel", "address") if not data.get(k)})
    if isinstance(data.get("reason"), str) and data["reason"] not in suppressions.REASONS:
        bad["reason"] = suppressions.REASON_CHOICES
    if bad:
        raise ValidationError("Invalid suppression", bad)
    channel = consent.parse_channel(data["channel"])
    with db.transaction() as session:
        row, created = suppressions.add(session, channel, data["address"],
                                        data.get("reason") or SuppressionReason.MANUAL.value,
                                        data.get("note", ""), actor_id(), _region())
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
    with db.transaction() as session:
        report = suppressions.import_file(session, upload.stream, channel=channel, reason=reason,
                                          region=_region(), actor=actor_id())
    return jsonify({"rows_total": report.rows_total, "added": report.added,
                    "existing": report.existing, "rejected": report.rejected,
                    "rejections": [{"line": line, "reason": why}
                                   for line, why in report.rejections]})
