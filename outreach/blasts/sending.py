"""Turning claimed rows into provider calls, and provider answers into message states."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from outreach import db as database
from outreach.blasts.models import ACTIVE, Blast, BlastStatus, Message, MessageStatus
from outreach.channels import email_channel, sms_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, SendResult, Sms
from outreach.contacts import consent
from outreach.contacts.models import Channel, Contact, Suppression
from outreach.content import merge
from outreach.content.compile import CompiledEmail, CompiledSms, compile_email, compile_sms
from outreach.content.evaluation import MergeEvaluator
from outreach.content.models import TemplateVersion
from outreach.content.service import merge_context
from outreach.db import insert_ignore, utcnow
from outreach.observability import counters
from outreach.tokens import token_signer

log = logging.getLogger(__name__)
MERGE_COLUMNS = (Contact.id, Contact.first_name, Contact.last_name, Contact.email, Contact.phone,
                 Contact.postal_code, Contact.timezone, Contact.fields)


def compiled_email(blast: Blast) -> CompiledEmail:
    """The blast's compiled email (built once per process and version)."""
    return _email_version(blast)[0]


def _email_version(blast: Blast) -> tuple[CompiledEmail, str, str | None]:
    """The blast's compiled email, and its version's from name and reply-to (a version never
    changes: saving a template makes a new one)."""
    assert blast.template_version_id is not None
    return _compiled_email(blast.template_version_id, current_app.config["PUBLIC_BASE_URL"])


@lru_cache(maxsize=64)
def _compiled_email(version_id: int, base_url: str) -> tuple[CompiledEmail, str, str | None]:
    version = database.session().get(TemplateVersion, version_id)
    assert version is not None
    return compile_email(version, base_url), version.from_name, version.reply_to


@lru_cache(maxsize=64)
def _evaluator(merges: merge.Merges) -> MergeEvaluator:
    """An evaluator per set of merges, kept with the process so its memo serves every batch
    (keyed by the expressions themselves, never by ids a fresh database may reuse)."""
    return MergeEvaluator(merges)


@lru_cache(maxsize=64)
def _compiled_sms(version_id: int) -> tuple[CompiledSms, str | None, str | None]:
    version = database.session().get(TemplateVersion, version_id)
    assert version is not None
    return compile_sms(version), version.from_name, version.reply_to


class _MergeRow(NamedTuple):
    id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    postal_code: str | None
    timezone: str | None
    fields: dict[str, Any] | None


def _contacts(ids: list[int]) -> dict[int, Any]:
    """The merge columns of these contacts, by id. The custom fields come as text and go
    through one json.loads each: the JSON type's result processing cost twice as much."""
    session = database.session()
    columns = [*MERGE_COLUMNS[:-1], sa.cast(Contact.fields, sa.Text).label("fields")]
    rows = session.connection().execute(sa.select(*columns).where(
        ids_condition(session, Contact.id, ids))).all()
    loads = json.loads
    return {row[0]: _MergeRow(*row[:-1], loads(row[-1]) if row[-1] else None) for row in rows}


def send_rows(blast: Blast, rows: list[Any]) -> list[tuple[Any, SendResult]]:
    """Send claimed rows through the blast's channel and record every outcome; the outcomes."""
    if blast.channel == "email":
        results = _send_email(blast, rows)
    else:
        results = _send_sms(blast, rows)
    record_results(blast, results)
    return results


def _send_email(blast: Blast, rows: list[Any]) -> list[tuple[Any, SendResult]]:
    config = current_app.config
    compiled, from_name, reply_to = _email_version(blast)
    default_name, default_email = parseaddr(config["EMAIL_FROM"])
    base = config["PUBLIC_BASE_URL"].rstrip("/")
    contacts = _contacts([r.contact_id for r in rows if r.contact_id])
    sign = token_signer(config["SECRET_KEY"])
    evaluator = _evaluator(compiled.merges)
    empty = merge_context(_Empty())
    recipients = []
    add, contact_of, substitutions = recipients.append, contacts.get, evaluator.substitutions
    unsubscribe_at = f"{base}/u/"
    for row in rows:
        contact = contact_of(row.contact_id)
        context = merge_context(contact) if contact is not None else empty
        message_id = row.id
        token = sign(message_id)
        unsubscribe = unsubscribe_at + token
        first, last = context["first_name"], context["last_name"]
        add(EmailRecipient(
            email=row.address, name=f"{first} {last}" if first and last else first or last,
            substitutions=substitutions(context, token, unsubscribe),
            headers={"List-Unsubscribe": f"<{unsubscribe}>"},
            custom_args={"outreach_message_id": str(message_id)}))
    batch = EmailBatch(
        from_email=default_email or "outreach@example.org",
        from_name=from_name or default_name, subject=compiled.subject,
        html=compiled.html, text=compiled.text, recipients=recipients,
        reply_to=reply_to, categories=[f"blast-{blast.id}"],
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        custom_args={"outreach_blast_id": str(blast.id)})
    return list(zip(rows, email_channel().send_batch(batch), strict=True))


