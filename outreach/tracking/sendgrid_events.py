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
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.blasts.models import RANK, Link, Message
from outreach.contacts.models import Channel
from outreach.db import utcnow
from outreach.tracking import batch_sql, machine
from outreach.tracking.service import (
    Record,
    chunks,
    is_postgres,
    move_messages,
    opt_out,
    record_events,
    references_checked_once,
    suppress_addresses,
)

log = logging.getLogger(__name__)
KINDS = frozenset("processed delivered deferred bounce dropped open click spamreport unsubscribe "
                  "group_unsubscribe group_resubscribe".split())
DETAIL_KEYS = ("email", "reason", "type", "status", "response", "attempt", "url", "useragent",
               "ip", "sg_machine_open", "bounce_classification", "asm_group_id", "sg_message_id")
CLICK_URL = re.compile(r"/c/[A-Za-z0-9_-]+/([0-9]{1,6})(?:[/?#]|$)")
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
    """The custom arg as an id: 1 to 18 ASCII digits (fits a BIGINT), else None."""
    value = event.get("outreach_message_id")
    text = value if type(value) is str else str(value)
    # isascii + isdigit is [0-9]+ (isdigit alone takes "²"), without a regex per event.
    return int(text) if 0 < len(text) <= 18 and text.isascii() and text.isdigit() else None


def _find_messages(session: Session, events: list[dict[str, Any]]) -> dict[int, Any]:
    """Each event's message (by index): custom arg first, else X-Message-Id + email."""
    table = Message.__table__  # Core columns: plain rows, no ORM loading
    columns = (table.c.id, table.c.blast_id, table.c.contact_id, table.c.address,
               table.c.provider_id, table.c.sent_at)
    by_id: dict[int, Any] = {}
    mids = [_message_id(e) for e in events]
    ids = sorted({i for i in mids if i is not None})
    if is_postgres(session) and ids:  # one array parameter, not an IN list per chunk
        from sqlalchemy.dialects.postgresql import ARRAY

        wanted = sa.bindparam("ids", ids, type_=ARRAY(sa.BigInteger))
        by_id.update({r.id: r for r in session.execute(
            sa.select(*columns).where(table.c.id == sa.any_(wanted)))})
    for part in [] if is_postgres(session) else chunks(ids):
        by_id.update({r.id: r for r in session.execute(sa.select(*columns)
                                                       .where(table.c.id.in_(part)))})
    fallback = [e for e, mid in zip(events, mids, strict=True)
                if mid is None and e.get("sg_message_id")]
    by_provider: dict[tuple[str, str], Any] = {}
    prefixes = sorted({str(e["sg_message_id"]).split(".")[0] for e in fallback})
    emails = sorted({str(e.get("email") or "").lower() for e in fallback})
    for part in chunks(prefixes):
        rows = session.execute(sa.select(*columns).where(
            table.c.provider_id.in_(part), sa.func.lower(table.c.address).in_(emails)))
        by_provider.update({(r.provider_id, r.address.lower()): r for r in rows})
    found: dict[int, Any] = {}
    addresses: dict[int, str] = {}  # message id -> its address in lower case, once per message
    for index, (event, mid) in enumerate(zip(events, mids, strict=True)):
        email = event.get("email")
        email = (email if type(email) is str else str(email or "")).lower()
        if mid is not None:
            row = by_id.get(mid)
        else:
            row = by_provider.get((str(event.get("sg_message_id") or "").split(".")[0], email))
        if row is None:
            continue
        address = addresses.get(row.id)
        if address is None:
            address = addresses[row.id] = row.address.lower()
        if address == email:
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


def _text(event: dict[str, Any], key: str) -> str | None:
    """A string field as sent, or None when it is missing or of another JSON type."""
    value = event.get(key)
    return value if isinstance(value, str) else None


