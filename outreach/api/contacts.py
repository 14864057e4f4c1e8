"""The JSON API for contacts; shared request helpers for the contacts domain's other modules.

Lists, segments, imports and exports, and suppressions live in their own modules, imported at
the end of this one so that `from outreach.api import contacts` registers every route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request, url_for
from sqlalchemy.orm import Session

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.auth import current_user, requires
from outreach.contacts import consent, service
from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    ContactList,
    Segment,
)
from outreach.exceptions import ValidationError

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


# Helpers shared by the contacts domain's API modules -------------------------------------------

def actor_id() -> int | None:
    """The id of the staff user behind the request."""
    user = current_user()
    return user.id if user is not None else None


def int_arg(name: str) -> int | None:
    """An optional integer query parameter, or a 422 naming it."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"Invalid {name}", {name: "must be an integer id"}) from None


def limit_arg() -> int:
    """The page size from ?limit= (default 100, 1 to 1000), or a 422 naming `limit`."""
    raw = request.args.get("limit", "").strip()
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("Invalid limit", {"limit": f"an integer from 1 to {MAX_LIMIT}"})
    return limit


def page_json(data: Sequence[Any], next_cursor: str | None) -> dict[str, Any]:
    """A page of results in the contract's shape."""
    return {"data": list(data), "next_cursor": next_cursor}


def page_newest_first(session: Session, query: sa.Select[Any], id_column: Any, limit: int,
                      cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of a query ordered by id descending, and the cursor of the next page."""
    if cursor:
        query = query.where(id_column < service.decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (service.encode_cursor(rows[-1].id) if more and rows else None)


def require_existing(session: Session, model: Any, ident: int | None, field: str) -> None:
    """A 422 naming `field` when an id given by the client refers to nothing."""
    if ident is not None and session.get(model, ident) is None:
        raise ValidationError(f"Unknown {field}", {field: f"no {field} {ident}"})


# Contacts ------------------------------------------------------------------------------------

def consent_changes(data: dict[str, Any]) -> tuple[dict[Channel, ConsentStatus], str]:
    """The optional `consent` of a contact body and its required `consent_source`."""
    raw = data.get("consent")
    if raw is None:
        return {}, ""
    if (not isinstance(raw, dict) or not raw
            or any(key not in ("email", "sms") for key in raw)
            or any(value not in ("granted", "revoked") for value in raw.values())):
        raise ValidationError("Invalid consent", {
            "consent": 'an object such as {"email": "granted", "sms": "revoked"}'})
    source = data.get("consent_source")
    if not isinstance(source, str) or not source.strip():
        raise ValidationError("Say where the consent comes from", {
            "consent_source": "required when consent is given"})
    return {Channel(k): ConsentStatus(v) for k, v in raw.items()}, source.strip()


def apply_consent(session: Session, contact: Contact, changes: dict[Channel, ConsentStatus],
                  source_text: str) -> None:
    """Record API consent changes in the ledger; suppressions are never touched."""
    for channel, status in changes.items():
        if status is ConsentStatus.GRANTED and not consent.address_for(contact, channel):
            what = "an email" if channel is Channel.EMAIL else "a phone"
            raise ValidationError("Invalid consent", {
                "consent": f"{channel.value} consent needs {what} on the contact"})
        service.grant_or_revoke(session, contact, channel, status, source="api",
                                evidence={"consent_source": source_text,
                                          "ip": request.remote_addr},
                                actor_id=actor_id())


def contact_json(session: Session, contact: Contact) -> dict[str, Any]:
    """One contact in the API's shape."""
    return service.contacts_json(session, [contact])[0]


def consent_event_json(event: ConsentEvent) -> dict[str, Any]:
    """One entry of the consent ledger as the API shows it."""
    return {"id": event.id, "channel": event.channel, "status": event.status,
            "source": event.source, "evidence": event.evidence or {},
            "created_by_id": event.created_by_id, "created_at": event.created_at.isoformat()}


@bp.get("/contacts")
@requires(Role.VIEWER)
def list_contacts() -> Any:
    """Contacts matching the filters, a page at a time."""
    args = request.args
    limit, list_id, segment_id = limit_arg(), int_arg("list"), int_arg("segment")
    session = db.session()
    require_existing(session, ContactList, list_id, "list")
    require_existing(session, Segment, segment_id, "segment")
    query = service.search_contacts(
        session, email=args.get("email"), phone=args.get("phone"), list_id=list_id,
        tag=args.get("tag"), segment_id=segment_id, q=args.get("q"))
    rows, next_cursor = service.page(session, query, limit, args.get("cursor"))
    return jsonify(page_json(service.contacts_json(session, rows), next_cursor))


@bp.post("/contacts")
@requires(Role.ORGANIZER)
def create_contact() -> Any:
    """Create a contact, optionally recording the consent it gave."""
    data = json_body()
    changes, source_text = consent_changes(data)
    with db.transaction() as session:
        contact = service.create_contact(session, data)
        apply_consent(session, contact, changes, source_text)
    response = jsonify(contact_json(session, contact))
    response.headers["Location"] = url_for("api.get_contact", contact_id=contact.id)
    return response, 201


@bp.get("/contacts/<int:contact_id>")
@requires(Role.VIEWER)
def get_contact(contact_id: int) -> Any:
    """One contact."""
    session = db.session()
    return jsonify(contact_json(session, service.get_contact(session, contact_id)))


@bp.patch("/contacts/<int:contact_id>")
@requires(Role.ORGANIZER)
def update_contact(contact_id: int) -> Any:
    """Change some fields of a contact (custom fields are merged), and optionally its consent."""
    data = json_body()
    changes, source_text = consent_changes(data)
    with db.transaction() as session:
        contact = service.update_contact(session, contact_id, data)
        apply_consent(session, contact, changes, source_text)
    return jsonify(contact_json(session, contact))


@bp.delete("/contacts/<int:contact_id>")
@requires(Role.ORGANIZER)
def erase_contact(contact_id: int) -> Any:
    """Erase a contact on request; its addresses stay tombstoned so they cannot come back."""
    with db.transaction() as session:
        service.erase_contact(session, contact_id)
    return "", 204


@bp.get("/contacts/<int:contact_id>/consent")
@requires(Role.VIEWER)
def contact_consent(contact_id: int) -> Any:
    """A contact's consent ledger, newest first."""
    session = db.session()
    service.get_contact(session, contact_id)
    events = consent.history(session, contact_id)
    return jsonify(page_json([consent_event_json(e) for e in events], None))


# The other modules of the contacts domain's API register their routes on import.
from outreach.api import imports as _imports  # noqa: E402,F401
from outreach.api import lists as _lists  # noqa: E402,F401
from outreach.api import openapi_contacts as _openapi  # noqa: E402,F401
from outreach.api import segments as _segments  # noqa: E402,F401
from outreach.api import suppressions as _suppressions  # noqa: E402,F401
