"""Checking a test message request and queueing it."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app

from outreach.channels import jobs
from outreach.exceptions import ValidationError
from outreach.queue import enqueue


def queue_test_message(channel: str, to: str, subject: str, body: str) -> str:
    """Validate a test message and queue it on its channel's queue; return the job id."""
    to, body = to.strip(), body.strip()
    if channel not in ("email", "sms"):
        raise ValidationError("Unknown channel", {"channel": "must be email or sms"})
    if not body:
        raise ValidationError("The message is empty", {"body": "required"})
    if channel == "email":
        try:
            to = validate_email(to, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValidationError("Invalid email address", {"to": str(exc)}) from None
        job = enqueue("email", jobs.send_test_email, to, subject.strip() or "outreach test", body)
    else:
        try:
            number = phonenumbers.parse(to, current_app.config["DEFAULT_REGION"])
            if not phonenumbers.is_valid_number(number):
                raise ValueError
        except (phonenumbers.NumberParseException, ValueError):
            raise ValidationError(
                "Invalid phone number", {"to": "not a valid phone number"}
            ) from None
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        job = enqueue("sms", jobs.send_test_sms, e164, body)
    return job.id