def _send_sms(blast: Blast, rows: list[Any]) -> list[tuple[Any, SendResult]]:
    sender = SmsSender(blast)
    with ThreadPoolExecutor(max_workers=sender.concurrency) as pool:
        return list(pool.map(sender.sender_for(rows), rows))


class SmsSender:
    """What every text of a blast shares (body, channel, limiter); sends one row at a time."""

    def __init__(self, blast: Blast) -> None:
        config = current_app.config
        assert blast.template_version_id is not None
        self.compiled, _, _ = _compiled_sms(blast.template_version_id)
        self.callback = f"{config['PUBLIC_BASE_URL'].rstrip('/')}/webhooks/twilio/status"
        sender = config.get("TWILIO_MESSAGING_SERVICE_SID") or config.get("TWILIO_FROM") or ""
        self.channel = sms_channel()
        self.limiter = _limiter(sender, blast)
        self.concurrency = max(1, config["SMS_CONCURRENCY"])
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]

    def sender_for(self, rows: list[Any]) -> Callable[[Any], tuple[Any, SendResult]]:
        """A thread-safe function that sends one of these rows (their contacts loaded once)."""
        contacts = _contacts([r.contact_id for r in rows if r.contact_id])
        return lambda row: self.send(row, contacts.get(row.contact_id))

    def send(self, row: Any, contact: Any) -> tuple[Any, SendResult]:
        """Merge, wait for a rate-limit slot, send; a row that never left is a retry."""
        context = merge_context(contact) if contact is not None else merge_context(_Empty())
        subs = merge.substitutions(self.compiled.merges, context, "", "")
        body = self.compiled.body
        for tag, value in subs.items():
            body = body.replace(tag, value)
        if self.limiter is not None:
            try:
                self.limiter.wait(1)
            except RedisError as exc:
                # Redis is gone (restarting, say): this text never left, so try it again later.
                return row, SendResult(Outcome.RETRY, error=f"rate limiter unreachable: {exc}",
                                       retry_after=5.0)
        with self.app.app_context():
            return row, self.channel.send(Sms(to=row.address, body=body,
                                              status_callback=self.callback))


def _limiter(sender: str, blast: Blast) -> Any:
    from outreach.channels.ratelimit import for_sender

    return for_sender(current_app._get_current_object(), sender)  # type: ignore[attr-defined]


class _Empty:
    first_name = last_name = email = phone = postal_code = timezone = None
    fields: dict[str, Any] = {}


