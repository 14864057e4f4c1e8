"""Action pages: create and edit them, look them up, letter targets, SMS keyword join, metrics."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.actions import stats
from outreach.actions.models import ActionPage, DeliveryMode, LetterTarget, PageKind
from outreach.contacts.models import ContactList
from outreach.contacts.normalize import InvalidAddress, normalize_email
from outreach.content.models import MessageTemplate
from outreach.exceptions import Conflict, NotFound, ValidationError

FIELD_NAMES = ("first_name", "last_name", "email", "phone", "postal_code")
MODES = ("hidden", "optional", "required")
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "first_name": {"mode": "required", "label": "First name"},
    "last_name": {"mode": "optional", "label": "Last name"},
    "email": {"mode": "required", "label": "Email"},
    "phone": {"mode": "optional", "label": "Mobile phone"},
    "postal_code": {"mode": "optional", "label": "ZIP code"},
}
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
KEYWORD = re.compile(r"[A-Z0-9]{2,20}")
QUESTION_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
RTL = {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ku-arab", "ps", "sd", "syr", "ug",
       "ur", "yi"}
RTL_SCRIPTS = {"arab", "hebr", "thaa", "syrc", "nkoo", "adlm", "rohg"}
# Twilio's own keywords (PROVIDERS.md): a page may not claim them.
RESERVED_KEYWORDS = set("STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT START YES UNSTOP "
                        "HELP INFO".split())
LIMITS = {"title": 200, "intro": 10000, "thank_you_text": 5000, "email_consent_text": 2000,
          "sms_consent_text": 2000, "letter_subject": 200, "letter_body": 10000,
          "welcome_sms": 600, "button_text": 100, "image_url": 2000, "redirect_url": 2000}


def text_direction(language: str) -> str:
    """"rtl" for languages and scripts written right to left, else "ltr"."""
    parts = (language or "").lower().split("-")
    if parts[0] in RTL or "-".join(parts[:2]) in RTL:
        return "rtl"
    return "rtl" if any(part in RTL_SCRIPTS for part in parts[1:]) else "ltr"


def get_page(db: Session, page_id: int) -> ActionPage:
    """A page by id, or NotFound."""
    page = db.get(ActionPage, page_id)
    if page is None:
        raise NotFound(f"No action page {page_id}")
    return page


def page_by_slug(db: Session, slug: str, published_only: bool = True) -> ActionPage:
    """A page by its slug (published ones only, unless staff preview it), or NotFound."""
    page = db.scalar(sa.select(ActionPage).where(ActionPage.slug == slug.lower()))
    if page is None or (published_only and not page.published):
        raise NotFound("No such page")
    return page


def list_pages(db: Session) -> list[ActionPage]:
    """Every action page, newest first."""
    return list(db.scalars(sa.select(ActionPage).order_by(ActionPage.id.desc())))


def field_config(page: ActionPage) -> dict[str, Any]:
    """The page's fields with defaults filled in (each with a mode and a label)."""
    config = page.fields or {}
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        given = config.get(name) or {}
        mode = given.get("mode") if given.get("mode") in MODES else DEFAULT_FIELDS[name]["mode"]
        out[name] = {"mode": mode, "label": given.get("label") or DEFAULT_FIELDS[name]["label"]}
    out["questions"] = list(config.get("questions") or [])
    return out


def active_targets(db: Session, page_id: int) -> list[LetterTarget]:
    """A letter page's current targets, in order."""
    return list(db.scalars(sa.select(LetterTarget).where(
        LetterTarget.page_id == page_id, LetterTarget.active.is_(True))
        .order_by(LetterTarget.position, LetterTarget.id)))


def _text(data: dict[str, Any], key: str, errors: dict[str, str]) -> str:
    value = data.get(key)
    value = "" if value is None else value
    if not isinstance(value, str):
        errors[key] = "must be text"
        return ""
    value = value.replace("\r\n", "\n").strip()
    if key in LIMITS and len(value) > LIMITS[key]:
        errors[key] = f"at most {LIMITS[key]} characters"
    return value


def _url(value: str, key: str, errors: dict[str, str], https_only: bool = False
         ) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.netloc:
        errors[key] = "an https:// address" if https_only else "an http:// or https:// address"
    return value


