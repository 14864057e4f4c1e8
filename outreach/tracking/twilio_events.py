"""Twilio's webhooks: signature checks, delivery status callbacks and inbound texts (keywords).

Status callbacks move a message forward only: delivered -> delivered; undelivered/failed ->
failed with the ErrorCode; queued/sending/sent/read and the rest are recorded only. Error
30003 (unreachable) and 30005 (unknown handset) suppress the number as unreachable, 30006
(landline) as landline; 30004 (blocked), 30007 (filtered) and others suppress nothing.
Each (MessageSid, MessageStatus) is recorded once.

Inbound keywords (one word once whitespace and punctuation are stripped, any case):
STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT/REVOKE/OPTOUT revoke SMS consent and suppress the
number ("stop"); START/YES/UNSTOP lift a "stop" suppression (never another reason) and record a
grant; HELP/INFO answer SMS_HELP_TEXT. Every inbound text is stored once per MessageSid.
"""

from __future__ import annotations

import logging
import string
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.blasts.models import Blast, Message
from outreach.contacts import consent
from outreach.contacts.models import (
    Channel,
    ConsentStatus,
    Contact,
    SuppressionReason,
    SuppressionRemoval,
)
from outreach.db import utcnow
from outreach.tracking.models import InboundSms
from outreach.tracking.service import (
    advance_status,
    dialect_insert,
    opt_out,
    record_best_effort,
    record_events,
)

log = logging.getLogger(__name__)
KEYWORDS = {
    **dict.fromkeys("STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT".split(), "stop"),
    **dict.fromkeys("START YES UNSTOP".split(), "start"),
    **dict.fromkeys("HELP INFO".split(), "help"),
}
ERROR_SUPPRESSIONS = {"30003": "unreachable", "30005": "unreachable", "30006": "landline"}
STOP_REPLY = "You are unsubscribed and will get no more messages. Reply START to resubscribe."
START_REPLY = ("You are resubscribed and will get our messages again. Reply HELP for help, "
               "STOP to opt out.")
STOP_ATTRIBUTION = timedelta(days=7)  # a STOP counts against the last text sent this recently


def verify(url: str, params: dict[str, Any], signature: str | None) -> bool:
    """True when X-Twilio-Signature matches the public URL and form, keyed by our token."""
    from twilio.request_validator import RequestValidator

    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    if not token or not signature:
        if not token:
            log.warning("TWILIO_AUTH_TOKEN is not set: Twilio webhooks are refused (403)")
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


MAX_SID, MAX_NUMBER = 64, 32  # the inbound_sms columns; Twilio's own are 34 and 16


def keyword(body: str | None) -> str | None:
    """"stop", "start" or "help" when a text is exactly one of Twilio's keywords, else None."""
    return KEYWORDS.get((body or "").strip(string.whitespace + string.punctuation).upper())


def clean_form(form: dict[str, str]) -> dict[str, str]:
    """Form values the database can store: no NUL, no lone surrogate (PostgreSQL refuses both)."""
    return {key: str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
            for key, value in form.items()}


def ingest_status(session: Session, form: dict[str, str]) -> bool:
    """Record one status callback and apply it forward only; False when the sid is unknown."""
    form = clean_form(form)
    sid, status = form.get("MessageSid") or "", (form.get("MessageStatus") or "").lower()
    if not sid or not status:
        return False
    message = session.execute(sa.select(Message.id, Message.blast_id, Message.contact_id,
                                        Message.address).where(Message.provider_id == sid)
                              ).first()
    if message is None:
        log.info("Twilio status %s for unknown message %s: ignored", status, sid)
        return False
    code = (form.get("ErrorCode") or "").strip() or None
    detail = {k: form[k] for k in ("ErrorCode", "ErrorMessage", "To", "From") if form.get(k)}
    new = record_events(session, [{
        "message_id": message.id, "blast_id": message.blast_id,
        "contact_id": message.contact_id, "kind": status[:20], "machine": False,
        "link_position": None, "provider_event_id": f"{sid}:{status}"[:120], "detail": detail,
        "occurred_at": utcnow()}])
    if not new:
        return True  # a replay: already applied
    if status == "delivered":
        advance_status(session, "delivered", [{"mid": message.id}])
    elif status in ("undelivered", "failed"):
        advance_status(session, "failed", [{"mid": message.id, "error_code": code,
                                            "error": f"{status} (error {code or 'unknown'})"}])
        reason = ERROR_SUPPRESSIONS.get(code or "")
        if reason:
            consent.suppress(session, Channel.SMS, message.address, reason,
                             note=f"Twilio error {code}")
    return True


