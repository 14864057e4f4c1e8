"""The JSON API for metrics: a blast's figures, its recipients by outcome, and the overview."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp
from outreach.api.contacts import limit_arg
from outreach.api.openapi import add_path, error_responses
from outreach.auth import requires
from outreach.blasts.service import get_blast
from outreach.contacts.service import decode_cursor, encode_cursor
from outreach.exceptions import ValidationError
from outreach.metrics import overview as overview_service
from outreach.metrics import recipients as recipients_service
from outreach.metrics import service


@bp.get("/blasts/<int:blast_id>/metrics")
@requires(Role.VIEWER)
def blast_metrics(blast_id: int) -> Any:
    """A blast's figures, human and machine apart (while it sends and after)."""
    session = db.session()
    return jsonify(service.blast_metrics(session, get_blast(session, blast_id)))


@bp.get("/blasts/<int:blast_id>/metrics/recipients")
@requires(Role.VIEWER)
def blast_recipients(blast_id: int) -> Any:
    """A blast's recipients, optionally of one outcome, a page at a time (?limit=, ?cursor=)."""
    session = db.session()
    blast = get_blast(session, blast_id)
    outcome = request.args.get("outcome", "").strip()
    if outcome and outcome not in recipients_service.OUTCOMES:
        raise ValidationError("Invalid outcome", {
            "outcome": f"one of {', '.join(recipients_service.OUTCOMES)}"})
    cursor = request.args.get("cursor", "").strip()
    rows, after = recipients_service.recipients_page(
        session, blast.id, outcome or None, decode_cursor(cursor) if cursor else None,
        limit_arg())
    return jsonify({"data": [recipients_service.recipient_json(r) for r in rows],
                    "next_cursor": encode_cursor(after) if after else None})


@bp.get("/metrics/overview")
@requires(Role.VIEWER)
def metrics_overview() -> Any:
    """Recent blasts side by side, totals over ?days= (1 to 365, default 30), growth per day."""
    raw = request.args.get("days", "").strip()
    days = int(raw) if raw.isdigit() else 0 if raw else 30
    if not 1 <= days <= overview_service.MAX_DAYS:
        raise ValidationError("Invalid days", {"days": "an integer from 1 to 365"})
    return jsonify(overview_service.overview(db.session(), days))


# OpenAPI ------------------------------------------------------------------------------------

INT, NUM = {"type": "integer"}, {"type": ["number", "null"]}
ENGAGEMENT = {"type": "object", "required": ["unique", "total", "machine"], "properties": {
    "unique": {**INT, "description": "People (first human event per message)"},
    "total": {**INT, "description": "Human events"},
    "machine": {**INT, "description": "Machine events (proxies, scanners, honeypot)"}}}
LINK = {"type": "object", "required": ["url", "clicks", "unique"], "properties": {
    "url": {"type": "string"}, "position": INT, "clicks": {**INT, "description": "Human"},
    "unique": INT, "machine": INT}}
FIGURES = {
    "audience": INT, "sent": {**INT, "description": "Accepted by the provider"},
    "delivered": INT, "bounced": INT, "failed": INT, "unknown": INT, "canceled": INT,
    "pending": INT, "unsubscribed": {**INT, "description": "Opt-outs (unsubscribes, STOP)"},
    "spam_reports": INT, "opens": ENGAGEMENT, "clicks": ENGAGEMENT,
    "rate_base": {"type": "string", "enum": ["delivered", "sent"]},
    "rate_denominator": {**INT, "description": "The messages rates are over"},
    "delivery_rate": NUM, "open_rate": NUM, "click_rate": NUM, "click_to_open_rate": NUM,
    "unsubscribe_rate": NUM}
METRICS = {"type": "object", "required": ["sent", "delivered", "bounced", "failed",
                                          "unsubscribed", "spam_reports", "opens", "clicks",
                                          "links"],
           "properties": {
               "blast_id": INT, "name": {"type": "string"}, "channel": {"type": "string"},
               "status": {"type": "string"}, **FIGURES,
               "bounces": {"type": "object", "properties": {"hard": INT, "soft": INT}},
               "links": {"type": "array", "items": LINK}, "honeypot_clicks": INT,
               "sms": {"type": ["object", "null"], "properties": {
                   "segments": INT, "segment_price": {"type": "number"},
                   "currency": {"type": "string"}, "cost": {"type": "number"}}},
               "generated_at": {"type": "string", "format": "date-time"}}}
RECIPIENT = {"type": "object", "properties": {
    "message_id": INT, "address": {"type": "string"}, "contact_id": {"type": ["integer", "null"]},
    "first_name": {"type": ["string", "null"]}, "last_name": {"type": ["string", "null"]},
    "status": {"type": "string"}, "sent_at": {"type": ["string", "null"]},
    "delivered_at": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]},
    "opens": INT, "clicks": INT, "unsubscribed": {"type": "boolean"}}}
BLAST_ID = {"name": "blast_id", "in": "path", "required": True, "schema": INT}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


add_path("/blasts/{blast_id}/metrics", "get", {
    "summary": "A blast's figures: human and machine engagement apart", "tags": ["metrics"],
    "parameters": [BLAST_ID],
    "responses": {"200": _ok(METRICS), **error_responses(401, 403, 404)}})
add_path("/blasts/{blast_id}/metrics/recipients", "get", {
    "summary": "A blast's recipients, filtered by outcome", "tags": ["metrics"],
    "parameters": [BLAST_ID, {"name": "outcome", "in": "query", "schema": {
        "type": "string", "enum": list(recipients_service.OUTCOMES)}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": 1000}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
    "responses": {"200": _ok({"type": "object", "required": ["data", "next_cursor"],
                              "properties": {"data": {"type": "array", "items": RECIPIENT},
                                             "next_cursor": {"type": ["string", "null"]}}}),
                  **error_responses(401, 403, 404, 422)}})
add_path("/metrics/overview", "get", {
    "summary": "Recent blasts, totals over a period, list growth and opt-outs per day",
    "tags": ["metrics"],
    "parameters": [{"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                               "maximum": 365, "default": 30}}],
    "responses": {"200": _ok({"type": "object", "properties": {
        "days": INT, "since": {"type": "string", "format": "date-time"},
        "recent": {"type": "array", "items": {"type": "object", "properties": {
            "id": INT, "name": {"type": "string"}, **FIGURES}}},
        "totals": {"type": "object", "properties": {"blasts": INT, **FIGURES}},
        "growth": {"type": "object", "properties": {
            k: {"type": "array", "items": {"type": "string"} if k == "days" else INT}
            for k in ("days", "contacts", "list_joins", "opt_outs", "suppressions")}},
        "growth_totals": {"type": "object"}}}), **error_responses(401, 403, 422)}})