def record_results(blast: Blast, results: list[tuple[Any, SendResult]]) -> None:
    """Write each outcome forward-only; suppress addresses the provider says never to retry."""
    session = database.session()
    table = Message.__table__
    now = utcnow()
    shared = results[0][1] if results else None
    if (shared is not None and shared.outcome is not Outcome.RETRY and not shared.suppress
            and all(result is shared for _, result in results)):
        # A whole SendGrid batch shares one answer: one UPDATE, ids sent as one array.
        status = (MessageStatus.SENT if shared.outcome is Outcome.ACCEPTED else
                  MessageStatus.FAILED if shared.outcome is Outcome.REJECTED else
                  MessageStatus.UNKNOWN).value
        session.execute(table.update().where(
            ids_condition(session, table.c.id, [row.id for row, _ in results]),
            table.c.status == MessageStatus.SENDING.value).values(
            status=status, provider_id=shared.provider_id, error=shared.error,
            error_code=shared.error_code, segments=shared.segments, not_before=None,
            sent_at=now if status == MessageStatus.SENT else None, updated_at=now))
        session.commit()
        return
    updates: list[dict[str, Any]] = []
    retry_after = 0.0
    for row, result in results:
        status = {Outcome.ACCEPTED: MessageStatus.SENT, Outcome.REJECTED: MessageStatus.FAILED,
                  Outcome.UNKNOWN: MessageStatus.UNKNOWN, Outcome.RETRY: MessageStatus.QUEUED
                  }[result.outcome].value
        not_before = None
        if result.outcome is Outcome.RETRY:
            delay = max(result.retry_after or 0, min(300.0, 2.0 ** min(row.attempts, 8)))
            retry_after = max(retry_after, delay)
            not_before = now + timedelta(seconds=delay)
        updates.append({"mid": row.id, "status": status, "provider_id": result.provider_id,
                        "error": result.error, "error_code": result.error_code,
                        "segments": result.segments, "not_before": not_before,
                        "sent_at": now if status == MessageStatus.SENT else None, "now": now})
    # Rows with the same outcome (a whole SendGrid batch, usually) take one UPDATE.
    groups: dict[tuple[Any, ...], list[int]] = {}
    for update in updates:
        groups.setdefault(_key(update), []).append(update["mid"])
    singles = [u for u in updates if len(groups[_key(u)]) == 1]
    for key, ids in groups.items():
        if len(ids) > 1:
            session.execute(table.update().where(
                ids_condition(session, table.c.id, ids),
                table.c.status == MessageStatus.SENDING.value)
                .values(updated_at=now, **dict(zip(RESULT_FIELDS, key, strict=True))))
    if singles:  # distinct outcomes (texts: one provider id each) go in one executemany
        session.execute(table.update().where(
            table.c.id == sa.bindparam("mid"), table.c.status == MessageStatus.SENDING.value)
            .values(status=sa.bindparam("status"), provider_id=sa.bindparam("provider_id"),
                    error=sa.bindparam("error"), error_code=sa.bindparam("error_code"),
                    segments=sa.bindparam("segments"),
                    not_before=sa.bindparam("not_before", type_=table.c.not_before.type),
                    sent_at=sa.bindparam("sent_at", type_=table.c.sent_at.type),
                    updated_at=sa.bindparam("now", type_=table.c.updated_at.type)), singles)
    suppress = [(row, result) for row, result in results if result.suppress]
    for row, result in suppress:
        _suppress(session, blast, row, result)
    _note_waiting(session, blast, results, now + timedelta(seconds=retry_after))
    session.commit()
    counters.count_outcomes(blast.channel, [u["status"] for u in updates])
    if retry_after:
        log.info("blast %s: %d messages to retry in %.0f s", blast.id,
                 sum(1 for _, r in results if r.outcome is Outcome.RETRY), retry_after)


