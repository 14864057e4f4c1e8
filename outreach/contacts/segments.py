"""Segments: saved rules over contacts, checked when saved and compiled to one SQL condition.

Rules are a tree: {"match": "all"|"any", "rules": [rule or group, ...]} where a rule is
{"field": ..., "op": ..., "value": ...}. Nothing is ever evaluated row by row in Python.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from outreach.contacts.models import Contact, ContactTag, ListMember, Segment, Tag
from outreach.exceptions import Conflict, NotFound, ValidationError

TEXT_FIELDS = ("email", "phone", "first_name", "last_name", "postal_code", "timezone", "region")
TEXT_OPS = ("eq", "neq", "contains", "starts_with", "empty", "not_empty")
ENGAGEMENT = {"opened": "last_opened_at", "clicked": "last_clicked_at", "acted": "last_acted_at"}
ENGAGEMENT_OPS = ("within_days", "not_within_days", "never", "ever")
FIELD_OPS: dict[str, tuple[str, ...]] = {
    "list": ("in", "not_in"), "tag": ("has", "not_has"),
    "consent_email": ("eq", "neq"), "consent_sms": ("eq", "neq"),
    "created_at": ("before", "after", "within_days"),
    **{f: TEXT_OPS for f in TEXT_FIELDS}, **{f: ENGAGEMENT_OPS for f in ENGAGEMENT},
}
CUSTOM_OPS = ("eq", "neq", "contains", "empty", "not_empty", "gt", "lt")
MAX_DEPTH, MAX_RULES = 4, 100


def validate_rules(rules: Any, depth: int = 0) -> dict[str, Any]:
    """Check a rule tree; raise ValidationError naming the first bad part."""
    if not isinstance(rules, dict) or rules.get("match") not in ("all", "any"):
        raise ValidationError("Invalid rules", {"rules": 'a group needs "match": all or any'})
    items = rules.get("rules")
    if not isinstance(items, list) or len(items) > MAX_RULES or depth > MAX_DEPTH:
        raise ValidationError("Invalid rules", {"rules": f"a list of at most {MAX_RULES} rules, "
                                                         f"nested at most {MAX_DEPTH} deep"})
    for rule in items:
        if isinstance(rule, dict) and "match" in rule:
            validate_rules(rule, depth + 1)
        else:
            _validate_rule(rule)
    return rules


def _validate_rule(rule: Any) -> None:
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
        raise ValidationError("Invalid rule", {"rules": "each rule needs a field"})
    field, op, value = rule["field"], rule.get("op"), rule.get("value")
    if field.startswith("custom:") and len(field) > 7:
        allowed = CUSTOM_OPS
    elif field in FIELD_OPS:
        allowed = FIELD_OPS[field]
    else:
        raise ValidationError("Invalid rule", {"rules": f"unknown field {field!r}"})
    if op not in allowed:
        raise ValidationError("Invalid rule", {"rules": f"{field} takes {', '.join(allowed)}"})
    if op in ("empty", "not_empty", "never", "ever"):
        return
    if field == "list" and not isinstance(value, int):
        raise ValidationError("Invalid rule", {"rules": "a list rule needs a list id"})
    if op in ("within_days", "not_within_days") and not (isinstance(value, int) and value >= 0):
        raise ValidationError("Invalid rule", {"rules": f"{op} needs a number of days"})
    if op in ("before", "after"):
        try:
            date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError(
                "Invalid rule", {"rules": f"{op} needs a YYYY-MM-DD date"}) from None
    if op in ("gt", "lt"):
        try:
            float(value)
        except (TypeError, ValueError):
            raise ValidationError("Invalid rule", {"rules": f"{op} needs a number"}) from None
    if field.startswith("consent_") and value not in ("granted", "revoked", "none"):
        raise ValidationError("Invalid rule", {"rules": "consent is granted, revoked or none"})
    if value is None or isinstance(value, (dict, list)):
        raise ValidationError("Invalid rule", {"rules": f"{field} {op} needs a value"})


def compile_rules(rules: dict[str, Any], now: datetime | None = None) -> ColumnElement[bool]:
    """The SQL condition on contacts that a (validated) rule tree describes."""
    now = now or datetime.now(UTC)
    parts = [compile_rules(r, now) if "match" in r else _compile_rule(r, now)
             for r in rules["rules"]]
    if not parts:
        return sa.true()
    return sa.and_(*parts) if rules["match"] == "all" else sa.or_(*parts)


def _compile_rule(rule: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    field, op, value = rule["field"], rule["op"], rule.get("value")
    if field == "list":
        members = sa.select(ListMember.contact_id).where(ListMember.list_id == value)
        return Contact.id.in_(members) if op == "in" else Contact.id.not_in(members)
    if field == "tag":
        tagged = sa.select(ContactTag.contact_id).join(Tag).where(Tag.name == value)
        return Contact.id.in_(tagged) if op == "has" else Contact.id.not_in(tagged)
    if field.startswith("consent_"):
        column = getattr(Contact, f"{field.removeprefix('consent_')}_consent")
        return column == value if op == "eq" else column != value
    if field in ENGAGEMENT:
        column = getattr(Contact, ENGAGEMENT[field])
        if op == "never":
            return column.is_(None)
        if op == "ever":
            return column.is_not(None)
        since = now - timedelta(days=value)
        return column >= since if op == "within_days" else sa.or_(column.is_(None), column < since)
    if field == "created_at":
        if op == "within_days":
            return Contact.created_at >= now - timedelta(days=value)
        day = datetime.combine(date.fromisoformat(str(value)), datetime.min.time(), tzinfo=UTC)
        return Contact.created_at < day if op == "before" else Contact.created_at >= day
    if field.startswith("custom:"):
        column = Contact.fields[field.removeprefix("custom:")].as_string()
    else:
        column = getattr(Contact, field)
    return _text_condition(column, op, value)


def _text_condition(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "empty":
        return sa.or_(column.is_(None), column == "")
    if op == "not_empty":
        return sa.and_(column.is_not(None), column != "")
    text = str(value).lower()
    lowered = sa.func.lower(column)
    if op == "eq":
        return lowered == text
    if op == "neq":
        return sa.or_(column.is_(None), lowered != text)
    if op == "contains":
        return lowered.contains(text, autoescape=True)
    if op == "starts_with":
        return lowered.startswith(text, autoescape=True)
    number = float(value)  # gt / lt compare custom fields as numbers; non-numbers never match
    as_number = sa.case((column.regexp_match(r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"),
                         sa.cast(column, sa.Float)))
    return as_number > number if op == "gt" else as_number < number


def get_segment(db: Session, segment_id: int) -> Segment:
    """A segment by id, or NotFound."""
    segment = db.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"No segment {segment_id}")
    return segment


def delete_segment(db: Session, segment_id: int) -> None:
    """Delete a saved segment."""
    db.delete(get_segment(db, segment_id))


def segment_condition(db: Session, segment_id: int) -> ColumnElement[bool]:
    """The SQL condition of a saved segment."""
    return compile_rules(get_segment(db, segment_id).rules)


def count_matching(db: Session, rules: dict[str, Any]) -> int:
    """How many contacts a rule tree matches (one COUNT query)."""
    condition = compile_rules(validate_rules(rules))
    return int(db.scalar(sa.select(sa.func.count()).select_from(Contact).where(condition)) or 0)


def save_segment(db: Session, name: str, rules: Any, segment_id: int | None = None) -> Segment:
    """Create or update a segment after checking its name and rules."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("Invalid segment", {"name": "required, at most 200 characters"})
    validate_rules(rules)
    clash = db.scalar(sa.select(Segment.id).where(Segment.name == name))
    if clash is not None and clash != segment_id:
        raise Conflict(f"A segment named {name!r} already exists")
    segment = get_segment(db, segment_id) if segment_id else Segment()
    segment.name, segment.rules = name, rules
    db.add(segment)
    db.flush()
    return segment
