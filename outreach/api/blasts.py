"""The JSON API for blasts: drafts, the audience count, and launch, pause, resume, cancel."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.templates import actor_id, newest_first
from outreach.auth import current_user, requires
from outreach.blasts import pipeline, service
from outreach.blasts.models import Blast, BlastStatus
from outreach.exceptions import ValidationError

BLAST_FIELDS = ("name", "channel", "template_id", "list_ids", "segment_id", "exclude_list_ids",
                "send_at", "window", "throttle_per_minute")


def _blast_input(data: dict[str, Any]) -> dict[str, Any]:
    """The body's blast fields (others are ignored); save_blast checks each one."""
    if "send_at" in data and data["send_at"] is not None and not isinstance(data["send_at"], str):
        raise ValidationError("Invalid blast", {"send_at": "an ISO 8601 string or null"})
    for field in ("template_id", "segment_id", "throttle_per_minute"):
        if isinstance(data.get(field), bool):
            raise ValidationError("Invalid blast", {field: "must be an integer"})
    return {k: v for k, v in data.items() if k in BLAST_FIELDS}


def _accepted(blast: Blast) -> Any:
    return jsonify(service.blast_json(db.session(), blast)), 202


@bp.get("/blasts")
@requires(Role.VIEWER)
def list_blasts() -> Any:
    """Blasts, newest first, optionally in one status (?status=)."""
    session = db.session()
    query = sa.select(Blast)
    status = request.args.get("status", "").strip()
    if status:
        if status not in {s.value for s in BlastStatus}:
            raise ValidationError("Invalid status", {
                "status": f"one of {', '.join(s.value for s in BlastStatus)}"})
        query = query.where(Blast.status == status)
    rows, next_cursor = newest_first(session, query, Blast.id)
    return jsonify({"data": [service.blast_json(session, b) for b in rows],
                    "next_cursor": next_cursor})


@bp.post("/blasts")
@requires(Role.ORGANIZER)
def create_blast() -> Any:
    """Create a draft blast; 422 names each bad field."""
    data = _blast_input(json_body())
    with db.transaction() as session:
        blast = service.save_blast(session, data, actor_id=actor_id())
        body = service.blast_json(session, blast)
    return jsonify(body), 201


@bp.get("/blasts/<int:blast_id>")
@requires(Role.VIEWER)
def read_blast(blast_id: int) -> Any:
    """A blast with its status and message counts."""
    session = db.session()
    return jsonify(service.blast_json(session, service.get_blast(session, blast_id)))


@bp.patch("/blasts/<int:blast_id>")
@requires(Role.ORGANIZER)
def update_blast(blast_id: int) -> Any:
    """Change a draft or scheduled blast (409 otherwise); a new send time reschedules it."""
    data = _blast_input(json_body())
    with db.transaction() as session:
        blast = service.get_blast(session, blast_id)
        was_scheduled, old_send_at = blast.status == BlastStatus.SCHEDULED, blast.send_at
        blast = service.save_blast(session, data, blast_id)
        relaunch = was_scheduled and blast.send_at != old_send_at
        if relaunch:
            blast = service.launch(session, blast_id)
        body = service.blast_json(session, blast)
    if relaunch:
        pipeline.start_blast(blast)
    return jsonify(body)


@bp.get("/blasts/<int:blast_id>/audience")
@requires(Role.VIEWER)
def blast_audience(blast_id: int) -> Any:
    """How many contacts the blast would reach if launched now."""
    session = db.session()
    return jsonify({"count": service.preview_audience(session,
                                                      service.get_blast(session, blast_id))})


@bp.post("/blasts/<int:blast_id>/launch")
@requires(Role.ORGANIZER)
def launch_blast(blast_id: int) -> Any:
    """Launch now, or schedule for send_at: the launch commits before its job is queued."""
    with db.transaction() as session:
        blast = service.launch(session, blast_id)
    pipeline.start_blast(blast)
    return _accepted(blast)


@bp.post("/blasts/<int:blast_id>/pause")
@requires(Role.ORGANIZER)
def pause_blast(blast_id: int) -> Any:
    """Pause after the batches in flight; an optional {"reason"} is shown with the status."""
    data = request.get_json(silent=True) if request.data else None
    reason = data.get("reason") if isinstance(data, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise ValidationError("Invalid reason", {"reason": "a string of at most 500 characters"})
    user = current_user()
    default = f"Paused by {user.email}" if user is not None else "Paused by staff"
    with db.transaction() as session:
        blast = service.pause(session, blast_id, (reason or "").strip() or default)
    return _accepted(blast)


@bp.post("/blasts/<int:blast_id>/resume")
@requires(Role.ORGANIZER)
def resume_blast(blast_id: int) -> Any:
    """Resume where the blast stopped: the resume commits, then what is left is queued."""
    with db.transaction() as session:
        blast = service.resume(session, blast_id)
    pipeline.continue_blast(blast)
    return _accepted(blast)


@bp.post("/blasts/<int:blast_id>/cancel")
@requires(Role.ORGANIZER)
def cancel_blast(blast_id: int) -> Any:
    """Cancel for good: messages not yet sent are canceled."""
    with db.transaction() as session:
        blast = service.cancel(session, blast_id)
    return _accepted(blast)
