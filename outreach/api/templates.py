"""The JSON API for message templates: CRUD (each save a new version), versions, preview, test."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.auth import current_user, requires
from outreach.blasts.models import Blast
from outreach.contacts.service import decode_cursor, encode_cursor
from outreach.content import jobs
from outreach.content.models import MessageTemplate, TemplateVersion
from outreach.content.service import current_version, get_template, save_template, template_json
from outreach.exceptions import Conflict, NotFound, ValidationError

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
STRING_FIELDS = ("name", "subject", "html", "text", "body", "from_name", "reply_to")


# Helpers shared with the blasts API ----------------------------------------------------------

def actor_id() -> int | None:
    """The id of the staff user behind the request."""
    user = current_user()
    return user.id if user is not None else None


def limit_arg() -> int:
    """The page size from ?limit= (default 100, 1 to 1000), or a 422 naming `limit`."""
    raw = request.args.get("limit", "").strip()
    if not raw:
        return DEFAULT_LIMIT
    limit = int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("Invalid limit", {"limit": f"an integer from 1 to {MAX_LIMIT}"})
    return limit


def newest_first(session: Session, query: sa.Select[Any], id_column: Any,
                 ) -> tuple[list[Any], str | None]:
    """One page (?limit=, ?cursor=) of a query ordered by id descending, and the next cursor."""
    limit, cursor = limit_arg(), request.args.get("cursor", "").strip()
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


def optional_id(data: dict[str, Any], field: str) -> int | None:
    """An optional integer id of a JSON body, or a 422 naming the field."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"Invalid {field}", {field: "must be an integer id"})
    return value


# Templates -----------------------------------------------------------------------------------

def _template_input(data: dict[str, Any]) -> dict[str, Any]:
    """The body's template fields, with a 422 naming any of the wrong type."""
    errors = {k: "must be a string" for k in STRING_FIELDS
              if k in data and data[k] is not None and not isinstance(data[k], str)}
    if "append_stop" in data and not isinstance(data["append_stop"], bool):
        errors["append_stop"] = "must be true or false"
    if errors:
        raise ValidationError("Invalid template", errors)
    return {k: v for k, v in data.items() if k in (*STRING_FIELDS, "append_stop", "channel")}


def version_json(version: TemplateVersion) -> dict[str, Any]:
    """One saved version of a template."""
    return {"id": version.id, "template_id": version.template_id, "version": version.version,
            "subject": version.subject, "html": version.html, "text": version.text,
            "body": version.body, "from_name": version.from_name, "reply_to": version.reply_to,
            "append_stop": version.append_stop, "created_by_id": version.created_by_id,
            "created_at": version.created_at.isoformat()}


@bp.get("/templates")
@requires(Role.VIEWER)
def list_templates() -> Any:
    """Templates, newest first, optionally of one channel (?channel=email|sms)."""
    session = db.session()
    query = sa.select(MessageTemplate)
    channel = request.args.get("channel", "").strip()
    if channel:
        if channel not in ("email", "sms"):
            raise ValidationError("Invalid channel", {"channel": "email or sms"})
        query = query.where(MessageTemplate.channel == channel)
    rows, next_cursor = newest_first(session, query, MessageTemplate.id)
    return jsonify({"data": [template_json(session, t) for t in rows],
                    "next_cursor": next_cursor})


@bp.post("/templates")
@requires(Role.ORGANIZER)
def create_template() -> Any:
    """Create a template (version 1)."""
    data = _template_input(json_body())
    with db.transaction() as session:
        template = save_template(session, data, actor_id=actor_id())
        body = template_json(session, template)
    return jsonify(body), 201


@bp.get("/templates/<int:template_id>")
@requires(Role.VIEWER)
def read_template(template_id: int) -> Any:
    """A template with its newest version's content."""
    session = db.session()
    return jsonify(template_json(session, get_template(session, template_id)))


