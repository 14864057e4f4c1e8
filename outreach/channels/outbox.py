"""The outbox adapters: store what would have been sent, for one-machine use and tests."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from outreach.channels.base import EmailBatch, Outcome, SendResult, Sms, personalize
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.content.segments import count_segments


def _provider_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class OutboxEmailChannel:
    """Email channel that writes each personalized message to the outbox table."""

    name = "outbox"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def send_batch(self, batch: EmailBatch) -> list[SendResult]:
        """Render every recipient's message and store the batch in one INSERT."""
        sender = f"{batch.from_name} <{batch.from_email}>" if batch.from_name else batch.from_email
        rows, results = [], []
        for recipient in batch.recipients:
            provider_id = _provider_id("outbox-")
            subs = recipient.substitutions
            to = f"{recipient.name} <{recipient.email}>" if recipient.name else recipient.email
            rows.append({
                "provider_id": provider_id,
                "from_email": sender,
                "to_email": to,
                "reply_to": batch.reply_to,
                "subject": personalize(batch.subject, subs),
                "html": personalize(batch.html, subs),
                "text": personalize(batch.text, subs),
                "headers": {**batch.headers, **recipient.headers},
            })
            results.append(SendResult(Outcome.ACCEPTED, provider_id=provider_id))
        if rows:
            # Its own transaction: like a provider's acceptance, a stored message stays stored.
            with self.engine.begin() as conn:
                conn.execute(sa.insert(OutboxEmail), rows)
        return results


class OutboxSmsChannel:
    """SMS channel that writes each text to the outbox table."""

    name = "outbox"

    def __init__(self, engine: Engine, default_from: str = "") -> None:
        self.engine = engine
        self.default_from = default_from

    def send(self, sms: Sms) -> SendResult:
        """Store one text message."""
        provider_id = _provider_id("SMoutbox")
        segments = count_segments(sms.body).segments
        sender = sms.from_number or sms.messaging_service_sid or self.default_from or "outbox"
        with self.engine.begin() as conn:
            conn.execute(sa.insert(OutboxSms), [{
                "provider_id": provider_id, "from_number": sender, "to_number": sms.to,
                "body": sms.body, "segments": segments,
            }])
        return SendResult(Outcome.ACCEPTED, provider_id=provider_id, segments=segments)