def ids_condition(session: Any, column: Any, ids: list[int]) -> Any:
    """`column IN ids`; on PostgreSQL one array parameter instead of a parameter per id."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.BigInteger)))
    return column.in_(ids)


PROVIDER_NAMES = {"sendgrid": "SendGrid", "twilio": "Twilio", "smtp": "The SMTP server"}
WAITING = "Waiting: "


def _note_waiting(session: Any, blast: Blast, results: list[tuple[Any, SendResult]],
                  next_try: datetime) -> None:
    """Say on the blast why it waits for the provider, and clear that once a send goes through."""
    retry = next((r for _, r in results if r.outcome is Outcome.RETRY), None)
    if retry is not None:
        channel = email_channel() if blast.channel == "email" else sms_channel()
        who = PROVIDER_NAMES.get(channel.name, channel.name)
        what = (f"{who} answered {retry.error_code} {retry.error or ''}".strip()
                if retry.error_code else retry.error or f"{who} could not be reached")
        reason = f"{WAITING}{what}; next try at {next_try:%H:%M:%S} UTC"
        session.execute(sa.update(Blast).where(Blast.id == blast.id,
                                               Blast.status.in_(ACTIVE))
                        .values(status_reason=reason[:500]))
    elif any(r.outcome is Outcome.ACCEPTED for _, r in results):
        session.execute(sa.update(Blast).where(Blast.id == blast.id,
                                               Blast.status_reason.like(f"{WAITING}%"))
                        .values(status_reason=None))


RESULT_FIELDS = ("status", "provider_id", "error", "error_code", "segments", "not_before",
                 "sent_at")


def _key(update: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(update[field] for field in RESULT_FIELDS)


def _suppress(session: Any, blast: Blast, row: Any, result: SendResult) -> None:
    """A permanent provider refusal: suppress the address; a STOP also revokes consent."""
    channel = Channel(blast.channel)
    contact = session.get(Contact, row.contact_id) if row.contact_id else None
    if result.suppress == "stop" and contact is not None:
        consent.revoke_and_suppress(session, contact, channel, "stop", "provider",
                                    {"error_code": result.error_code, "blast_id": blast.id})
        return
    dialect = session.get_bind().dialect.name
    session.execute(insert_ignore(Suppression.__table__, dialect).values(
        channel=channel.value, address=row.address, reason=result.suppress,
        note=f"provider error {result.error_code or ''} in blast {blast.id}".strip(),
        created_at=utcnow()))


OPTOUT_REASONS = ("unsubscribed", "stop", "spam_report")
FINISHED = ("sent", "delivered", "bounced", "failed", "unknown")


def check_circuit_breaker(blast_id: int, first_id: int, last_id: int) -> None:
    """Pause a blast whose recent permanent failures or opt-outs pass the thresholds.

    "Recent" is the last BREAKER_WINDOW finished messages of the batch just sent: looking only
    inside the batch's id range keeps the check's cost flat however large the blast is.
    """
    config = current_app.config
    session = database.session()
    window = config["BREAKER_WINDOW"]
    # (status || '') keeps PostgreSQL on the id range: statistics taken at preparation say no
    # message is sent yet, and the (blast, status) index would then walk every sent message.
    recent = (sa.select(Message.status, Message.address).where(
        Message.blast_id == blast_id, Message.id.between(first_id, last_id),
        (Message.status + "").in_(FINISHED))
        .order_by(Message.id.desc()).limit(window).subquery())
    total, failed = session.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((recent.c.status == "failed", 1),
                                                             else_=0)), 0))).one()
    if total < min(100, window):
        return  # too few to judge
    blast = session.get(Blast, blast_id)
    assert blast is not None
    optouts = session.scalar(sa.select(sa.func.count()).select_from(Suppression).where(
        Suppression.channel == blast.channel, Suppression.reason.in_(OPTOUT_REASONS),
        Suppression.address.in_(sa.select(recent.c.address)))) or 0
    _judge(blast_id, total, failed, optouts)


def check_breaker_outcomes(blast: Blast, results: list[tuple[Any, SendResult]]) -> None:
    """check_circuit_breaker for a batch that claimed every message of its id range, from its
    outcomes: the range's finished messages are then exactly the rows this batch did not have
    to retry, and none of their addresses was suppressed at the claim, so the opt-outs among
    them are those the provider reported in its answers (an opt-out recorded by someone else
    in the fraction of a second the batch takes is left out, as one recorded right after the
    check always was)."""
    window = current_app.config["BREAKER_WINDOW"]
    finished = sorted(((row.id, result) for row, result in results
                       if result.outcome is not Outcome.RETRY),
                      key=lambda item: item[0], reverse=True)[:window]
    total = len(finished)
    if total < min(100, window):
        return  # too few to judge
    failed = sum(1 for _, result in finished if result.outcome is Outcome.REJECTED)
    optouts = sum(1 for _, result in finished if result.suppress in OPTOUT_REASONS)
    _judge(blast.id, total, failed, optouts)


def _judge(blast_id: int, total: int, failed: int, optouts: int) -> None:
    """Pause the blast when the failures or opt-outs among `total` recent messages are too many."""
    config = current_app.config
    reason = None
    if failed / total > config["BREAKER_MAX_FAILURE_RATE"]:
        reason = (f"Paused automatically: {failed} of the last {total} messages failed "
                  f"permanently ({failed / total:.1%}, limit "
                  f"{config['BREAKER_MAX_FAILURE_RATE']:.0%}).")
    elif optouts / total > config["BREAKER_MAX_OPTOUT_RATE"]:
        reason = (f"Paused automatically: {optouts} of the last {total} recipients opted out "
                  f"({optouts / total:.1%}, limit {config['BREAKER_MAX_OPTOUT_RATE']:.0%}).")
    if reason:
        session = database.session()
        session.execute(sa.update(Blast).where(Blast.id == blast_id,
                                               Blast.status.in_(ACTIVE))
                        .values(status=BlastStatus.PAUSED.value, status_reason=reason))
        session.commit()
        log.warning("blast %s: %s", blast_id, reason)
