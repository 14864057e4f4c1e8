"""SendGrid's Event Webhook: verifying a signed batch, then ingesting it as events and effects.

Effects of each new event (a replayed sg_event_id changes nothing):
- delivered: the message moves to delivered (forward only) and gets delivered_at;
- bounce with type "bounce": bounced, and the address is suppressed as hard_bounce;
  type "blocked" (the receiver refused *us*: reputation, content, rate) is bounced with no
  suppression, since the address itself is fine;
- dropped: failed; the address is suppressed when SendGrid says why it keeps dropping it
  (invalid or bounced address -> invalid, spam reporting -> spam_report, unsubscribed ->
  unsubscribed);
- deferred, processed, group_resubscribe: recorded only (never lifts a suppression);
- spamreport: consent revoked (source provider) and suppressed as spam_report;
- unsubscribe, group_unsubscribe: consent revoked and suppressed as unsubscribed;
- open, click: engagement events, machine when `sg_machine_open` or the rules of
  outreach.tracking.machine say so; human ones move contacts' last_opened_at/last_clicked_at.
Events of unknown types, and events naming no message of ours, are ignored (and counted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.blasts.models import Link, Message
from outreach.contacts.models import Channel
from outreach.tracking import machine
from outreach.tracking.service import (
    Record,
    advance_status,
    chunks,
    opt_out,
    record_events,
    suppress_addresses,
)

log = logging.getLogger(__name__)
KINDS = frozenset("processed delivered deferred bounce dropped open click spamreport unsubscribe "
                  "group_unsubscribe group_resubscribe".split())
DETAIL_KEYS = ("email", "reason", "type", "status", "response", "attempt", "url", "useragent",
               "ip", "sg_machine_open", "bounce_classification", "asm_group_id", "sg_message_id")
CLICK_URL = re.compile(r"/c/[A-Za-z0-9_-]+/(\d+)(?:[/?#]|$)")
MAX_BODY_BYTES = 5 * 1024 * 1024
_warned: set[str] = set()


def verify(body: bytes, signature: str | None, timestamp: str | None) -> bool:
    """True when the ECDSA signature over timestamp + raw body checks with our public key."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    key = current_app.config.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
    if not key:
        if "key" not in _warned:
            _warned.add("key")
            log.warning("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: every SendGrid event webhook "
                        "is refused (403). Copy the verification key from SendGrid's Mail "
                        "Settings > Signed Event Webhook.")
        return False
    if not signature or not timestamp:
        return False
    try:
        hook = EventWebhook()
        return bool(hook.verify_signature(body.decode("utf-8"), signature, timestamp,
                                          hook.convert_public_key_to_ecdsa(key)))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:  # bad base64, key or bytes
        log.info("SendGrid signature check failed: %s", type(exc).__name__)
        return False


def _message_id(event: dict[str, Any]) -> int | None:
    value = event.get("outreach_message_id")
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


def _find_messages(session: Session, events: list[dict[str, Any]]) -> dict[int, Any]:
    """Each event's message (by index): custom arg first, else X-Message-Id + email."""
    columns = (Message.id, Message.blast_id, Message.contact_id, Message.address,
               Message.provider_id, Message.sent_at)
    by_id: dict[int, Any] = {}
    ids = sorted({i for e in events if (i := _message_id(e)) is not None})
    for part in chunks(ids):
        by_id.update({r.id: r for r in session.execute(sa.select(*columns)
                                                       .where(Message.id.in_(part)))})
    fallback = [e for e in events if _message_id(e) is None and e.get("sg_message_id")]
    by_provider: dict[tuple[str, str], Any] = {}
    prefixes = sorted({str(e["sg_message_id"]).split(".")[0] for e in fallback})
    emails = sorted({str(e.get("email") or "").lower() for e in fallback})
    for part in chunks(prefixes):
        rows = session.execute(sa.select(*columns).where(
            Message.provider_id.in_(part), sa.func.lower(Message.address).in_(emails)))
        by_provider.update({(r.provider_id, r.address.lower()): r for r in rows})
    found: dict[int, Any] = {}
    for index, event in enumerate(events):
        email = str(event.get("email") or "").lower()
        mid = _message_id(event)
        row = by_id.get(mid) if mid is not None else by_provider.get(
            (str(event.get("sg_message_id") or "").split(".")[0], email))
        if row is not None and row.address.lower() == email:
            found[index] = row
    return found


