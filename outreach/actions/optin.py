"""Double opt-in: the emailed, signed confirmation link grants email consent when used.

A GET of the link only shows a button (mail scanners fetch every link); the POST grants
consent with the evidence of the original form (text, page, IP, time) plus the confirmation's.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired
from sqlalchemy.orm import Session

from outreach.actions.jobs import optin_serializer
from outreach.actions.models import ActionPage, Submission
from outreach.actions.submit import may_grant
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentStatus, Contact
from outreach.db import utcnow

MAX_AGE = 30 * 24 * 3600


def pending(db: Session, page: ActionPage, token: str) -> tuple[Submission, Contact] | None:
    """The submission and contact a confirmation link names, or None if it is not valid."""
    try:
        data = optin_serializer().loads(token, max_age=MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    submission_id = data.get("s") if isinstance(data, dict) else None
    submission = db.get(Submission, submission_id) if isinstance(submission_id, int) else None
    if submission is None or submission.page_id != page.id or submission.contact_id is None:
        return None
    contact = db.get(Contact, submission.contact_id)
    return (submission, contact) if contact is not None and contact.email else None


def state(db: Session, contact: Contact) -> str:
    """"confirm" (waiting), "confirmed" (already granted) or "blocked" (revoked/suppressed)."""
    if not may_grant(db, contact, Channel.EMAIL):
        return "blocked"
    return "confirmed" if contact.email_consent == ConsentStatus.GRANTED.value else "confirm"


def confirm(db: Session, page: ActionPage, submission: Submission, contact: Contact,
            ip: str | None) -> str:
    """Grant email consent from a confirmation; return the resulting state."""
    current = state(db, contact)
    if current != "confirm":
        return current
    now = utcnow()
    evidence: dict[str, Any] = {
        "text": submission.data.get("email_consent_text", page.email_consent_text),
        "page": page.slug, "ip": submission.ip, "time": submission.created_at.isoformat(),
        "double_opt_in": True, "confirmed_ip": ip, "confirmed_at": now.isoformat()}
    consent.record_consent(db, contact, Channel.EMAIL, ConsentStatus.GRANTED, "form", evidence)
    submission.confirmed_at = now
    db.flush()
    return "confirmed"
