"""Segment pages: saved segments with live counts, and the rule builder with a preview count."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import requires
from outreach.contacts import segments as segment_rules
from outreach.contacts.models import ContactList, Segment, Tag
from outreach.contacts.views import bp, error_text, list_names
from outreach.exceptions import Conflict, ValidationError

MIN_ROWS = 8  # rows the builder shows without JavaScript
NO_VALUE_OPS = ("empty", "not_empty", "never", "ever")
NUMBER_OPS = ("within_days", "not_within_days")
FIELD_LABELS: dict[str, str] = {
    "email": "Email", "phone": "Phone", "first_name": "First name", "last_name": "Last name",
    "postal_code": "Postal code", "timezone": "Time zone", "region": "State",
    "list": "List", "tag": "Tag", "consent_email": "Email consent", "consent_sms": "SMS consent",
    "created_at": "Added", "opened": "Opened an email", "clicked": "Clicked a link",
    "acted": "Took action", "custom": "Custom field (name it)",
}
OP_LABELS: dict[str, str] = {
    "eq": "is", "neq": "is not", "contains": "contains", "starts_with": "starts with",
    "empty": "is empty", "not_empty": "is not empty", "in": "is a member of",
    "not_in": "is not a member of", "has": "has", "not_has": "does not have",
    "before": "before (YYYY-MM-DD)", "after": "on or after (YYYY-MM-DD)",
    "within_days": "within the last … days", "not_within_days": "not within the last … days",
    "never": "never", "ever": "ever", "gt": "greater than", "lt": "less than",
}


def _builder_ops() -> dict[str, list[str]]:
    """Operators per field choice, for the builder's selects and its script."""
    ops = {field: list(allowed) for field, allowed in segment_rules.FIELD_OPS.items()}
    ops["custom"] = list(segment_rules.CUSTOM_OPS)
    return ops


def _typed_value(session: Any, field: str, op: str, value: str) -> Any:
    """A row's value as the rules need it: a list id, a number of days, or text."""
    if field == "list":
        if value.isdigit():
            return int(value)
        found = session.scalar(sa.select(ContactList.id).where(ContactList.name == value))
        if found is None:
            raise ValueError(f"no list named “{value}”")
        return found
    if op in NUMBER_OPS:
        if not value.isdigit():
            raise ValueError("needs a whole number of days")
        return int(value)
    return value


def rules_from_form(session: Any, form: MultiDict[str, str]) -> dict[str, Any]:
    """The rule tree a builder form describes: its JSON box if filled in, else its rows."""
    raw = form.get("rules_json", "").strip()
    if raw:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValidationError("The JSON rules cannot be read",
                                  {"rules_json": str(exc)}) from None
    indexes = sorted({int(key[6:]) for key in form if key.startswith("field-")
                      and key[6:].isdigit()})
    rules: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for i in indexes:
        field, op = form.get(f"field-{i}", "").strip(), form.get(f"op-{i}", "").strip()
        if not field:
            continue
        if field == "custom":
            key = form.get(f"key-{i}", "").strip()
            if not key:
                errors[f"row-{i}"] = "name the custom field"
                continue
            field = f"custom:{key}"
        rule: dict[str, Any] = {"field": field, "op": op}
        if op not in NO_VALUE_OPS:
            value = form.get(f"value-{i}", "").strip()
            if not value:
                errors[f"row-{i}"] = "needs a value"
                continue
            try:
                rule["value"] = _typed_value(session, field, op, value)
            except ValueError as exc:
                errors[f"row-{i}"] = str(exc)
                continue
        rules.append(rule)
    if errors:
        raise ValidationError("Check the highlighted conditions", errors)
    return {"match": "any" if form.get("match") == "any" else "all", "rules": rules}


def count_rules(session: Any, rules: Any) -> int:
    """How many contacts match; rules that only fail in SQL become a ValidationError."""
    try:
        return segment_rules.count_matching(session, rules)
    except (ValueError, TypeError, sa.exc.DBAPIError):
        session.rollback()
        raise ValidationError("These rules cannot be counted", {
            "rules": "greater than and less than need numbers, and the field's values too"}
        ) from None


