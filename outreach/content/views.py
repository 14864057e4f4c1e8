"""Staff pages for message templates: list, edit (a new version per save), preview, test."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import current_user, requires
from outreach.contacts.models import Contact
from outreach.content import jobs
from outreach.content.htmltext import html_to_text
from outreach.content.models import MessageTemplate, TemplateVersion
from outreach.content.segments import count_segments
from outreach.content.service import current_version, get_template, save_template
from outreach.exceptions import Conflict, NotFound, ValidationError

bp = Blueprint("content", __name__)
EMAIL_FIELDS = ("name", "subject", "html", "text", "from_name", "reply_to")
SMS_FIELDS = ("name", "body")
SANDBOX_CSP = ("sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'self'")
SEARCH_LIMIT = 10


class _HttpError:
    """What error.html needs to show a domain error as a page."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", error=_HttpError(404, "Not Found", str(exc))), 404


def _actor_id() -> int | None:
    user = current_user()
    return user.id if user is not None else None


def _optional_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def get_version(session: Any, template_id: int, number: int) -> TemplateVersion:
    """One version of a template by its number, or NotFound."""
    version = session.scalar(sa.select(TemplateVersion).where(
        TemplateVersion.template_id == template_id, TemplateVersion.version == number))
    if version is None:
        raise NotFound(f"Template {template_id} has no version {number}")
    return version


def _form_data(channel: str, form: MultiDict[str, str]) -> dict[str, Any]:
    """The editor's fields as `save_template` takes them."""
    if channel == "email":
        return {key: form.get(key, "") for key in EMAIL_FIELDS}
    return {"name": form.get("name", ""), "body": form.get("body", ""),
            "append_stop": form.get("append_stop") == "1"}


def _values(version: TemplateVersion | None, name: str = "") -> dict[str, Any]:
    """A version's content as the editor shows it; generated text shows as empty, to regenerate."""
    if version is None:
        return {"name": name, "append_stop": True}
    text = version.text
    if text and text == html_to_text(version.html):
        text = ""  # it was generated from the HTML: leave it to be generated again
    return {"name": name, "subject": version.subject, "html": version.html, "text": text,
            "from_name": version.from_name, "reply_to": version.reply_to or "",
            "body": version.body, "append_stop": version.append_stop}


def _editor(status: int = 200, **context: Any) -> Any:
    summary = count_segments(context["values"].get("body") or "").summary
    return render_template("content/edit.html", sms_summary=summary, **context), status


def _errors(exc: ValidationError | Conflict) -> dict[str, str]:
    if isinstance(exc, Conflict):
        return {"name": str(exc)}
    return exc.fields or {"name": exc.message}


@bp.get("/templates")
@requires(Role.VIEWER)
def templates() -> Any:
    """Every template, most recently changed first."""
    rows = db.session().scalars(sa.select(MessageTemplate).order_by(
        MessageTemplate.updated_at.desc(), MessageTemplate.id.desc())).all()
    return render_template("content/templates.html", templates=rows)


@bp.get("/templates/new")
@requires(Role.ORGANIZER)
def new_template() -> Any:
    """The editor for a new email or SMS template."""
    channel = "sms" if request.args.get("channel") == "sms" else "email"
    return _editor(template=None, channel=channel, values=_values(None), errors={})


@bp.post("/templates/new")
@requires(Role.ORGANIZER)
def create_template() -> Any:
    """Save a new template (version 1); on error show each part's problem and line."""
    channel = "sms" if request.form.get("channel") == "sms" else "email"
    data = _form_data(channel, request.form)
    try:
        with db.transaction() as session:
            template = save_template(session, {**data, "channel": channel},
                                     actor_id=_actor_id())
    except (ValidationError, Conflict) as exc:
        return _editor(422, template=None, channel=channel, values=data, errors=_errors(exc))
    flash(f"Template “{template.name}” saved as version 1.", "success")
    return redirect(url_for("content.template", template_id=template.id))


@bp.get("/templates/<int:template_id>")
@requires(Role.VIEWER)
def template(template_id: int) -> Any:
    """A template's editor, filled with its newest version."""
    session = db.session()
    row = get_template(session, template_id)
    return _editor(template=row, channel=row.channel,
                   values=_values(current_version(session, row), row.name), errors={})


