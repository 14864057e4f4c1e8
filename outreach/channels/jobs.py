"""Background jobs of the channels: test messages that check a provider set-up end to end."""

from __future__ import annotations

import html

from flask import current_app

from outreach.channels import email_channel, sms_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, Sms


class SendFailed(RuntimeError):
    """The provider refused a test message; RQ records the job as failed with this reason."""


def send_test_email(to: str, subject: str, text: str) -> str:
    """Send one plain test email through the configured email channel; return its provider id."""
    batch = EmailBatch(
        from_email=current_app.config["EMAIL_FROM"], subject=subject,
        html=f"<p>{html.escape(text)}</p>", text=text, recipients=[EmailRecipient(email=to)],
        headers={"X-Outreach-Test": "1"},
    )
    result = email_channel().send_batch(batch)[0]
    if result.outcome is not Outcome.ACCEPTED:
        raise SendFailed(f"{result.outcome}: {result.error}")
    return result.provider_id or ""


def send_test_sms(to: str, body: str) -> str:
    """Send one test text through the configured SMS channel; return its provider id."""
    config = current_app.config
    result = sms_channel().send(Sms(to=to, body=body, from_number=config.get("TWILIO_FROM"),
                                    messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID")))
    if result.outcome is not Outcome.ACCEPTED:
        raise SendFailed(f"{result.outcome}: {result.error}")
    return result.provider_id or ""
