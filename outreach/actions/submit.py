"""Taking an action: the contact, consent with evidence, list, attribution, letters, counters.

`submit` does the database work of one form submission inside the caller's transaction and
returns the jobs to enqueue once it is committed (`dispatch`). Consent is never granted back
once revoked, and a suppressed address stays suppressed, whatever the form says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.actions import abuse, stats
from outreach.actions.forms import Entry
from outreach.actions.models import (
    ActionPage,
    DeliveryMode,
    Letter,
    LetterStatus,
    LetterTarget,
    PageKind,
    Submission,
)
from outreach.actions.service import welcome_text
from outreach.blasts.models import Link, Message
from outreach.contacts import consent
from outreach.contacts import service as contacts
from outreach.contacts.models import Channel, ConsentStatus, Contact
from outreach.contacts.normalize import InvalidAddress, normalize_phone
from outreach.db import utcnow
from outreach.tokens import make_token, read_token

REPEAT_WINDOW = timedelta(days=1)  # repeat submissions within a day are counted once
REFERRAL = "referral"
Job = tuple[str, Callable[..., Any], tuple[Any, ...]]


@dataclass
class Result:
    """What a submission did, and the jobs to run once it is committed."""

    submission_id: int
    contact_id: int | None
    jobs: list[Job] = field(default_factory=list)
    digest_pages: list[int] = field(default_factory=list)


def referral_code(contact_id: int) -> str:
    """The supporter's referral code for share links (?ref=...)."""
    return make_token(contact_id, purpose="referral")


def referrer_of(db: Session, code: str | None) -> int | None:
    """The contact a referral code names, if it is genuine and the contact exists."""
    contact_id = read_token(code or "", purpose="referral") if code else None
    return contact_id if contact_id and db.get(Contact, contact_id) is not None else None


def resolve_blast(db: Session, token: str | None, position: int | None
                  ) -> tuple[int | None, int | None, int | None]:
    """(blast id, message id, link position) from a blast email's tracking token."""
    message_id = read_token(token) if token else None
    row = None if message_id is None else db.execute(
        sa.select(Message.id, Message.blast_id).where(Message.id == message_id)).first()
    if row is None:
        return None, None, None
    if position is not None and db.scalar(sa.select(Link.id).where(
            Link.blast_id == row.blast_id, Link.position == position)) is None:
        position = None
    return row.blast_id, row.id, position


def source_key(source: str | None, blast_id: int | None, referrer: int | None,
               embed: bool = False) -> str:
    """The rollup source: the given ?source=, else the blast, a referral, embed or direct."""
    if source:
        return source[:60]
    if blast_id is not None:
        return f"blast:{blast_id}"
    if referrer is not None:
        return REFERRAL
    return "embed" if embed else "direct"


def find_or_create_contact(db: Session, data: dict[str, Any]) -> tuple[Contact | None, bool]:
    """The contact these details name (email first, then phone), created when new."""
    email, phone = data.get("email"), data.get("phone")
    by_email = db.scalar(sa.select(Contact).where(Contact.email == email)) if email else None
    by_phone = db.scalar(sa.select(Contact).where(Contact.phone == phone)) if phone else None
    contact = by_email or by_phone
    usable = {k: v for k, v in data.items() if v}
    if phone and ((by_phone is not None and by_phone is not contact)
                  or (by_phone is None and consent.is_tombstoned(db, Channel.SMS, phone))):
        usable.pop("phone", None)  # someone else's number, or an erased contact's
    if email and by_email is None and consent.is_tombstoned(db, Channel.EMAIL, email):
        usable.pop("email", None)
    if contact is None:
        if not usable.get("email") and not usable.get("phone"):
            return None, False
        try:
            with db.begin_nested():
                return contacts.create_contact(db, usable), True
        except sa.exc.IntegrityError:  # the same person submitted twice at the same moment
            return find_or_create_contact(db, data)[0], False
    # A public form only fills in what is missing: it never rewrites someone's details.
    changes = {k: v for k, v in usable.items() if k != "fields" and not getattr(contact, k)}
    fields = {k: v for k, v in (usable.get("fields") or {}).items()
              if k not in (contact.fields or {})}
    if fields:
        changes["fields"] = fields
    if changes:
        contacts.update_contact(db, contact.id, changes)
    return contact, False