def _rows_for(session: Any, rules: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """A saved rule tree as builder rows, or as JSON text when it has nested groups."""
    items = rules.get("rules") or []
    if any(isinstance(r, dict) and "match" in r for r in items):
        return [], json.dumps(rules, indent=2)
    names = list_names(session)
    rows = []
    for rule in items:
        field, value = str(rule.get("field", "")), rule.get("value")
        key = ""
        if field.startswith("custom:"):
            field, key = "custom", field.removeprefix("custom:")
        if field == "list" and isinstance(value, int) and value in names:
            value = names[value]
        rows.append({"field": field, "key": key, "op": str(rule.get("op", "")),
                     "value": "" if value is None else str(value)})
    return rows, ""


def _form_rows(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The submitted rows, to show the form again as it was."""
    indexes = sorted({int(k[6:]) for k in form if k.startswith("field-") and k[6:].isdigit()})
    return [{"field": form.get(f"field-{i}", ""), "key": form.get(f"key-{i}", ""),
             "op": form.get(f"op-{i}", ""), "value": form.get(f"value-{i}", "")}
            for i in indexes if form.get(f"field-{i}")]


def _builder(segment: Segment | None, status: int = 200, **state: Any) -> Any:
    """Render the builder with its state: rows, match, JSON, errors, count."""
    session = db.session()
    rows = state.pop("rows")
    blank = {"field": "", "key": "", "op": "", "value": ""}
    rows = rows + [blank] * max(2, MIN_ROWS - len(rows))
    return render_template(
        "contacts/segment.html", segment=segment, rows=rows, ops=_builder_ops(),
        field_labels=FIELD_LABELS, op_labels=OP_LABELS, no_value_ops=NO_VALUE_OPS,
        all_ops=list(OP_LABELS), lists=list_names(session),
        tags=session.scalars(sa.select(Tag.name).order_by(Tag.name)).all(), **state), status


@bp.get("/segments")
@requires(Role.VIEWER)
def segments() -> Any:
    """Saved segments with how many contacts each matches now."""
    session = db.session()
    rows = []
    for segment in session.scalars(sa.select(Segment).order_by(Segment.name)):
        try:
            count: int | None = count_rules(session, segment.rules)
        except ValidationError:
            count = None
        rows.append((segment, count))
    return render_template("contacts/segments.html", segments=rows)


@bp.get("/segments/new")
@requires(Role.ORGANIZER)
def new_segment() -> Any:
    """An empty builder."""
    return _builder(None, rows=[], match="all", name="", rules_json="", errors={}, count=None)


@bp.get("/segments/<int:segment_id>")
@requires(Role.VIEWER)
def segment(segment_id: int) -> Any:
    """A saved segment in the builder, with its count."""
    session = db.session()
    found = segment_rules.get_segment(session, segment_id)
    rows, rules_json = _rows_for(session, found.rules)
    try:
        count: int | None = count_rules(session, found.rules)
    except ValidationError:
        count = None
    return _builder(found, rows=rows, match=found.rules.get("match", "all"), name=found.name,
                    rules_json=rules_json, errors={}, count=count)


@bp.post("/segments/new", endpoint="create_segment")
@bp.post("/segments/<int:segment_id>")
@requires(Role.ORGANIZER)
def save_segment(segment_id: int | None = None) -> Any:
    """Save the builder (or, with the "Count" button, show the count without saving)."""
    form = request.form
    session = db.session()
    existing = segment_rules.get_segment(session, segment_id) if segment_id else None
    state: dict[str, Any] = {"rows": _form_rows(form), "match": form.get("match", "all"),
                             "name": form.get("name", ""),
                             "rules_json": form.get("rules_json", ""), "count": None}
    try:
        rules = rules_from_form(session, form)
        if form.get("action") == "count":
            return _builder(existing, errors={}, **{**state, "count": count_rules(session, rules)})
        count_rules(session, rules)  # rules that cannot run are refused before saving
        with db.transaction() as tx:
            saved = segment_rules.save_segment(tx, form.get("name", ""), rules, segment_id)
    except (ValidationError, Conflict) as exc:
        session.rollback()
        errors = dict(getattr(exc, "fields", {}))
        return _builder(existing, 422, errors=errors, form_error=error_text(exc), **state)
    flash(f"Segment “{saved.name}” saved.", "success")
    return redirect(url_for("contacts.segment", segment_id=saved.id))


@bp.post("/segments/preview")
@requires(Role.ORGANIZER)
def preview_segment() -> Any:
    """The live count for the builder: {"count": n} or {"error": {...}} (422)."""
    session = db.session()
    try:
        rules = (request.get_json(silent=True) if request.is_json
                 else rules_from_form(session, request.form))
        count = count_rules(session, rules)
    except ValidationError as exc:
        return jsonify({"error": {"code": "invalid", "message": exc.message,
                                  "details": exc.fields}}), 422
    return jsonify({"count": count})