def _contact(session: Session, phone: str) -> Contact | None:
    return session.scalar(sa.select(Contact).where(Contact.phone == phone)) if phone else None


def handle_inbound(session: Session, form: dict[str, str]) -> str | None:
    """Apply an inbound text (keywords) once per MessageSid and commit; return the reply.

    A text without a sender or a sid, or with values longer than Twilio's, is not one Twilio
    sent: it is logged and ignored (never a 500, never a suppression of an empty number).
    """
    form = clean_form(form)
    sid, phone = (form.get("MessageSid") or "").strip(), (form.get("From") or "").strip()
    if (not sid or not phone or len(sid) > MAX_SID or len(phone) > MAX_NUMBER
            or len(form.get("To") or "") > MAX_NUMBER):
        log.warning("inbound text ignored: missing or over-long MessageSid/From/To")
        return None
    opt_out_type = (form.get("OptOutType") or "").strip().lower() or None
    word = keyword(form.get("Body"))
    kind = opt_out_type if opt_out_type in ("stop", "start", "help") else word
    contact = _contact(session, phone)
    stmt = dialect_insert(session, InboundSms.__table__).on_conflict_do_nothing()
    inserted = session.execute(stmt.values(
        message_sid=sid, from_number=phone, to_number=form.get("To") or "",
        body=form.get("Body") or "", keyword=kind,
        contact_id=contact.id if contact else None, created_at=utcnow())).rowcount
    reply: str | None = None
    if kind == "stop":
        if inserted:
            _stop(session, phone, contact, sid, (form.get("Body") or "").strip())
        reply = STOP_REPLY
    elif kind == "start":
        restored = _start(session, phone, contact, sid) if inserted else True
        reply = START_REPLY if restored else None
    elif kind == "help":
        reply = current_app.config.get("SMS_HELP_TEXT") or None
    elif kind is None and inserted:
        from outreach.actions.service import handle_keyword  # a keyword join ("JOIN", ...)

        reply = handle_keyword(session, phone, form.get("To") or "", form.get("Body") or "")
    session.commit()
    if kind == "stop" and inserted:
        _count_stop(session, phone, sid, (form.get("Body") or "").strip())
    return None if opt_out_type else reply


def _stop(session: Session, phone: str, contact: Contact | None, sid: str, body: str) -> None:
    """Revoke SMS consent and suppress the number (even with no contact)."""
    opt_out(session, Channel.SMS, phone, contact.id if contact else None, "stop", "keyword",
            {"keyword": body[:40], "message_sid": sid})


def _count_stop(session: Session, phone: str, sid: str, body: str) -> None:
    """Count a STOP as an unsubscribe of the last text we sent this number (for metrics)."""
    last = session.execute(
        sa.select(Message.id, Message.blast_id, Message.contact_id)
        .join(Blast, Blast.id == Message.blast_id)
        .where(Message.address == phone, Blast.channel == "sms", Message.sent_at.is_not(None),
               Message.sent_at >= utcnow() - STOP_ATTRIBUTION)
        .order_by(Message.sent_at.desc()).limit(1)).first()
    if last is not None:
        record_best_effort(session, [{
            "message_id": last.id, "blast_id": last.blast_id, "contact_id": last.contact_id,
            "kind": "unsubscribe", "machine": False, "link_position": None,
            "provider_event_id": f"{sid}:stop", "detail": {"keyword": body[:40]},
            "occurred_at": utcnow()}])


def _start(session: Session, phone: str, contact: Contact | None, sid: str) -> bool:
    """Lift a STOP suppression (only that reason) and record the grant; True if lifted."""
    row = consent.suppression_for(session, Channel.SMS, phone)
    if row is None or row.reason != SuppressionReason.STOP.value:
        return False
    session.add(SuppressionRemoval(channel=row.channel, address=row.address,
                                   original_reason=row.reason, reason="START keyword"))
    session.delete(row)
    if contact is not None:
        consent.record_consent(session, contact, Channel.SMS, ConsentStatus.GRANTED, "keyword",
                               {"keyword": "START", "message_sid": sid})
    return True
