"""Background work on the `events` queue: provider webhooks and the tracking-hit buffer."""

from __future__ import annotations

import json
import logging
from typing import Any

from outreach import db
from outreach.tracking import sendgrid_events, twilio_events
from outreach.tracking.buffer import flush_hits
from outreach.tracking.service import write_lock

__all__ = ["flush_hits", "ingest_sendgrid", "ingest_twilio_status"]
log = logging.getLogger(__name__)


def ingest_sendgrid(body: str) -> dict[str, int]:
    """Ingest one verified SendGrid Event Webhook batch (its raw JSON text)."""
    events: Any = json.loads(body)
    session = db.session()
    with write_lock():
        try:
            stats = sendgrid_events.ingest(session, events if isinstance(events, list) else [])
            session.commit()
        except BaseException:
            session.rollback()
            raise
    log.info("SendGrid batch: %s", stats)
    return stats


def ingest_twilio_status(form: dict[str, str]) -> bool:
    """Apply one verified Twilio status callback; False when its message is unknown."""
    session = db.session()
    with write_lock():
        try:
            known = twilio_events.ingest_status(session, form)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return known