@bp.route("/templates/<int:template_id>", methods=["PUT", "PATCH"])
@requires(Role.ORGANIZER)
def update_template(template_id: int) -> Any:
    """Save a new version; fields left out keep the current version's values."""
    data = _template_input(json_body())
    with db.transaction() as session:
        template = get_template(session, template_id)
        if data.pop("channel", template.channel) != template.channel:
            raise ValidationError("A template's channel cannot change", {
                "channel": f"this is an {template.channel} template; create a new one"})
        template = save_template(session, data, template_id, actor_id=actor_id())
        body = template_json(session, template)
    return jsonify(body)


@bp.delete("/templates/<int:template_id>")
@requires(Role.ORGANIZER)
def delete_template(template_id: int) -> Any:
    """Delete a template and its versions, unless a blast uses it (409)."""
    with db.transaction() as session:
        template = get_template(session, template_id)
        used = session.scalar(sa.select(sa.func.count()).select_from(Blast)
                              .where(Blast.template_id == template_id))
        if used:
            raise Conflict(f"{used} blast{'s use' if used != 1 else ' uses'} this template; "
                           "it cannot be deleted")
        session.execute(sa.delete(TemplateVersion)
                        .where(TemplateVersion.template_id == template_id))
        session.delete(template)
    return "", 204


@bp.get("/templates/<int:template_id>/versions")
@requires(Role.VIEWER)
def list_versions(template_id: int) -> Any:
    """Every saved version of a template, newest first."""
    session = db.session()
    get_template(session, template_id)
    rows, next_cursor = newest_first(
        session, sa.select(TemplateVersion).where(TemplateVersion.template_id == template_id),
        TemplateVersion.id)
    return jsonify({"data": [version_json(v) for v in rows], "next_cursor": next_cursor})


@bp.get("/templates/<int:template_id>/versions/<int:number>")
@requires(Role.VIEWER)
def read_version(template_id: int, number: int) -> Any:
    """One saved version of a template, by its number."""
    session = db.session()
    get_template(session, template_id)
    version = session.scalar(sa.select(TemplateVersion).where(
        TemplateVersion.template_id == template_id, TemplateVersion.version == number))
    if version is None:
        raise NotFound(f"Template {template_id} has no version {number}")
    return jsonify(version_json(version))


@bp.post("/templates/<int:template_id>/preview")
@requires(Role.VIEWER)
def preview_template(template_id: int) -> Any:
    """The newest version rendered for a contact (or a sample contact when none is given)."""
    data = request.get_json(silent=True) if request.data else {}
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object", {"body": "expected a JSON object"})
    contact_id = optional_id(data, "contact_id")
    session = db.session()
    template = get_template(session, template_id)
    try:
        contact = jobs.preview_contact(contact_id)
    except NotFound as exc:
        raise ValidationError("Unknown contact", {"contact_id": str(exc)}) from None
    rendered = jobs.render(current_version(session, template), template.channel, contact)
    if template.channel == "email":
        body = {k: rendered[k] for k in ("subject", "html", "text")}
    else:
        body = {k: rendered[k] for k in ("body", "segments", "encoding", "characters")}
    return jsonify({**body, "version": template.version, "contact_id": contact_id})


@bp.post("/templates/<int:template_id>/test")
@requires(Role.ORGANIZER)
def test_template(template_id: int) -> Any:
    """Queue the newest version, rendered for a contact, to one test address or number."""
    data = json_body()
    if not isinstance(data.get("to"), str):
        raise ValidationError("Invalid test", {"to": "required string"})
    contact_id = optional_id(data, "contact_id")
    get_template(db.session(), template_id)
    try:
        jobs.preview_contact(contact_id)
    except NotFound as exc:
        raise ValidationError("Unknown contact", {"contact_id": str(exc)}) from None
    job_id = jobs.queue_template_test(template_id, contact_id, data["to"])
    return jsonify({"job_id": job_id, "status": "queued"}), 202


from outreach.api import openapi_blasts as _openapi  # noqa: E402,F401