@bp.post("/templates/<int:template_id>")
@requires(Role.ORGANIZER)
def update_template(template_id: int) -> Any:
    """Save the editor as the template's next version."""
    row = get_template(db.session(), template_id)
    data = _form_data(row.channel, request.form)
    try:
        with db.transaction() as session:
            saved = save_template(session, data, template_id, actor_id=_actor_id())
    except (ValidationError, Conflict) as exc:
        row = get_template(db.session(), template_id)
        return _editor(422, template=row, channel=row.channel, values=data, errors=_errors(exc))
    flash(f"Saved as version {saved.version}.", "success")
    return redirect(url_for("content.template", template_id=template_id))


@bp.get("/templates/<int:template_id>/versions")
@requires(Role.VIEWER)
def versions(template_id: int) -> Any:
    """Every saved version of a template, newest first."""
    session = db.session()
    row = get_template(session, template_id)
    rows = session.scalars(sa.select(TemplateVersion).where(
        TemplateVersion.template_id == template_id).order_by(TemplateVersion.version.desc())).all()
    return render_template("content/versions.html", template=row, versions=rows)


@bp.get("/templates/<int:template_id>/versions/<int:number>")
@requires(Role.VIEWER)
def version(template_id: int, number: int) -> Any:
    """One version exactly as it was saved."""
    session = db.session()
    row = get_template(session, template_id)
    return render_template("content/version.html", template=row,
                           version=get_version(session, template_id, number))


@bp.get("/templates/<int:template_id>/versions/<int:number>/html")
@requires(Role.VIEWER)
def version_html(template_id: int, number: int) -> Any:
    """A version's stored HTML alone, for a sandboxed frame."""
    found = get_version(db.session(), template_id, number)
    return found.html, 200, {"Content-Type": "text/html; charset=utf-8",
                             "Content-Security-Policy": SANDBOX_CSP}


@bp.get("/templates/<int:template_id>/preview")
@requires(Role.VIEWER)
def preview(template_id: int) -> Any:
    """The newest version rendered for a contact found by email (or the sample contact)."""
    session = db.session()
    row = get_template(session, template_id)
    query = request.args.get("email", "").strip()
    contact_id = _optional_int(request.args.get("contact_id"))
    matches: list[Contact] = []
    if query:
        found = sa.func.lower(Contact.email).contains(query.lower(), autoescape=True)
        matches = list(session.scalars(
            sa.select(Contact).where(found).order_by(Contact.email).limit(SEARCH_LIMIT)))
        if contact_id is None and len(matches) == 1:
            contact_id = matches[0].id
    contact = jobs.preview_contact(contact_id)
    rendered = jobs.render(current_version(session, row), row.channel, contact)
    return render_template("content/preview.html", template=row, contact=contact,
                           contact_id=contact_id, rendered=rendered, query=query,
                           matches=matches)


@bp.get("/templates/<int:template_id>/preview/html")
@requires(Role.VIEWER)
def preview_html(template_id: int) -> Any:
    """The rendered HTML of a preview alone, served with a sandboxing CSP for the frame."""
    session = db.session()
    row = get_template(session, template_id)
    contact = jobs.preview_contact(_optional_int(request.args.get("contact_id")))
    rendered = jobs.render_email(current_version(session, row), contact)
    return rendered["html"], 200, {"Content-Type": "text/html; charset=utf-8",
                                   "Content-Security-Policy": SANDBOX_CSP}


@bp.post("/templates/<int:template_id>/test")
@requires(Role.ORGANIZER)
def send_test(template_id: int) -> Any:
    """Queue this template, rendered for the chosen contact, to a test address or number."""
    contact_id = _optional_int(request.form.get("contact_id"))
    try:
        jobs.queue_template_test(template_id, contact_id, request.form.get("to", ""))
    except ValidationError as exc:
        flash(f"{exc.message}: " + "; ".join(f"{v}" for v in exc.fields.values()), "error")
    else:
        flash("Test queued; it is sent (with “[TEST]” before the subject) as soon as a worker "
              "picks it up.", "success")
    return redirect(url_for("content.preview", template_id=template_id,
                            **({"contact_id": contact_id} if contact_id else {})))
