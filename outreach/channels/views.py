"""The staff Outbox page: what the outbox adapters stored instead of sending."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.channels.service import queue_test_message
from outreach.exceptions import ValidationError

bp = Blueprint("outbox", __name__, url_prefix="/outbox")
PAGE_SIZE = 50


@bp.get("/")
@requires(Role.VIEWER)
def index() -> Any:
    """Recent stored emails and texts, newest first, searchable by recipient."""
    q = request.args.get("q", "").strip()
    emails = sa.select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(PAGE_SIZE)
    texts = sa.select(OutboxSms).order_by(OutboxSms.id.desc()).limit(PAGE_SIZE)
    if q:
        emails = emails.where(OutboxEmail.to_email.contains(q))
        texts = texts.where(OutboxSms.to_number.contains(q))
    session = db.session()
    counts = {
        "email": session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)),
        "sms": session.scalar(sa.select(sa.func.count()).select_from(OutboxSms)),
    }
    return render_template("outbox/index.html", emails=session.scalars(emails).all(),
                           texts=session.scalars(texts).all(), counts=counts, q=q)


@bp.get("/emails/<int:email_id>")
@requires(Role.VIEWER)
def email(email_id: int) -> Any:
    """One stored email: headers, text part and the HTML in a sandboxed frame."""
    message = db.session().get(OutboxEmail, email_id)
    if message is None:
        abort(404)
    return render_template("outbox/email.html", message=message)


@bp.get("/emails/<int:email_id>/html")
@requires(Role.VIEWER)
def email_html(email_id: int) -> Any:
    """The stored HTML body alone, served with a CSP that forbids scripts, for the frame."""
    message = db.session().get(OutboxEmail, email_id)
    if message is None:
        abort(404)
    return message.html, 200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
                                   "style-src 'unsafe-inline'; frame-ancestors 'self'",
    }


@bp.post("/test")
@requires(Role.ORGANIZER)
def send_test() -> Any:
    """Queue a test email or text through the configured channel."""
    form = request.form
    try:
        queue_test_message(form.get("channel", ""), form.get("to", ""), form.get("subject", ""),
                           form.get("body", ""))
    except ValidationError as exc:
        flash(f"{exc.message}: " + "; ".join(f"{k} {v}" for k, v in exc.fields.items()), "error")
    else:
        flash("Test message queued; it appears here once a worker has sent it.", "success")
    return redirect(url_for("outbox.index"))
