"""List pages: lists with member counts, create, rename, and delete after a confirmation."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.contacts import service
from outreach.contacts.views import bp, error_text
from outreach.exceptions import Conflict, ValidationError


@bp.get("/lists")
@requires(Role.VIEWER)
def lists() -> Any:
    """Every list with its member count, and the forms to add and rename lists."""
    return render_template("contacts/lists.html", lists=service.list_counts(db.session()))


@bp.post("/lists")
@requires(Role.ORGANIZER)
def create_list() -> Any:
    """Add a list."""
    try:
        with db.transaction() as session:
            row = service.create_list(session, request.form.get("name", ""),
                                      request.form.get("description", "").strip())
    except (ValidationError, Conflict) as exc:
        flash(error_text(exc), "error")
    else:
        flash(f"List “{row.name}” created.", "success")
    return redirect(url_for("contacts.lists"))


@bp.post("/lists/<int:list_id>/rename")
@requires(Role.ORGANIZER)
def rename_list_view(list_id: int) -> Any:
    """Rename a list."""
    try:
        with db.transaction() as session:
            row = service.update_list(session, list_id, {
                "name": request.form.get("name", ""),
                "description": request.form.get("description")})
    except (ValidationError, Conflict) as exc:
        flash(error_text(exc), "error")
    else:
        flash(f"List renamed to “{row.name}”.", "success")
    return redirect(url_for("contacts.lists"))


@bp.get("/lists/<int:list_id>/delete")
@requires(Role.ORGANIZER)
def confirm_delete_list(list_id: int) -> Any:
    """Ask before deleting a list, saying how many members it has."""
    counts = {row.id: n for row, n in service.list_counts(db.session())}
    row = service.find_list(db.session(), list_id)
    return render_template("contacts/list_delete.html", list=row, members=counts.get(row.id, 0))


@bp.post("/lists/<int:list_id>/delete")
@requires(Role.ORGANIZER)
def delete_list(list_id: int) -> Any:
    """Delete a list; its contacts stay."""
    with db.transaction() as session:
        name = service.find_list(session, list_id).name
        service.delete_list(session, list_id)
    flash(f"List “{name}” deleted; its contacts were kept.", "success")
    return redirect(url_for("contacts.lists"))
