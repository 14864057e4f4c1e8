"""The public form of an action page: its signed form token and reading what a supporter sent.

Public pages must work inside another site's iframe, where browsers withhold the SameSite=Lax
session cookie that Flask-WTF's CSRF token lives in. So the form carries its own signed,
time-limited token naming the page and a digest of the consent texts shown; the submit view
also refuses a cross-site Origin. A changed consent text makes the form render again, so the
consent evidence always quotes the text the supporter actually saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from outreach.actions.models import ActionPage, LetterTarget, PageKind
from outreach.actions.service import field_config
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone

FORM_SALT = "outreach-action-form"
FORM_MAX_AGE = 2 * 24 * 3600
MAX_LENGTHS = {"first_name": 200, "last_name": 200, "email": 320, "phone": 40,
               "postal_code": 20, "answer": 1000, "letter_subject": 200, "letter_body": 5000,
               "source": 60, "ref": 40, "t": 40}
MAX_FORM_BYTES = 64 * 1024


class FormExpired(Exception):
    """The form's token is missing, forged, too old, or the page's consent texts changed."""


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def consent_digest(page: ActionPage) -> str:
    """A short digest of the consent texts a form shows."""
    text = f"{page.email_consent_text}\x00{page.sms_consent_text}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def form_token(page: ActionPage) -> str:
    """The signed token a page's form carries."""
    return _serializer(FORM_SALT).dumps({"p": page.id, "c": consent_digest(page)})


def check_form_token(page: ActionPage, token: str | None) -> None:
    """Raise FormExpired unless the token was made by this page's current form."""
    try:
        data = _serializer(FORM_SALT).loads(token or "", max_age=FORM_MAX_AGE)
    except (SignatureExpired, BadSignature):
        raise FormExpired("This form expired. Please check it and send it again.") from None
    if not isinstance(data, dict) or data.get("p") != page.id:
        raise FormExpired("This form expired. Please check it and send it again.")
    if data.get("c") != consent_digest(page):
        raise FormExpired("The consent wording on this page changed. Please read it and send "
                          "the form again.")


@dataclass
class Entry:
    """What a supporter sent, cleaned: contact fields, answers, consents, letter, attribution."""

    contact: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    email_consent: bool = False
    sms_consent: bool = False
    letter_subject: str = ""
    letter_body: str = ""
    target_ids: list[int] = field(default_factory=list)
    token: str | None = None
    link_position: int | None = None
    source: str | None = None
    ref: str | None = None


def _value(form: Any, name: str, errors: dict[str, str], limit_key: str | None = None) -> str:
    value = (form.get(name) or "").replace("\r\n", "\n").strip()
    limit = MAX_LENGTHS[limit_key or name]
    if len(value) > limit:
        errors[name] = f"Please use at most {limit} characters."
    return value


def attribution(form: Any) -> dict[str, Any]:
    """The t/l/source/ref parameters (query or hidden fields), trimmed to their limits."""
    position = (form.get("l") or "").strip()
    return {"token": (form.get("t") or "").strip()[:40] or None,
            "link_position": int(position) if position.isdigit() and len(position) < 6 else None,
            "source": (form.get("source") or "").strip()[:60] or None,
            "ref": (form.get("ref") or "").strip()[:40] or None}


def read_entry(page: ActionPage, form: Any, targets: list[LetterTarget]
               ) -> tuple[Entry, dict[str, str]]:
    """Clean a submitted form; the errors name each field that needs fixing."""
    errors: dict[str, str] = {}
    config = field_config(page)
    entry = Entry(**attribution(form))
    region = current_app.config.get("DEFAULT_REGION", "US")
    for name in ("first_name", "last_name", "email", "phone", "postal_code"):
        if config[name]["mode"] == "hidden":
            continue
        value = _value(form, name, errors)
        if name in errors:
            continue
        if not value:
            if config[name]["mode"] == "required":
                errors[name] = "This field is required."
            continue
        try:
            if name == "email":
                value = normalize_email(value)
            elif name == "phone":
                value = normalize_phone(value, region)
        except InvalidAddress:
            errors[name] = ("Please enter a valid email address." if name == "email"
                            else "Please enter a valid phone number.")
            continue
        entry.contact[name] = value
    if not errors and not entry.contact.get("email") and not entry.contact.get("phone"):
        errors["email" if config["email"]["mode"] != "hidden" else "phone"] = (
            "Please give an email address or a phone number.")
    for question in config["questions"]:
        name = f"q_{question['key']}"
        value = _value(form, name, errors, "answer")
        if value:
            entry.answers[question["key"]] = value
        elif question.get("required") and name not in errors:
            errors[name] = "This field is required."
    entry.email_consent = bool(form.get("email_consent")) and bool(entry.contact.get("email"))
    entry.sms_consent = bool(form.get("sms_consent")) and bool(entry.contact.get("phone"))
    if page.kind == PageKind.LETTER.value:
        entry.letter_subject = _value(form, "letter_subject", errors)
        entry.letter_body = _value(form, "letter_body", errors)
        if not entry.letter_subject and "letter_subject" not in errors:
            errors["letter_subject"] = "Please give your letter a subject."
        if not entry.letter_body and "letter_body" not in errors:
            errors["letter_body"] = "Please write your letter."
        active = {t.id for t in targets}
        if len(targets) == 1:
            entry.target_ids = [targets[0].id]
        else:
            chosen = {int(v) for v in form.getlist("target") if v.isdigit()}
            entry.target_ids = [t.id for t in targets if t.id in chosen & active]
            if not entry.target_ids:
                errors["target"] = "Please choose at least one recipient."
    return entry, errors


def form_values(page: ActionPage, form: Any | None) -> dict[str, Any]:
    """What the form shows: what was sent (to correct it), or the page's suggestions."""
    if form is None:
        return {"letter_subject": page.letter_subject, "letter_body": page.letter_body,
                "target": None}
    values = {k: form.get(k, "") for k in form}
    values["target"] = {int(v) for v in form.getlist("target") if v.isdigit()}
    return values