def _fields(raw: Any, errors: dict[str, str]) -> dict[str, Any]:
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for name in FIELD_NAMES:
        given = raw.get(name) or {}
        mode = given.get("mode", DEFAULT_FIELDS[name]["mode"])
        if mode not in MODES:
            errors[f"field_{name}"] = "hidden, optional or required"
        label = str(given.get("label") or "").strip()[:200] or DEFAULT_FIELDS[name]["label"]
        out[name] = {"mode": mode, "label": label}
    if out["email"]["mode"] == "hidden" and out["phone"]["mode"] == "hidden":
        errors["field_email"] = "show the email or the phone field: a contact needs an address"
    questions, keys = [], set()
    for question in raw.get("questions") or []:
        key, label = str(question.get("key", "")), str(question.get("label", "")).strip()
        if not QUESTION_KEY.fullmatch(key) or key in keys or not label or len(label) > 300:
            errors["questions"] = (f"question {key or label!r}: a unique key of lower-case "
                                   "letters, digits and _, and a label of at most 300 characters")
            continue
        keys.add(key)
        questions.append({"key": key, "label": label, "required": bool(question.get("required"))})
    out["questions"] = questions
    return out


def _targets(raw: Any, errors: dict[str, str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in raw or []:
        name = str(item.get("name", "")).strip()
        try:
            email = normalize_email(str(item.get("email", "")))
        except InvalidAddress as exc:
            errors["targets"] = f"{name or 'a target'}: {exc}"
            continue
        if not name or len(name) > 200:
            errors["targets"] = f"{email}: a name of at most 200 characters is required"
            continue
        out.append((name, email))
    return out


def clean_page(db: Session, data: dict[str, Any], page_id: int | None) -> dict[str, Any]:
    """Validate a page's settings; a ValidationError names every bad field."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {k: _text(data, k, errors) for k in LIMITS}
    clean["slug"] = _text(data, "slug", errors).lower()
    if not SLUG.fullmatch(clean["slug"]):
        errors["slug"] = "2 to 80 lower-case letters, digits and dashes"
    elif db.scalar(sa.select(ActionPage.id).where(ActionPage.slug == clean["slug"],
                                                  ActionPage.id != (page_id or 0))):
        errors["slug"] = "another page uses this address"
    clean["kind"] = data.get("kind") or PageKind.SIGNUP.value
    if clean["kind"] not in {k.value for k in PageKind}:
        errors["kind"] = "signup, petition or letter"
    if not clean["title"]:
        errors["title"] = "required"
    clean["language"] = _text(data, "language", errors) or "en"
    if not LANGUAGE.fullmatch(clean["language"]):
        errors["language"] = "a language tag such as en, es, ar or pt-BR"
    clean["image_url"] = _url(clean["image_url"], "image_url", errors, https_only=True)
    clean["redirect_url"] = _url(clean["redirect_url"], "redirect_url", errors)
    clean["fields"] = _fields(data.get("fields"), errors)
    for key in ("share_step", "double_opt_in", "published"):
        clean[key] = bool(data.get(key))
    for key, model, channel in (("list_id", ContactList, None),
                                ("autoresponse_email_template_id", MessageTemplate, "email"),
                                ("autoresponse_sms_template_id", MessageTemplate, "sms")):
        value = data.get(key)
        row = db.get(model, value) if isinstance(value, int) else None
        if value is not None and (row is None or (channel and row.channel != channel)):
            errors[key] = "choose one from the list"
        clean[key] = value
    goal = data.get("petition_goal")
    if goal is not None and (not isinstance(goal, int) or goal < 1):
        errors["petition_goal"] = "a whole number above 0"
    clean["petition_goal"] = goal
    clean["delivery_mode"] = data.get("delivery_mode") or DeliveryMode.ONE_BY_ONE.value
    if clean["delivery_mode"] not in {m.value for m in DeliveryMode}:
        errors["delivery_mode"] = "one by one or a daily digest"
    cap = data.get("max_letters_per_target", 1)
    if not isinstance(cap, int) or not 1 <= cap <= 100:
        errors["max_letters_per_target"] = "a whole number from 1 to 100"
    clean["max_letters_per_target"] = cap
    keyword = (_text(data, "keyword", errors) or "").upper() or None
    if keyword and (not KEYWORD.fullmatch(keyword) or keyword in RESERVED_KEYWORDS):
        errors["keyword"] = "2 to 20 letters or digits, not STOP, START, HELP or the like"
    elif keyword and db.scalar(sa.select(ActionPage.id).where(
            ActionPage.keyword == keyword, ActionPage.id != (page_id or 0))):
        errors["keyword"] = "another page uses this keyword"
    clean["keyword"] = keyword
    clean["targets"] = _targets(data.get("targets"), errors)
    if clean["kind"] == PageKind.LETTER.value and not clean["targets"] and "targets" not in errors:
        errors["targets"] = "a letter page needs at least one target"
    if clean["kind"] == PageKind.LETTER.value and not clean["letter_subject"]:
        errors["letter_subject"] = "suggest a subject"
    if errors:
        raise ValidationError("Invalid action page", errors)
    return clean


def save_page(db: Session, data: dict[str, Any], page_id: int | None = None,
              actor_id: int | None = None) -> ActionPage:
    """Create a page or change one, with its letter targets."""
    clean = clean_page(db, data, page_id)
    page = get_page(db, page_id) if page_id is not None else ActionPage(created_by_id=actor_id)
    targets = clean.pop("targets")
    for key, value in clean.items():
        setattr(page, key, value)
    db.add(page)
    try:
        db.flush()
    except sa.exc.IntegrityError:
        raise Conflict("Another page took this address or keyword meanwhile") from None
    set_targets(db, page.id, targets)
    return page


def set_targets(db: Session, page_id: int, targets: Sequence[tuple[str, str]]) -> None:
    """Make these the page's targets: matched by email, others kept but inactive."""
    existing = {t.email: t for t in db.scalars(
        sa.select(LetterTarget).where(LetterTarget.page_id == page_id))}
    for position, (name, email) in enumerate(targets):
        row = existing.pop(email, None) or LetterTarget(page_id=page_id, email=email)
        row.name, row.position, row.active = name, position, True
        db.add(row)
    for row in existing.values():
        row.active = False
    db.flush()


def share_links(page: ActionPage, base_url: str, code: str | None) -> dict[str, Any]:
    """The page's address with the supporter's referral code, and links to share it."""
    url = f"{base_url}/a/{page.slug}" + (f"?{urlencode({'ref': code})}" if code else "")
    text = page.title
    return {"url": url, "links": [
        ("Email", "mailto:?" + urlencode({"subject": text, "body": f"{text}\n{url}"},
                                         quote_via=quote)),
        ("WhatsApp", "https://wa.me/?" + urlencode({"text": f"{text} {url}"})),
        ("Facebook", "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url})),
        ("X", "https://twitter.com/intent/tweet?" + urlencode({"text": text, "url": url})),
    ]}


def welcome_text(page: ActionPage) -> str:
    """The keyword's welcome reply, always saying how to stop."""
    text = page.welcome_sms.strip() or f"Thanks for joining {page.title}!"
    if "STOP" not in text.upper():
        text = f"{text} Reply STOP to opt out, HELP for help."
    return text


def handle_keyword(db: Session, from_number: str, to_number: str, body: str) -> str | None:
    """An inbound text naming a page's keyword: SMS consent, list, reply; None if no keyword."""
    from outreach.actions.submit import keyword_join

    word = (body or "").strip(string.whitespace + string.punctuation).upper()
    if not KEYWORD.fullmatch(word) or word in RESERVED_KEYWORDS:
        return None
    page = db.scalar(sa.select(ActionPage).where(ActionPage.keyword == word,
                                                 ActionPage.published.is_(True)))
    if page is None:
        return None
    return keyword_join(db, page, from_number, to_number, word)


def actions_by_blast(db: Session, blast_id: int) -> int:
    """Actions taken (counted submissions) by supporters a blast brought to an action page."""
    return stats.actions_by_blast(db, blast_id)


def actions_by_blasts(db: Session, blast_ids: Sequence[int]) -> dict[int, int]:
    """Actions taken per blast, for a list of blasts in one query."""
    return stats.actions_by_blasts(db, blast_ids)
