"""Background work of action pages: autoresponses, letter delivery, digests, opt-in emails.

Each job claims its rows with a conditional UPDATE first, so a retried or duplicated job never
sends twice. Autoresponses go only to contacts whose consent for the channel is granted and
whose address is not suppressed; letters go to the page's targets (decision-makers), from
EMAIL_FROM in the supporter's name with the supporter's address as Reply-To.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from flask import current_app
from itsdangerous import URLSafeTimedSerializer
from redis.exceptions import RedisError

from outreach import db as database
from outreach.actions import stats
from outreach.actions.models import ActionPage, Letter, LetterStatus, LetterTarget, Submission
from outreach.channels import email_channel, sms_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, SendResult, Sms
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentStatus, Contact
from outreach.content import merge
from outreach.content.compile import compile_sms
from outreach.content.models import MessageTemplate
from outreach.content.service import current_version, merge_context
from outreach.db import utcnow
from outreach.queue import enqueue, redis

log = logging.getLogger(__name__)
OPTIN_SALT = "outreach-optin"


def optin_serializer() -> URLSafeTimedSerializer:
    """The signer of double opt-in confirmation links."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=OPTIN_SALT)


def dispatch(jobs: Sequence[tuple[str, Any, tuple[Any, ...]]], digest_pages: Sequence[int] = ()
             ) -> None:
    """Enqueue a committed submission's jobs and schedule its pages' digests."""
    for queue_name, func, args in jobs:
        try:
            enqueue(queue_name, func, *args)
        except RedisError:  # the action is recorded; only its follow-up email is lost
            log.exception("could not enqueue %s%s", func.__name__, args)
    for page_id in digest_pages:
        schedule_digest(page_id)


def next_digest_time(now: datetime | None = None) -> datetime:
    """The next UTC midnight, when daily digests go out."""
    now = now or utcnow()
    return datetime.combine(now.date() + timedelta(days=1), time(0, 5), tzinfo=now.tzinfo)


def schedule_digest(page_id: int) -> None:
    """Schedule a page's digest for the next midnight once, however many letters arrive."""
    when = next_digest_time()
    key = f"outreach:actions:digest:{page_id}:{when.date().isoformat()}"
    try:
        if redis().set(key, 1, nx=True, ex=3 * 24 * 3600):
            enqueue("email", send_digests, page_id, at=when)
    except RedisError:
        log.exception("could not schedule the digest of page %s", page_id)


def _sender(from_name: str = "") -> tuple[str, str]:
    default_name, address = parseaddr(current_app.config["EMAIL_FROM"])
    return from_name or default_name, address or "outreach@example.org"


def _send_email(to: str, subject: str, text: str, body_html: str, from_name: str = "",
                reply_to: str | None = None, name: str = "", category: str = "action"
                ) -> SendResult:
    """Send one email; a suppressed address is never tried, an adapter's crash is a result."""
    suppressed = consent.suppression_for(database.session(), Channel.EMAIL, to)
    if suppressed is not None:
        return SendResult(Outcome.REJECTED, error=f"address suppressed ({suppressed.reason})")
    sender_name, sender = _sender(from_name)
    batch = EmailBatch(from_email=sender, from_name=sender_name, subject=subject,
                       html=body_html, text=text, reply_to=reply_to, categories=[category],
                       recipients=[EmailRecipient(email=to, name=name)])
    try:
        return email_channel().send_batch(batch)[0]
    except Exception as exc:  # noqa: BLE001 - recorded on the letter; never left "sending"
        log.exception("sending an action email to %s failed", to)
        return SendResult(Outcome.UNKNOWN, error=f"{type(exc).__name__}: {exc}")


def _claim(column: Any, submission_id: int) -> bool:
    """Mark an autoresponse channel as done for a submission; False if it already was."""
    table = Submission.__table__
    done = database.session().execute(sa.update(table).where(
        table.c.id == submission_id, column.is_(None)).values({column: utcnow()})).rowcount
    database.session().commit()
    return bool(done)


def _consented(contact: Contact, channel: Channel) -> bool:
    address = consent.address_for(contact, channel)
    granted = getattr(contact, consent.CONSENT_COLUMN[channel]) == ConsentStatus.GRANTED.value
    return bool(address) and granted and consent.suppression_for(
        database.session(), channel, address) is None


def send_autoresponse(submission_id: int) -> None:
    """Send the page's autoresponse email and SMS to a supporter who has consent for them."""
    session = database.session()
    submission = session.get(Submission, submission_id)
    page = session.get(ActionPage, submission.page_id) if submission else None
    contact = session.get(Contact, submission.contact_id) if submission and \
        submission.contact_id else None
    if page is None or contact is None or submission is None:
        return
    context = merge_context(contact)
    template_id = page.autoresponse_email_template_id
    if template_id and _consented(contact, Channel.EMAIL) and _claim(
            Submission.__table__.c.email_reply_at, submission_id):
        version = current_version(session, session.get(MessageTemplate, template_id))
        subject = merge.render_text(version.subject, context)
        text = merge.render_text(version.text, context)
        merges, (body,) = merge.extract(version.html)
        for n, value in enumerate(merges.evaluate(context)):
            body = body.replace(f"%%m{n}%%", html.escape(value))
        body = body.replace("%%u%%", "")
        name = " ".join(filter(None, [contact.first_name, contact.last_name]))
        result = _send_email(contact.email or "", subject, text, body, version.from_name,
                             version.reply_to, name, f"action-{page.id}")
        _log_result("autoresponse email", submission_id, result)
    template_id = page.autoresponse_sms_template_id
    if template_id and _consented(contact, Channel.SMS) and _claim(
            Submission.__table__.c.sms_reply_at, submission_id):
        version = current_version(session, session.get(MessageTemplate, template_id))
        compiled = compile_sms(version)
        body = compiled.body
        for n, value in enumerate(compiled.merges.evaluate(context)):
            body = body.replace(f"%%m{n}%%", value)
        result = sms_channel().send(Sms(to=contact.phone or "", body=body))
        _log_result("autoresponse SMS", submission_id, result)


