"""The organizers' page editor: turning its form into `save_page` data, and a page into values.

Targets are written one per line as `Name <email>` (or `Name, email`); custom questions as
`key | Label` with `| required` at the end when an answer is required.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from outreach.actions.models import ActionPage, LetterTarget, PageKind
from outreach.actions.service import FIELD_NAMES, field_config

TEXTS = ("title", "slug", "language", "image_url", "intro", "button_text", "email_consent_text",
         "sms_consent_text", "thank_you_text", "redirect_url", "letter_subject", "letter_body",
         "keyword", "welcome_sms")
FLAGS = ("share_step", "double_opt_in", "published")
IDS = ("list_id", "autoresponse_email_template_id", "autoresponse_sms_template_id")


def _int(value: str | None, errors: dict[str, str], key: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        errors[key] = "a whole number"
        return None
    return int(value)


def parse_targets(text: str, errors: dict[str, str]) -> list[dict[str, str]]:
    """Targets from lines of `Name <email>` or `Name, email`."""
    targets = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if "<" in line:
            name, email = parseaddr(line)
        else:
            name, _, email = line.rpartition(",")
        if not email.strip() or "@" not in email:
            errors["targets"] = f"{line!r}: write Name <email@example.org>"
            continue
        targets.append({"name": name.strip().strip('"'), "email": email.strip()})
    return targets


def parse_questions(text: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    """Questions from lines of `key | Label` or `key | Label | required`."""
    questions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            errors["questions"] = f"{line.strip()!r}: write key | Label (| required)"
            continue
        questions.append({"key": parts[0].lower(), "label": parts[1],
                          "required": len(parts) > 2 and parts[2].lower() == "required"})
    return questions


def form_to_data(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The editor's form as `save_page` data, plus errors only the form can make."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {key: form.get(key, "") for key in TEXTS}
    data.update({key: bool(form.get(key)) for key in FLAGS})
    data.update({key: _int(form.get(key), errors, key) for key in IDS})
    data["kind"] = form.get("kind", PageKind.SIGNUP.value)
    data["petition_goal"] = _int(form.get("petition_goal"), errors, "petition_goal")
    data["max_letters_per_target"] = _int(form.get("max_letters_per_target"), errors,
                                          "max_letters_per_target") or 1
    data["delivery_mode"] = form.get("delivery_mode") or "one_by_one"
    data["fields"] = {name: {"mode": form.get(f"mode_{name}", "hidden"),
                             "label": form.get(f"label_{name}", "").strip()}
                      for name in FIELD_NAMES}
    data["fields"]["questions"] = parse_questions(form.get("questions", ""), errors)
    data["targets"] = parse_targets(form.get("targets", ""), errors)
    return data, errors


def page_values(page: ActionPage | None, targets: list[LetterTarget], kind: str) -> dict[str, Any]:
    """What the editor shows for a page (or a new page of this kind)."""
    if page is None:
        page = ActionPage(kind=kind, language="en", share_step=True, delivery_mode="one_by_one",
                          max_letters_per_target=1, fields={})
    values: dict[str, Any] = {key: getattr(page, key) or "" for key in TEXTS}
    values.update({key: bool(getattr(page, key)) for key in FLAGS})
    values.update({key: getattr(page, key) for key in IDS})
    values.update(kind=kind, petition_goal=page.petition_goal or "",
                  max_letters_per_target=page.max_letters_per_target or 1,
                  delivery_mode=page.delivery_mode or "one_by_one")
    config = field_config(page)
    for name in FIELD_NAMES:
        values[f"mode_{name}"], values[f"label_{name}"] = (config[name]["mode"],
                                                           config[name]["label"])
    values["questions"] = "\n".join(
        f"{q['key']} | {q['label']}" + (" | required" if q.get("required") else "")
        for q in config["questions"])
    values["targets"] = "\n".join(f"{t.name} <{t.email}>" for t in targets)
    return values


def submitted_values(form: Any) -> dict[str, Any]:
    """The editor's values as submitted (to show them again with errors)."""
    values: dict[str, Any] = {key: form.get(key, "") for key in form}
    values.update({key: bool(form.get(key)) for key in FLAGS})
    for key in IDS:
        raw = form.get(key, "")
        values[key] = int(raw) if raw.isdigit() else None
    return values
