"""The JSON API for lists and their members."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import limit_arg, page_json
from outreach.auth import requires
from outreach.contacts import service
from outreach.contacts.models import ContactList
from outreach.exceptions import ValidationError

MAX_MEMBERS_PER_REQUEST = 10_000


# Views --------------------------------------------------------------------------------------

def list_json(row: ContactList, members: int) -> dict[str, Any]:
    """A list as the API shows it."""
    return {"id": row.id, "name": row.name, "description": row.description or "",
            "members": members, "created_at": row.created_at.isoformat()}


@bp.get("/lists")
@requires(Role.VIEWER)
def list_lists() -> Any:
    """Every list with its member count, a page at a time (by id)."""
    session = db.session()
    rows, next_cursor = service.page(session, sa.select(ContactList).order_by(ContactList.id),
                                     limit_arg(), request.args.get("cursor"), ContactList.id)
    counts = service.member_counts(session, [r.id for r in rows])
    return jsonify(page_json([list_json(r, counts[r.id]) for r in rows], next_cursor))


@bp.post("/lists")
@requires(Role.ORGANIZER)
def create_list() -> Any:
    """Create a list."""
    data = json_body()
    name, description = data.get("name"), data.get("description", "")
    bad = {k: "must be a string" for k, v in (("name", name), ("description", description))
           if not isinstance(v, str)}
    if bad:
        raise ValidationError("Invalid list", bad)
    with db.transaction() as session:
        row = service.create_list(session, name, description)
    response = jsonify(list_json(row, 0))
    response.headers["Location"] = url_for("api.get_list_view", list_id=row.id)
    return response, 201


@bp.get("/lists/<int:list_id>")
@requires(Role.VIEWER)
def get_list_view(list_id: int) -> Any:
    """One list with its member count."""
    session = db.session()
    row = service.find_list(session, list_id)
    return jsonify(list_json(row, service.member_counts(session, [list_id])[list_id]))


@bp.patch("/lists/<int:list_id>")
@requires(Role.ORGANIZER)
def update_list_view(list_id: int) -> Any:
    """Rename a list or change its description."""
    data = json_body()
    with db.transaction() as session:
        row = service.update_list(session, list_id, data)
    return jsonify(list_json(row, service.member_counts(session, [list_id])[list_id]))


@bp.delete("/lists/<int:list_id>")
@requires(Role.ORGANIZER)
def delete_list(list_id: int) -> Any:
    """Delete a list; its contacts stay."""
    with db.transaction() as session:
        service.delete_list(session, list_id)
    return "", 204


@bp.post("/lists/<int:list_id>/members")
@requires(Role.ORGANIZER)
def add_list_members(list_id: int) -> Any:
    """Add contacts to a list by id (those already on it are left as they are)."""
    ids = json_body().get("contact_ids")
    if (not isinstance(ids, list) or len(ids) > MAX_MEMBERS_PER_REQUEST
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise ValidationError("Invalid contact_ids", {
            "contact_ids": f"a list of at most {MAX_MEMBERS_PER_REQUEST} contact ids"})
    with db.transaction() as session:
        added = service.add_members(session, list_id, ids)
    return jsonify({"list_id": list_id, "added": added,
                    "members": service.member_counts(session, [list_id])[list_id]})


@bp.delete("/lists/<int:list_id>/members/<int:contact_id>")
@requires(Role.ORGANIZER)
def remove_list_member(list_id: int, contact_id: int) -> Any:
    """Take a contact off a list."""
    with db.transaction() as session:
        service.remove_member(session, list_id, contact_id)
    return "", 204
