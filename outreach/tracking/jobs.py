"""Background work on the `events` queue: provider webhooks and the tracking-hit buffer."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from outreach import db
from outreach.gc_pauses import no_gc_pauses
from outreach.tracking import sendgrid_events, twilio_events
from outreach.tracking.buffer import flush_hits
from outreach.tracking.service import write_batch

__all__ = ["flush_hits", "ingest_sendgrid", "ingest_twilio_status"]
log = logging.getLogger(__name__)


# JSON escapes of what PostgreSQL text cannot hold: NUL and (lone) surrogates.
UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _storable(value: Any) -> Any:
    """The parsed batch with NUL removed and lone surrogates replaced, at any depth."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def ingest_sendgrid(body: str) -> dict[str, int]:
    """Ingest one verified SendGrid Event Webhook batch (its raw JSON text)."""
    with no_gc_pauses():
        events: Any = json.loads(body)
        if UNSTORABLE.search(body):  # rare: only then pay for a walk over the whole batch
            events = _storable(events)
        session = db.session()
        stats = write_batch(session, lambda: sendgrid_events.ingest(
            session, events if isinstance(events, list) else []))
    log.info("SendGrid batch: %s", stats)
    return stats


def ingest_twilio_status(form: dict[str, str]) -> bool:
    """Apply one verified Twilio status callback; False when its message is unknown."""
    session = db.session()
    return write_batch(session, lambda: twilio_events.ingest_status(session, form))