def _link_position(session: Session, blast_id: int, url: str | None) -> int | None:
    if not url:
        return None
    match = CLICK_URL.search(url)
    if match:
        return int(match.group(1))
    return session.scalar(sa.select(Link.position).where(Link.blast_id == blast_id,
                                                         Link.url == url))


def _record(session: Session, event: dict[str, Any], message: Any) -> Record:
    kind = event["event"]
    try:
        occurred = datetime.fromtimestamp(int(event.get("timestamp")), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        occurred = datetime.now(UTC)
    event_id = event.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        event_id = "sg:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str)
                                          .encode()).hexdigest()[:40]
    since = (occurred - message.sent_at).total_seconds() if message.sent_at else None
    config = current_app.config
    reason = None
    link = None
    if kind == "open":
        reason = "sg_machine_open" if event.get("sg_machine_open") else machine.classify_open(
            event.get("ip"), event.get("useragent"), since,
            config.get("MACHINE_OPEN_SECONDS", 2))
    elif kind == "click":
        reason = machine.classify_click("GET", event.get("useragent"), since,
                                        config.get("MACHINE_CLICK_SECONDS", 2))
        link = _link_position(session, message.blast_id, event.get("url"))
    detail = {k: event[k] for k in DETAIL_KEYS if k in event}
    if reason:
        detail["machine_reason"] = reason
    return {"message_id": message.id, "blast_id": message.blast_id,
            "contact_id": message.contact_id, "kind": kind, "machine": reason is not None,
            "link_position": link, "provider_event_id": event_id[:120], "detail": detail,
            "occurred_at": occurred, "address": message.address}


def _dropped_reason(reason: str) -> str | None:
    text = reason.lower()
    if "invalid" in text or "bounced address" in text:
        return "invalid"
    if "spam" in text:
        return "spam_report"
    if "unsubscribed" in text:
        return "unsubscribed"
    return None


def ingest(session: Session, events: list[Any]) -> dict[str, int]:
    """Record a batch of SendGrid events and apply their effects (call under write_lock)."""
    known = [e for e in events if isinstance(e, dict) and e.get("event") in KINDS]
    ignored = len(events) - len(known)
    if ignored:
        log.debug("ignoring %d SendGrid events of unknown types", ignored)
    messages = _find_messages(session, known)
    ignored += len(known) - len(messages)
    records = [_record(session, known[i], row) for i, row in messages.items()]
    new = record_events(session, records)
    moves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    suppressions: list[tuple[str, str, str]] = []
    for r in new:
        kind, detail, mid = r["kind"], r["detail"], r["message_id"]
        error = f"{kind}: {detail.get('reason') or detail.get('response') or ''}".strip(": ")
        if kind == "delivered":
            moves["delivered"].append({"mid": mid, "at": r["occurred_at"]})
        elif kind == "bounce":
            moves["bounced"].append({"mid": mid, "error": error,
                                     "error_code": str(detail.get("status") or "")[:20] or None})
            if detail.get("type") != "blocked":
                suppressions.append((r["address"], "hard_bounce", "SendGrid bounce"))
        elif kind == "dropped":
            moves["failed"].append({"mid": mid, "error": error, "error_code": "dropped"})
            why = _dropped_reason(str(detail.get("reason") or ""))
            if why:
                suppressions.append((r["address"], why, "SendGrid dropped"))
        elif kind in ("spamreport", "unsubscribe", "group_unsubscribe"):
            reason = "spam_report" if kind == "spamreport" else "unsubscribed"
            opt_out(session, Channel.EMAIL, r["address"], r["contact_id"], reason, "provider",
                    {"event": kind, "message_id": mid, "blast_id": r["blast_id"],
                     "sg_event_id": r["provider_event_id"]})
    for target in ("delivered", "bounced", "failed"):
        advance_status(session, target, moves[target])
    suppress_addresses(session, Channel.EMAIL, suppressions)
    return {"received": len(events), "recorded": len(new),
            "duplicates": len(records) - len(new), "ignored": ignored}
