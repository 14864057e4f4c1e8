"""Rendering a template version for one contact (previews, tests) and the "send a test" job.

A preview is rendered exactly as a blast would send it (the same compile step, then the
contact's substitutions), except that links are not tracked and the message token is the dummy
"preview", so the unsubscribe link of a preview or a test unsubscribes nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app

from outreach import db as database
from outreach.channels import email_channel, sms_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, Sms, personalize
from outreach.contacts.models import Contact
from outreach.content import merge
from outreach.content.compile import compile_email, compile_sms
from outreach.content.models import TemplateVersion
from outreach.content.segments import count_segments
from outreach.content.service import current_version, get_template, merge_context
from outreach.exceptions import NotFound, ValidationError
from outreach.queue import enqueue

PREVIEW_TOKEN = "preview"
TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class SampleContact:
    """A made-up contact to preview with when the organizer has not chosen a real one."""

    id: None = None
    first_name: str = "Alex"
    last_name: str = "Sample"
    email: str = "alex.sample@example.org"
    phone: str = "+12025550143"
    postal_code: str = "20001"
    timezone: str = "America/New_York"
    fields: dict[str, Any] = field(default_factory=dict)


def preview_contact(contact_id: int | None) -> Contact | SampleContact:
    """The contact a preview is rendered for: a real one by id, or the sample contact."""
    if contact_id is None:
        return SampleContact()
    contact = database.session().get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"No contact {contact_id}")
    return contact


def render_email(version: TemplateVersion, contact: Any) -> dict[str, str]:
    """An email version rendered for one contact: {subject, html, text}."""
    base = current_app.config["PUBLIC_BASE_URL"]
    compiled = compile_email(version, base, track=False)
    unsubscribe = f"{base.rstrip('/')}/u/{PREVIEW_TOKEN}"
    subs = merge.substitutions(compiled.merges, merge_context(contact), PREVIEW_TOKEN,
                               unsubscribe)
    return {"subject": personalize(compiled.subject, subs),
            "html": personalize(compiled.html, subs), "text": personalize(compiled.text, subs)}


def render_sms(version: TemplateVersion, contact: Any) -> dict[str, Any]:
    """An SMS version rendered for one contact: {body, segments, encoding, summary}."""
    compiled = compile_sms(version)
    subs = merge.substitutions(compiled.merges, merge_context(contact), "", "")
    body = personalize(compiled.body, subs)
    counted = count_segments(body)
    return {"body": body, "segments": counted.segments, "encoding": counted.encoding,
            "characters": counted.characters, "summary": counted.summary}


def render(version: TemplateVersion, channel: str, contact: Any) -> dict[str, Any]:
    """A version rendered for one contact in its channel's shape."""
    return render_email(version, contact) if channel == "email" else render_sms(version, contact)


def queue_template_test(template_id: int, contact_id: int | None, to: str) -> str:
    """Check the address and queue a test of the template's current version; return the job id."""
    session = database.session()
    template = get_template(session, template_id)
    preview_contact(contact_id)  # NotFound now rather than a failed job later
    to = (to or "").strip()
    if template.channel == "email":
        try:
            to = validate_email(to, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValidationError("Invalid email address", {"to": str(exc)}) from None
    else:
        try:
            number = phonenumbers.parse(to, current_app.config["DEFAULT_REGION"])
            if not phonenumbers.is_valid_number(number):
                raise ValueError
        except (phonenumbers.NumberParseException, ValueError):
            raise ValidationError("Invalid phone number",
                                  {"to": "not a valid phone number"}) from None
        to = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    job = enqueue(template.channel, send_template_test, template_id, contact_id, to)
    return job.id


class SendFailed(RuntimeError):
    """The provider refused a test message; RQ records the job as failed with this reason."""


def send_template_test(template_id: int, contact_id: int | None, to: str) -> str:
    """Send the template's current version, rendered for a contact, to one test address."""
    session = database.session()
    template = get_template(session, template_id)
    version = current_version(session, template)
    contact = preview_contact(contact_id)
    config = current_app.config
    if template.channel == "email":
        rendered = render_email(version, contact)
        default_name, default_email = parseaddr(config["EMAIL_FROM"])
        batch = EmailBatch(
            from_email=default_email or "outreach@example.org",
            from_name=version.from_name or default_name,
            subject=TEST_PREFIX + rendered["subject"], html=rendered["html"],
            text=rendered["text"], recipients=[EmailRecipient(email=to)],
            reply_to=version.reply_to, headers={"X-Outreach-Test": "1"},
            categories=["test"], custom_args={"outreach_template_id": str(template_id)})
        result = email_channel().send_batch(batch)[0]
    else:
        body = render_sms(version, contact)["body"]
        result = sms_channel().send(Sms(
            to=to, body=body, from_number=config.get("TWILIO_FROM"),
            messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID")))
    if result.outcome is not Outcome.ACCEPTED:
        raise SendFailed(f"{result.outcome}: {result.error}")
    return result.provider_id or ""
