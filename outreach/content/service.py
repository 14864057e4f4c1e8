"""Saving templates as new versions, after checking every merge, and previews."""

from __future__ import annotations

from typing import Any

import css_inline
import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.content import merge
from outreach.content.htmltext import html_to_text
from outreach.content.models import MessageTemplate, TemplateVersion
from outreach.exceptions import Conflict, NotFound, ValidationError

EMAIL_PARTS = ("subject", "html", "text", "from_name", "reply_to")


def get_template(db: Session, template_id: int) -> MessageTemplate:
    """A template by id, or NotFound."""
    row = db.get(MessageTemplate, template_id)
    if row is None:
        raise NotFound(f"No template {template_id}")
    return row


def current_version(db: Session, template: MessageTemplate) -> TemplateVersion:
    """The newest version of a template."""
    version = db.scalar(sa.select(TemplateVersion).where(
        TemplateVersion.template_id == template.id, TemplateVersion.version == template.version))
    assert version is not None
    return version


def _clean(channel: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check a template's parts; 422 names the part and the line of any problem."""
    errors: dict[str, str] = {}
    for key in ("subject", "html", "text", "body", "from_name", "reply_to"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            errors[key] = "must be a string"
    if errors:
        raise ValidationError("Invalid template", errors)
    clean: dict[str, Any] = {}
    if channel == "email":
        clean["subject"] = (data.get("subject") or "").strip()
        clean["html"] = data.get("html") or ""
        clean["text"] = data.get("text") or ""
        clean["from_name"] = (data.get("from_name") or "").strip()[:200]
        clean["reply_to"] = (data.get("reply_to") or "").strip() or None
        if not clean["subject"]:
            errors["subject"] = "required"
        if not clean["html"].strip() and not clean["text"].strip():
            errors["html"] = "an HTML or a text body is required"
    else:
        clean["body"] = (data.get("body") or "").replace("\r\n", "\n").strip()
        clean["append_stop"] = bool(data.get("append_stop", True))
        if not clean["body"]:
            errors["body"] = "required"
        elif len(clean["body"]) > 1600:
            errors["body"] = "at most 1600 characters"
    if errors:
        raise ValidationError("Invalid template", errors)
    for part in ("subject", "html", "text", "body"):
        if clean.get(part):
            merge.check(clean[part], part)
    if channel == "email":
        if clean["html"].strip():
            try:
                clean["html"] = css_inline.inline(clean["html"])
            except ValueError as exc:
                raise ValidationError("Invalid HTML", {"html": str(exc)}) from None
        if not clean["text"].strip():
            clean["text"] = html_to_text(clean["html"])
    return clean


def save_template(db: Session, data: dict[str, Any], template_id: int | None = None,
                  actor_id: int | None = None) -> MessageTemplate:
    """Create a template or save a new version of one."""
    if template_id is None:
        channel = data.get("channel")
        if channel not in ("email", "sms"):
            raise ValidationError("Invalid template", {"channel": "email or sms"})
        template = MessageTemplate(channel=channel, version=0)
    else:
        template = get_template(db, template_id)
    name = data.get("name", template.name if template_id else None)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationError("Invalid template", {"name": "required, at most 200 characters"})
    clash = db.scalar(sa.select(MessageTemplate.id).where(MessageTemplate.name == name.strip()))
    if clash is not None and clash != template_id:
        raise Conflict(f"A template named {name.strip()!r} already exists")
    if template_id is not None:
        previous = current_version(db, template)
        merged = {k: getattr(previous, k) for k in (*EMAIL_PARTS, "body", "append_stop")}
        data = {**merged, **{k: v for k, v in data.items() if k in merged}}
    clean = _clean(template.channel, data)
    template.name = name.strip()
    template.version += 1
    db.add(template)
    db.flush()
    db.add(TemplateVersion(template_id=template.id, version=template.version,
                           created_by_id=actor_id, **clean))
    db.flush()
    return template


def template_json(db: Session, template: MessageTemplate) -> dict[str, Any]:
    """A template as the API shows it (its newest version)."""
    version = current_version(db, template)
    return {"id": template.id, "name": template.name, "channel": template.channel,
            "subject": version.subject, "html": version.html, "text": version.text,
            "body": version.body, "from_name": version.from_name, "reply_to": version.reply_to,
            "append_stop": version.append_stop, "version": template.version,
            "version_id": version.id, "updated_at": template.updated_at.isoformat()}


def merge_context(contact: Any) -> dict[str, Any]:
    """The merge fields of a contact (an ORM row or a result row)."""
    return {"first_name": contact.first_name or "", "last_name": contact.last_name or "",
            "email": contact.email or "", "phone": contact.phone or "",
            "postal_code": contact.postal_code or "", "timezone": contact.timezone or "",
            "fields": dict(contact.fields or {})}
