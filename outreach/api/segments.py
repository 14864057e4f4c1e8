"""The JSON API for segments: saved rules over contacts, and live counts for the builder."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import limit_arg, page_json
from outreach.auth import requires
from outreach.contacts import segments, service
from outreach.contacts.models import Segment
from outreach.exceptions import ValidationError

# Views --------------------------------------------------------------------------------------

def segment_json(segment: Segment) -> dict[str, Any]:
    """A segment as the API shows it."""
    return {"id": segment.id, "name": segment.name, "rules": segment.rules,
            "created_at": segment.created_at.isoformat(),
            "updated_at": segment.updated_at.isoformat()}


def _segment_body() -> tuple[str, Any]:
    data = json_body()
    name = data.get("name")
    if not isinstance(name, str):
        raise ValidationError("Invalid segment", {"name": "required string"})
    if "rules" not in data:
        raise ValidationError("Invalid segment", {"rules": "required"})
    return name, data["rules"]


@bp.get("/segments")
@requires(Role.VIEWER)
def list_segments() -> Any:
    """Saved segments, a page at a time (by id)."""
    session = db.session()
    rows, next_cursor = service.page(session, sa.select(Segment).order_by(Segment.id),
                                     limit_arg(), request.args.get("cursor"), Segment.id)
    return jsonify(page_json([segment_json(s) for s in rows], next_cursor))


@bp.post("/segments")
@requires(Role.ORGANIZER)
def create_segment() -> Any:
    """Save a new segment after checking its rules."""
    name, rules = _segment_body()
    with db.transaction() as session:
        segment = segments.save_segment(session, name, rules)
    response = jsonify(segment_json(segment))
    response.headers["Location"] = url_for("api.get_segment_view", segment_id=segment.id)
    return response, 201


@bp.get("/segments/<int:segment_id>")
@requires(Role.VIEWER)
def get_segment_view(segment_id: int) -> Any:
    """One segment."""
    return jsonify(segment_json(segments.get_segment(db.session(), segment_id)))


@bp.put("/segments/<int:segment_id>")
@requires(Role.ORGANIZER)
def replace_segment(segment_id: int) -> Any:
    """Change a segment's name and rules."""
    name, rules = _segment_body()
    with db.transaction() as session:
        segments.get_segment(session, segment_id)  # 404 before the name and rule checks
        segment = segments.save_segment(session, name, rules, segment_id)
    return jsonify(segment_json(segment))


@bp.delete("/segments/<int:segment_id>")
@requires(Role.ORGANIZER)
def delete_segment_view(segment_id: int) -> Any:
    """Delete a segment."""
    with db.transaction() as session:
        segments.delete_segment(session, segment_id)
    return "", 204


@bp.get("/segments/<int:segment_id>/count")
@requires(Role.VIEWER)
def count_segment(segment_id: int) -> Any:
    """How many contacts a saved segment matches now."""
    session = db.session()
    return jsonify({"count": segments.count_matching(
        session, segments.get_segment(session, segment_id).rules)})


@bp.post("/segments/count")
@requires(Role.ORGANIZER)
def count_rules() -> Any:
    """How many contacts a rule tree matches (the segment builder's live count)."""
    data = json_body()
    if "rules" not in data:
        raise ValidationError("Invalid rules", {"rules": "required"})
    return jsonify({"count": segments.count_matching(db.session(), data["rules"])})
