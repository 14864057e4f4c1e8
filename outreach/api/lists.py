"""The JSON API for lists and their members."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request, url_for
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import limit_arg, page_json
from outreach.auth import requires
from outreach.contacts import service
from outreach.contacts.models import Contact, ContactList, ListMember
from outreach.db import insert_ignore, utcnow
from outreach.exceptions import Conflict, NotFound, ValidationError

MAX_MEMBERS_PER_REQUEST = 10_000


# Service functions (plain functions of a session; candidates for outreach.contacts.service) ----

def member_counts(db: Session, list_ids: list[int]) -> dict[int, int]:
    """The member count of each of these lists, in one query."""
    rows = db.execute(sa.select(ListMember.list_id, sa.func.count())
                      .where(ListMember.list_id.in_(list_ids)).group_by(ListMember.list_id))
    counts = dict.fromkeys(list_ids, 0)
    counts.update({list_id: int(n) for list_id, n in rows})
    return counts


def get_list(db: Session, list_id: int) -> ContactList:
    """A list by id, or NotFound."""
    row = db.get(ContactList, list_id)
    if row is None:
        raise NotFound(f"No list {list_id}")
    return row


def update_list(db: Session, list_id: int, data: dict[str, Any]) -> ContactList:
    """Rename a list or change its description."""
    row = get_list(db, list_id)
    errors: dict[str, str] = {}
    name = data.get("name", row.name)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        errors["name"] = "required, at most 200 characters"
    description = data.get("description", row.description)
    if not isinstance(description, str):
        errors["description"] = "must be a string"
    if errors:
        raise ValidationError("Invalid list", errors)
    name = name.strip()
    clash = db.scalar(sa.select(ContactList.id).where(ContactList.name == name))
    if clash is not None and clash != list_id:
        raise Conflict(f"A list named {name!r} already exists")
    row.name, row.description = name, description
    db.flush()
    return row


def add_members(db: Session, list_id: int, contact_ids: list[int]) -> int:
    """Add contacts to a list in one set-based statement; return how many were new members."""
    get_list(db, list_id)
    wanted = sorted(set(contact_ids))
    found = set(db.scalars(sa.select(Contact.id).where(Contact.id.in_(wanted))))
    unknown = [i for i in wanted if i not in found]
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise ValidationError("Unknown contacts", {"contact_ids": f"no contacts {shown}"})
    before = member_counts(db, [list_id])[list_id]
    dialect = db.get_bind().dialect.name
    db.execute(insert_ignore(ListMember.__table__, dialect).from_select(
        ["list_id", "contact_id", "created_at"],
        sa.select(sa.literal(list_id), Contact.id,
                  sa.literal(utcnow(), ListMember.created_at.type))
        .where(Contact.id.in_(wanted))))
    return member_counts(db, [list_id])[list_id] - before


def remove_member(db: Session, list_id: int, contact_id: int) -> None:
    """Take a contact off a list, or NotFound if it is not on it."""
    get_list(db, list_id)
    done = db.execute(sa.delete(ListMember).where(ListMember.list_id == list_id,
                                                  ListMember.contact_id == contact_id))
    if not done.rowcount:
        raise NotFound(f"Contact {contact_id} is not on list {list_id}")


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
    counts = member_counts(session, [r.id for r in rows])
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
    row = get_list(session, list_id)
    return jsonify(list_json(row, member_counts(session, [list_id])[list_id]))


@bp.patch("/lists/<int:list_id>")
@requires(Role.ORGANIZER)
def update_list_view(list_id: int) -> Any:
    """Rename a list or change its description."""
    data = json_body()
    with db.transaction() as session:
        row = update_list(session, list_id, data)
    return jsonify(list_json(row, member_counts(session, [list_id])[list_id]))


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
        added = add_members(session, list_id, ids)
    return jsonify({"list_id": list_id, "added": added,
                    "members": member_counts(session, [list_id])[list_id]})


@bp.delete("/lists/<int:list_id>/members/<int:contact_id>")
@requires(Role.ORGANIZER)
def remove_list_member(list_id: int, contact_id: int) -> Any:
    """Take a contact off a list."""
    with db.transaction() as session:
        remove_member(session, list_id, contact_id)
    return "", 204