def _log_result(what: str, ref: Any, result: SendResult) -> None:
    if result.outcome is not Outcome.ACCEPTED:
        log.warning("%s for %s not accepted: %s %s", what, ref, result.outcome, result.error)


def _letter_html(letters: Sequence[Letter]) -> str:
    parts = []
    for letter in letters:
        body = html.escape(letter.body).replace("\n", "<br>\n")
        parts.append(f"<div><h3>{html.escape(letter.subject)}</h3><p>{body}</p>"
                     f"<p>{html.escape(letter.signature)}</p></div>")
    return "<html><body>" + "<hr>".join(parts) + "</body></html>"


def _letter_text(letter: Letter) -> str:
    return f"{letter.body}\n\n{letter.signature}".rstrip() + "\n"


def _finish(letter_ids: list[int], page_id: int, result: SendResult) -> None:
    session = database.session()
    ok = result.outcome is Outcome.ACCEPTED
    session.execute(sa.update(Letter).where(Letter.id.in_(letter_ids)).values(
        status=(LetterStatus.SENT if ok else LetterStatus.FAILED).value,
        sent_at=utcnow() if ok else None, provider_id=result.provider_id,
        error=None if ok else (result.error or result.outcome.value)))
    if ok:
        stats.bump_page(session, page_id, letters_sent=len(letter_ids))
    session.commit()


def _claim_letters(where: Any) -> list[Letter]:
    """Move approved letters to sending atomically; return the ones this job got."""
    session = database.session()
    ids = list(session.scalars(sa.select(Letter.id).where(
        where, Letter.status == LetterStatus.APPROVED.value)))
    if not ids:
        return []
    session.execute(sa.update(Letter).where(
        Letter.id.in_(ids), Letter.status == LetterStatus.APPROVED.value).values(
        status=LetterStatus.SENDING.value))
    session.commit()
    return list(session.scalars(sa.select(Letter).where(
        Letter.id.in_(ids), Letter.status == LetterStatus.SENDING.value).order_by(Letter.id)))


def deliver_letter(letter_id: int) -> None:
    """Send one approved letter to its target."""
    letters = _claim_letters(Letter.id == letter_id)
    if not letters:
        return
    letter = letters[0]
    target = database.session().get(LetterTarget, letter.target_id)
    assert target is not None
    name = letter.signature.split(",")[0].strip()
    result = _send_email(target.email, letter.subject, _letter_text(letter),
                         _letter_html([letter]), from_name=name, reply_to=letter.reply_to,
                         name=target.name, category=f"action-{letter.page_id}")
    _finish([letter.id], letter.page_id, result)


def send_digests(page_id: int | None = None) -> int:
    """Send each target one email with its approved letters (per page); return emails sent."""
    where = Letter.page_id == page_id if page_id is not None else sa.true()
    page_ids = [page_id] if page_id is not None else list(database.session().scalars(
        sa.select(ActionPage.id).where(ActionPage.delivery_mode == "daily_digest")))
    letters = _claim_letters(sa.and_(where, Letter.page_id.in_(page_ids)))
    groups: dict[tuple[int, int], list[Letter]] = defaultdict(list)
    for letter in letters:
        groups[(letter.page_id, letter.target_id)].append(letter)
    session = database.session()
    for (group_page, target_id), batch in groups.items():
        page, target = session.get(ActionPage, group_page), session.get(LetterTarget, target_id)
        assert page is not None and target is not None
        count = f"{len(batch)} letter{'s' if len(batch) != 1 else ''}"
        subject = f"{count} from supporters: {page.title}"
        text = f"\n{'-' * 40}\n".join(f"{x.subject}\n\n{_letter_text(x)}" for x in batch)
        result = _send_email(target.email, subject, text, _letter_html(batch), name=target.name,
                             category=f"action-{page.id}")
        _finish([x.id for x in batch], page.id, result)
    return len(groups)


def send_optin_email(submission_id: int) -> None:
    """Email the confirmation link of a double opt-in page (never to a suppressed address)."""
    session = database.session()
    submission = session.get(Submission, submission_id)
    if submission is None or submission.contact_id is None:
        return
    page, contact = session.get(ActionPage, submission.page_id), session.get(
        Contact, submission.contact_id)
    if page is None or contact is None or not contact.email:
        return
    if contact.email_consent != ConsentStatus.NONE.value or consent.suppression_for(
            session, Channel.EMAIL, contact.email) is not None:
        return  # already granted, or revoked: never asked again
    token = optin_serializer().dumps({"s": submission_id})
    url = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/a/{page.slug}/confirm/{token}"
    text = (f"Please confirm that you want our emails.\n\n{page.email_consent_text}\n\n"
            f"Confirm: {url}\n\nIf you did not ask for this, ignore this email.\n")
    body = (f"<html><body><p>Please confirm that you want our emails.</p>"
            f"<p>{html.escape(page.email_consent_text)}</p>"
            f'<p><a href="{html.escape(url)}">Confirm my subscription</a></p>'
            f"<p>If you did not ask for this, ignore this email.</p></body></html>")
    result = _send_email(contact.email, f"Please confirm: {page.title}", text, body,
                         category=f"action-{page.id}")
    _log_result("opt-in email", submission_id, result)