def may_grant(db: Session, contact: Contact, channel: Channel) -> bool:
    """False when the contact revoked this channel or its address is suppressed there."""
    if getattr(contact, consent.CONSENT_COLUMN[channel]) == ConsentStatus.REVOKED.value:
        return False
    return consent.suppression_for(db, channel, consent.address_for(contact, channel)) is None


def evidence(page: ActionPage, text: str, ip: str | None, when: Any) -> dict[str, Any]:
    """Consent evidence: the exact text shown, the page, the IP and the time."""
    return {"text": text, "page": page.slug, "ip": ip, "time": when.isoformat()}


def _is_repeat(db: Session, page_id: int, contact_id: int) -> bool:
    return db.scalar(sa.select(Submission.id).where(
        Submission.page_id == page_id, Submission.contact_id == contact_id,
        Submission.counted.is_(True), Submission.created_at >= utcnow() - REPEAT_WINDOW
    ).limit(1)) is not None


def _consents(db: Session, page: ActionPage, contact: Contact, entry: Entry, ip: str | None,
              result: Result, submission: Submission) -> None:
    from outreach.actions import jobs

    now = submission.created_at
    if entry.email_consent and page.email_consent_text and may_grant(db, contact, Channel.EMAIL):
        if page.double_opt_in and contact.email_consent != ConsentStatus.GRANTED.value:
            result.jobs.append(("email", jobs.send_optin_email, (submission.id,)))
        else:
            consent.record_consent(db, contact, Channel.EMAIL, ConsentStatus.GRANTED, "form",
                                   evidence(page, page.email_consent_text, ip, now))
    if entry.sms_consent and page.sms_consent_text and may_grant(db, contact, Channel.SMS):
        consent.record_consent(db, contact, Channel.SMS, ConsentStatus.GRANTED, "form",
                               evidence(page, page.sms_consent_text, ip, now))


def _letters(db: Session, page: ActionPage, contact: Contact | None, entry: Entry,
             submission: Submission, result: Result) -> int:
    """Write the supporter's letters (within the cap per target); return how many."""
    from outreach.actions import jobs

    if page.kind != PageKind.LETTER.value or contact is None:
        return 0
    flagged = abuse.flagged_words(entry.letter_subject, entry.letter_body)
    signature = ", ".join(filter(None, [
        " ".join(filter(None, [contact.first_name, contact.last_name])), contact.postal_code]))
    written, capped = 0, []
    for target in db.scalars(sa.select(LetterTarget).where(
            LetterTarget.id.in_(entry.target_ids), LetterTarget.page_id == page.id)):
        already = db.scalar(sa.select(sa.func.count()).select_from(Letter).where(
            Letter.page_id == page.id, Letter.contact_id == contact.id,
            Letter.target_id == target.id, Letter.status != LetterStatus.REJECTED.value)) or 0
        if already >= page.max_letters_per_target:
            capped.append(target.id)
            continue
        letter = Letter(page_id=page.id, submission_id=submission.id, contact_id=contact.id,
                        target_id=target.id, subject=entry.letter_subject,
                        body=entry.letter_body, signature=signature[:300],
                        reply_to=contact.email, flagged_words=flagged,
                        status=(LetterStatus.FLAGGED if flagged else LetterStatus.APPROVED).value)
        db.add(letter)
        db.flush()
        written += 1
        if not flagged:
            if page.delivery_mode == DeliveryMode.ONE_BY_ONE.value:
                result.jobs.append(("email", jobs.deliver_letter, (letter.id,)))
            elif page.id not in result.digest_pages:
                result.digest_pages.append(page.id)
    if capped:
        submission.data = {**submission.data, "letters_capped": capped}
    return written


