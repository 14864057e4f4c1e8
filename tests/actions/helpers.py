"""Helpers for action page tests: pages made through the service, the public form posted."""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from outreach import db
from outreach.actions import service
from outreach.actions.models import ActionPage
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.contacts.models import ConsentEvent, Contact

HIDDEN = re.compile(r'<input type="hidden" name="([\w-]+)" value="([^"]*)">')
EMAIL_CONSENT = "Yes, email me about this campaign — on peut se désabonner à tout moment."
SMS_CONSENT = "Yes, text me (4 msgs/month). Reply STOP to opt out."


def make_page(app: Flask, **data: Any) -> int:
    """Create a published page through the service; return its id."""
    values: dict[str, Any] = {
        "slug": "join-us", "kind": "signup", "title": "Join us", "intro": "Stand with us.",
        "email_consent_text": EMAIL_CONSENT, "sms_consent_text": SMS_CONSENT,
        "thank_you_text": "Thanks for joining!", "share_step": True, "published": True,
        "fields": {"first_name": {"mode": "required"}, "email": {"mode": "optional"},
                   "phone": {"mode": "optional"}, "postal_code": {"mode": "optional"}},
    }
    values.update(data)
    with app.app_context(), db.transaction() as session:
        return service.save_page(session, values).id


def letter_page(app: Flask, **data: Any) -> int:
    """A published letter page with two targets."""
    values: dict[str, Any] = {
        "slug": "write-the-vp", "kind": "letter", "title": "Write the Vice President",
        "letter_subject": "Protect our rivers", "letter_body": "Dear Vice President,\nPlease act.",
        "targets": [{"name": "Vice President", "email": "vp@gov.example.org"},
                    {"name": "Chief of Staff", "email": "cos@gov.example.org"}]}
    values.update(data)
    return make_page(app, **values)


def hidden_fields(client: FlaskClient, path: str) -> dict[str, str]:
    """The hidden inputs of a page's form (token, attribution), read from its HTML."""
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return {k: html.unescape(v) for k, v in HIDDEN.findall(response.get_data(as_text=True))}


def post(client: FlaskClient, slug: str, query: str = "", follow: bool = True,
         **fields: Any) -> Any:
    """Fill the public form of /a/<slug>?<query> and submit it."""
    data: dict[str, Any] = hidden_fields(client, f"/a/{slug}" + (f"?{query}" if query else ""))
    data.update(fields)
    return client.post(f"/a/{slug}", data=data, follow_redirects=follow)


def page_row(app: Flask, page_id: int) -> ActionPage:
    """A page as stored now (detached)."""
    with app.app_context():
        session = db.session()
        row = session.get(ActionPage, page_id)
        assert row is not None
        session.expunge(row)
        return row


def contact(app: Flask, email: str) -> Contact | None:
    """A contact by email (detached)."""
    with app.app_context():
        session = db.session()
        row = session.scalar(sa.select(Contact).where(Contact.email == email))
        if row is not None:
            session.expunge(row)
        return row


def consent_events(app: Flask, contact_id: int) -> list[ConsentEvent]:
    """A contact's consent ledger, oldest first (detached)."""
    with app.app_context():
        session = db.session()
        rows = list(session.scalars(sa.select(ConsentEvent).where(
            ConsentEvent.contact_id == contact_id).order_by(ConsentEvent.id)))
        for row in rows:
            session.expunge(row)
        return rows


def emails_to(app: Flask, address: str) -> list[OutboxEmail]:
    """Outbox emails to an address (detached)."""
    with app.app_context():
        session = db.session()
        rows = list(session.scalars(sa.select(OutboxEmail).where(
            OutboxEmail.to_email.contains(address)).order_by(OutboxEmail.id)))
        for row in rows:
            session.expunge(row)
        return rows


def texts_to(app: Flask, number: str) -> list[OutboxSms]:
    """Outbox texts to a number (detached)."""
    with app.app_context():
        session = db.session()
        rows = list(session.scalars(sa.select(OutboxSms).where(OutboxSms.to_number == number)
                                    .order_by(OutboxSms.id)))
        for row in rows:
            session.expunge(row)
        return rows