def _record(session: Session, event: dict[str, Any], message: Any,
            thresholds: tuple[float, float]) -> Record:
    kind = event["event"]
    stamp = event.get("timestamp")
    try:
        # SendGrid sends an int: no int() call then; other types as int() takes them.
        occurred = datetime.fromtimestamp(stamp if type(stamp) is int else int(stamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        occurred = datetime.now(UTC)
    event_id = event.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        event_id = "sg:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str)
                                          .encode()).hexdigest()[:40]
    reason = None
    link = None
    if kind == "open" or kind == "click":  # only engagement needs the time since sending
        since = (occurred - message.sent_at).total_seconds() if message.sent_at else None
        if kind == "open":
            reason = "sg_machine_open" if event.get("sg_machine_open") else (
                machine.classify_open(_text(event, "ip"), _text(event, "useragent"), since,
                                      thresholds[0]))
        else:
            reason = machine.classify_click("GET", _text(event, "useragent"), since,
                                            thresholds[1])
            link = _link_position(session, message.blast_id, _text(event, "url"))
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


def _move(moves: dict[int, dict[str, Any]], r: Record, target: str | None, **extra: Any) -> None:
    """Fold one event into its message's move: the highest rank wins, the earliest on a tie."""
    move = moves.setdefault(r["message_id"], {"mid": r["message_id"], "target": None,
                                              "delivered": None})
    if target is None:  # delivered: also remember the earliest delivery
        if move["delivered"] is None or r["occurred_at"] < move["delivered"]:
            move["delivered"] = r["occurred_at"]
        target = "delivered"
    if move["target"] is None or RANK[target] > RANK[move["target"]]:
        move.update(target=target, error=extra.get("error"), error_code=extra.get("error_code"))


def _effects(session: Session, new: list[Record]) -> None:
    """Status moves, suppressions and opt-outs of the new events (oldest first)."""
    moves: dict[int, dict[str, Any]] = {}
    suppressions: list[tuple[str, str, str]] = []
    opt_outs: list[Record] = []
    for r in new:
        kind, detail = r["kind"], r["detail"]
        error = f"{kind}: {detail.get('reason') or detail.get('response') or ''}".strip(": ")
        if kind == "delivered":
            _move(moves, r, None)
        elif kind == "bounce":
            _move(moves, r, "bounced", error=error,
                  error_code=str(detail.get("status") or "")[:20] or None)
            if detail.get("type") != "blocked":
                suppressions.append((r["address"], "hard_bounce", "SendGrid bounce"))
        elif kind == "dropped":
            _move(moves, r, "failed", error=error, error_code="dropped")
            why = _dropped_reason(str(detail.get("reason") or ""))
            if why:
                suppressions.append((r["address"], why, "SendGrid dropped"))
        elif kind in ("spamreport", "unsubscribe", "group_unsubscribe"):
            opt_outs.append(r)
    move_messages(session, list(moves.values()))
    # By contact: concurrent batches lock contacts in one order.
    opt_outs.sort(key=lambda r: (r["contact_id"] or 0, r["occurred_at"]))
    if is_postgres(session):  # one statement instead of the ORM's few per opt-out
        batch_sql.opt_out_and_suppress(session, [
            {"c": r["contact_id"], "a": r["address"], "why": _opt_out_reason(r["kind"]),
             "note": "via provider", "ev": _evidence(r)} for r in opt_outs] + [
            {"c": None, "a": address, "why": why, "note": note, "ev": None}
            for address, why, note in suppressions], utcnow())
        return
    for r in opt_outs:
        opt_out(session, Channel.EMAIL, r["address"], r["contact_id"],
                _opt_out_reason(r["kind"]), "provider", _evidence(r))
    suppress_addresses(session, Channel.EMAIL, suppressions)


def _opt_out_reason(kind: str) -> str:
    return "spam_report" if kind == "spamreport" else "unsubscribed"


def _evidence(r: Record) -> dict[str, Any]:
    return {"event": r["kind"], "message_id": r["message_id"], "blast_id": r["blast_id"],
            "sg_event_id": r["provider_event_id"]}


def ingest(session: Session, events: list[Any]) -> dict[str, int]:
    """Record a batch of SendGrid events and apply their effects (call via write_batch)."""
    known = [e for e in events if isinstance(e, dict) and e.get("event") in KINDS]
    ignored = len(events) - len(known)
    if ignored:
        log.debug("ignoring %d SendGrid events of unknown types", ignored)
    messages = _find_messages(session, known)
    ignored += len(known) - len(messages)
    thresholds = (current_app.config.get("MACHINE_OPEN_SECONDS", 2),
                  current_app.config.get("MACHINE_CLICK_SECONDS", 2))
    records = [_record(session, known[i], row, thresholds) for i, row in messages.items()]
    references_checked_once(session, records)  # PostgreSQL only, where the role may
    new = record_events(session, records, effects=lambda new: _effects(session, new))
    return {"received": len(events), "recorded": len(new),
            "duplicates": len(records) - len(new), "ignored": ignored}