def submit(db: Session, page: ActionPage, entry: Entry, ip: str | None, user_agent: str,
           embed: bool = False) -> Result:
    """Record one supporter's action; the caller commits, then dispatches the result's jobs."""
    from outreach.actions import jobs

    blast_id, message_id, position = resolve_blast(db, entry.token, entry.link_position)
    referrer = referrer_of(db, entry.ref)
    contact_data = {**entry.contact, "fields": dict(entry.answers)}
    contact, created = find_or_create_contact(db, contact_data)
    now = utcnow()
    counted = contact is None or created or not _is_repeat(db, page.id, contact.id)
    data: dict[str, Any] = {"answers": entry.answers, "email_consent": entry.email_consent,
                            "sms_consent": entry.sms_consent}
    if entry.email_consent:
        data["email_consent_text"] = page.email_consent_text
    if entry.sms_consent:
        data["sms_consent_text"] = page.sms_consent_text
    source = source_key(entry.source, blast_id, referrer, embed)
    submission = Submission(
        page_id=page.id, contact_id=contact.id if contact else None, data=data, ip=ip,
        user_agent_hash=hashlib.sha256(user_agent.encode()).hexdigest() if user_agent else None,
        source=source, ref=entry.ref, referrer_contact_id=referrer if referrer != (
            contact.id if contact else None) else None,
        blast_id=blast_id, message_id=message_id, link_position=position, counted=counted,
        new_contact=created, created_at=now)
    db.add(submission)
    db.flush()
    result = Result(submission.id, contact.id if contact else None)
    if contact is not None:
        _consents(db, page, contact, entry, ip, result, submission)
        if page.list_id is not None:
            contacts.add_to_lists(db, contact.id, [page.list_id])
        contact.last_acted_at = now
    letters = _letters(db, page, contact, entry, submission, result)
    stats.bump(db, page.id, source, submissions=int(counted), new_contacts=int(created),
               letters=letters)
    if counted:
        stats.bump_page(db, page.id, signature_count=1)
    if contact is not None and (page.autoresponse_email_template_id
                                or page.autoresponse_sms_template_id):
        result.jobs.append(("email", jobs.send_autoresponse, (submission.id,)))
    db.flush()
    return result


def keyword_join(db: Session, page: ActionPage, from_number: str, to_number: str,
                 word: str) -> str | None:
    """A supporter texted the page's keyword: SMS consent, the list, a submission, a welcome."""
    try:
        phone = normalize_phone(from_number)
    except InvalidAddress:
        return None
    contact, created = find_or_create_contact(db, {"phone": phone})
    if contact is None:
        return None  # an erased contact's number: nothing is stored about them
    if not may_grant(db, contact, Channel.SMS):
        return "You opted out of our texts earlier. Reply START to get them again."
    now = utcnow()
    if contact.sms_consent != ConsentStatus.GRANTED.value:
        consent.record_consent(db, contact, Channel.SMS, ConsentStatus.GRANTED, "keyword", {
            "keyword": word, "page": page.slug, "to": to_number, "time": now.isoformat()})
    if page.list_id is not None:
        contacts.add_to_lists(db, contact.id, [page.list_id])
    counted = created or not _is_repeat(db, page.id, contact.id)
    db.add(Submission(page_id=page.id, contact_id=contact.id, data={"keyword": word},
                      source="sms-keyword", counted=counted, new_contact=created,
                      created_at=now))
    contact.last_acted_at = now
    stats.bump(db, page.id, "sms-keyword", submissions=int(counted), new_contacts=int(created))
    if counted:
        stats.bump_page(db, page.id, signature_count=1)
    db.flush()
    return welcome_text(page)
