"""Contacts and lists: create, read, update, erase, search, and their JSON shape."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach.contacts import consent
from outreach.contacts.models import (
    Channel,
    ConsentStatus,
    Contact,
    ContactList,
    ContactTag,
    ListMember,
    Suppression,
    Tag,
    Tombstone,
)
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.contacts.timezones import (
    infer_timezone,
    state_for_phone,
    state_for_zip,
    valid_timezone,
)
from outreach.db import insert_ignore, utcnow
from outreach.exceptions import Conflict, NotFound, ValidationError
from outreach.slow_counts import remembered

TEXT_FIELDS = ("first_name", "last_name", "postal_code")
MAX_TEXT = 200


def get_contact(db: Session, contact_id: int) -> Contact:
    """A contact by id, or NotFound."""
    contact = db.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"No contact {contact_id}")
    return contact


def clean_contact_data(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate and normalize contact fields from the API or a form; 422 names each bad one."""
    region = current_app.config.get("DEFAULT_REGION", "US")
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key in ("email", "phone"):
        if key in data and data[key] not in (None, ""):
            if not isinstance(data[key], str):
                errors[key] = "must be a string"
                continue
            try:
                clean[key] = (normalize_email(data[key]) if key == "email"
                              else normalize_phone(data[key], region))
            except InvalidAddress as exc:
                errors[key] = str(exc)
        elif key in data:
            clean[key] = None
    for key in (*TEXT_FIELDS, "timezone"):
        if key in data:
            value = data[key]
            if value is not None and not isinstance(value, str):
                errors[key] = "must be a string"
            elif value and len(value) > MAX_TEXT:
                errors[key] = f"at most {MAX_TEXT} characters"
            else:
                clean[key] = value.strip() if value else None
    if clean.get("timezone") and not valid_timezone(clean["timezone"]):
        errors["timezone"] = "not an IANA time zone such as America/New_York"
    if "fields" in data:
        if not isinstance(data["fields"], dict):
            errors["fields"] = "must be an object"
        else:
            clean["fields"] = data["fields"]
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            errors["tags"] = "must be a list of non-empty strings"
        else:
            clean["tags"] = sorted({t.strip()[:100] for t in tags})
    if "lists" in data:
        lists = data["lists"]
        if not isinstance(lists, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in lists):
            errors["lists"] = "must be a list of list ids"
        else:
            clean["lists"] = lists
    if not partial and not clean.get("email") and not clean.get("phone") and not errors:
        errors["email"] = "an email or a phone is required"
    if errors:
        raise ValidationError("Invalid contact", errors)
    return clean


def _check_unique(db: Session, clean: dict[str, Any], contact_id: int | None = None) -> None:
    for key in ("email", "phone"):
        value = clean.get(key)
        if value:
            column = getattr(Contact, key)
            other = db.scalar(sa.select(Contact.id).where(column == value))
            if other is not None and other != contact_id:
                raise Conflict(f"Another contact ({other}) already has this {key}")
            channel = Channel.EMAIL if key == "email" else Channel.SMS
            if consent.is_tombstoned(db, channel, value):
                raise Conflict(f"This {key} belonged to a contact erased on request")


def _derive_location(contact: Contact) -> None:
    """Infer the time zone and state from the phone or postal code when not given."""
    if not contact.timezone:
        contact.timezone = infer_timezone(contact.phone, contact.postal_code)
    contact.region = ((contact.phone and state_for_phone(contact.phone))
                      or (contact.postal_code and state_for_zip(contact.postal_code)) or None)


def create_contact(db: Session, data: dict[str, Any]) -> Contact:
    """Create a contact from validated data (tags and list ids included)."""
    clean = clean_contact_data(data)
    _check_unique(db, clean)
    contact = Contact(fields=clean.get("fields") or {},
                      **{k: clean.get(k) for k in ("email", "phone", *TEXT_FIELDS, "timezone")})
    _derive_location(contact)
    db.add(contact)
    db.flush()
    set_tags(db, contact.id, clean.get("tags", []))
    add_to_lists(db, contact.id, clean.get("lists", []))
    return contact


def update_contact(db: Session, contact_id: int, data: dict[str, Any]) -> Contact:
    """Change the given fields of a contact (custom fields are merged)."""
    contact = get_contact(db, contact_id)
    clean = clean_contact_data(data, partial=True)
    _check_unique(db, clean, contact_id)
    for key in ("email", "phone", *TEXT_FIELDS, "timezone"):
        if key in clean:
            setattr(contact, key, clean[key])
    if not contact.email and not contact.phone:
        raise ValidationError("Invalid contact", {"email": "an email or a phone is required"})
    if "fields" in clean:
        contact.fields = {**(contact.fields or {}), **clean["fields"]}
    _derive_location(contact)
    if "tags" in clean:
        set_tags(db, contact.id, clean["tags"])
    if "lists" in clean:
        db.execute(sa.delete(ListMember).where(ListMember.contact_id == contact.id))
        add_to_lists(db, contact.id, clean["lists"])
    db.flush()
    return contact


def erase_contact(db: Session, contact_id: int) -> None:
    """Forget a contact (right to be forgotten): delete it, keep hashed tombstones."""
    contact = get_contact(db, contact_id)
    for channel in Channel:
        address = consent.address_for(contact, channel)
        if address:
            digest = consent.tombstone_digest(channel, address)
            if db.scalar(sa.select(Tombstone.id).where(Tombstone.digest == digest)) is None:
                db.add(Tombstone(digest=digest))
    db.delete(contact)  # list memberships, tags and the consent ledger go with it


def tag_ids(db: Session, names: Sequence[str]) -> dict[str, int]:
    """Ids of tags by name, creating the missing ones."""
    if not names:
        return {}
    existing = dict(db.execute(sa.select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
    for name in names:
        if name not in existing:
            tag = Tag(name=name)
            db.add(tag)
            db.flush()
            existing[name] = tag.id
    return existing


def set_tags(db: Session, contact_id: int, names: Sequence[str]) -> None:
    """Replace a contact's tags."""
    db.execute(sa.delete(ContactTag).where(ContactTag.contact_id == contact_id))
    ids = tag_ids(db, names)
    if ids:
        db.execute(sa.insert(ContactTag), [{"contact_id": contact_id, "tag_id": i}
                                           for i in ids.values()])


def add_to_lists(db: Session, contact_id: int, list_ids: Sequence[int]) -> None:
    """Add a contact to lists (ids must exist)."""
    for list_id in set(list_ids):
        if db.get(ContactList, list_id) is None:
            raise ValidationError("Unknown list", {"lists": f"no list {list_id}"})
        exists = db.get(ListMember, (list_id, contact_id))
        if exists is None:
            db.add(ListMember(list_id=list_id, contact_id=contact_id))
    db.flush()


def contact_tags(db: Session, contact_ids: Sequence[int]) -> dict[int, list[str]]:
    """Tag names per contact, for many contacts in one query."""
    out: dict[int, list[str]] = {i: [] for i in contact_ids}
    rows = db.execute(sa.select(ContactTag.contact_id, Tag.name).join(Tag)
                      .where(ContactTag.contact_id.in_(contact_ids)).order_by(Tag.name))
    for contact_id, name in rows:
        out[contact_id].append(name)
    return out


def contact_lists(db: Session, contact_ids: Sequence[int]) -> dict[int, list[int]]:
    """List ids per contact, for many contacts in one query."""
    out: dict[int, list[int]] = {i: [] for i in contact_ids}
    rows = db.execute(sa.select(ListMember.contact_id, ListMember.list_id)
                      .where(ListMember.contact_id.in_(contact_ids)).order_by(ListMember.list_id))
    for contact_id, list_id in rows:
        out[contact_id].append(list_id)
    return out


def contact_suppressions(db: Session, contacts: Sequence[Contact]) -> dict[tuple[str, str], str]:
    """Suppression reasons keyed by (channel, address) for these contacts' addresses."""
    emails = [c.email for c in contacts if c.email]
    phones = [c.phone for c in contacts if c.phone]
    rows = db.execute(sa.select(Suppression.channel, Suppression.address, Suppression.reason).where(
        sa.or_(sa.and_(Suppression.channel == "email", Suppression.address.in_(emails)),
               sa.and_(Suppression.channel == "sms", Suppression.address.in_(phones)))))
    return {(ch, addr): reason for ch, addr, reason in rows}


def contacts_json(db: Session, contacts: Sequence[Contact]) -> list[dict[str, Any]]:
    """Contacts in the API's shape, with tags, lists and suppressions fetched in bulk."""
    ids = [c.id for c in contacts]
    tags, lists = contact_tags(db, ids), contact_lists(db, ids)
    suppressed = contact_suppressions(db, contacts)
    return [{
        "id": c.id, "email": c.email, "phone": c.phone, "first_name": c.first_name,
        "last_name": c.last_name, "postal_code": c.postal_code, "timezone": c.timezone,
        "fields": c.fields or {}, "tags": tags[c.id], "lists": lists[c.id],
        "consent": {"email": c.email_consent, "sms": c.sms_consent},
        "suppressed": {"email": suppressed.get(("email", c.email or "")),
                       "sms": suppressed.get(("sms", c.phone or ""))},
        "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat(),
    } for c in contacts]


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the next page after this id."""
    return base64.urlsafe_b64encode(f"c:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor continues after, or a 422 naming the cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "c":
            raise ValueError
        return int(value)
    except ValueError:
        raise ValidationError("Invalid cursor", {"cursor": "not a cursor from this API"}) from None


def search_contacts(db: Session, *, email: str | None = None, phone: str | None = None,
                    list_id: int | None = None, tag: str | None = None,
                    segment_id: int | None = None, q: str | None = None) -> sa.Select[Any]:
    """A query of contacts matching every given filter, ordered by id."""
    query = sa.select(Contact).order_by(Contact.id)
    region = current_app.config.get("DEFAULT_REGION", "US")
    if email:
        try:
            email = normalize_email(email)
        except InvalidAddress:
            email = email.strip().lower()
        query = query.where(Contact.email == email)
    if phone:
        try:
            phone = normalize_phone(phone, region)
        except InvalidAddress:
            raise ValidationError("Invalid phone filter", {"phone": "not a phone number"}) from None
        query = query.where(Contact.phone == phone)
    if list_id is not None:
        query = query.where(Contact.id.in_(
            sa.select(ListMember.contact_id).where(ListMember.list_id == list_id)))
    if tag:
        query = query.where(Contact.id.in_(
            sa.select(ContactTag.contact_id).join(Tag).where(Tag.name == tag)))
    if segment_id is not None:
        from outreach.contacts.segments import segment_condition

        query = query.where(segment_condition(db, segment_id))
    if q:
        query = query.where(search_condition(q))
    return query


def search_condition(q: str) -> sa.ColumnElement[bool]:
    """Contacts whose email, phone, first or last name contains `q` (any case).

    Stored emails are lower-cased and phones are E.164 digits, so only the names need lower()
    (ILIKE costs twice as much on PostgreSQL). On a million contacts with no index to help, a
    rare term scans them all, and each function call per row counts. A phone can only contain
    a query that has a digit.
    """
    text = q.strip().lower()
    terms = [Contact.email.contains(text, autoescape=True),
             sa.func.lower(Contact.first_name).contains(text, autoescape=True),
             sa.func.lower(Contact.last_name).contains(text, autoescape=True)]
    if any(ch.isdigit() for ch in text):
        terms.append(Contact.phone.contains(text, autoescape=True))
    return sa.or_(*terms)


def count_up_to(db: Session, query: sa.Select[Any], limit: int) -> tuple[int, bool]:
    """How many rows `query` has, counting no further than `limit`; and whether it has more.

    A filter matching most of a million contacts would otherwise be counted to the end on
    every page view, though the page shows fifty of them.
    """
    n = int(db.scalar(sa.select(sa.func.count()).select_from(
        query.order_by(None).limit(limit + 1).subquery())) or 0)
    return min(n, limit), n > limit


ID_RANGE = 100_000  # contacts scanned per statement when walking a filter in id order


def matching_ids(db: Session, query: sa.Select[Any], after: int, limit: int) -> list[int]:
    """The ids of the first `limit` contacts of `query` with an id above `after`, in id order.

    Walked through id ranges of ID_RANGE: PostgreSQL cannot estimate how many contacts a
    text search matches, so for "ORDER BY id LIMIT n" it would sort a full scan of a million
    rows even when the first thousand ids hold enough matches. Each range is a bounded
    index scan; a common term stops in the first range, a rare one reads them all once.
    """
    top = db.scalar(sa.select(sa.func.max(Contact.id))) or 0
    ids: list[int] = []
    ordered = query.with_only_columns(Contact.id).order_by(Contact.id)
    while len(ids) < limit and after < top:
        upper = after + ID_RANGE
        ids += db.scalars(ordered.where(Contact.id > after, Contact.id <= upper)
                          .limit(limit - len(ids)))
        after = upper
    return ids


def filtered_page(db: Session, query: sa.Select[Any], limit: int, cursor: str | None,
                  count_limit: int) -> tuple[list[Any], str | None, int, bool]:
    """A page of a filtered contact query, its total up to `count_limit`, and whether more.

    The first page takes the ids of up to `count_limit` + 1 matches in one walk and both
    counts them and shows the first `limit`: a search that matches few of a million contacts
    reads them all once, not twice. Later pages (a cursor) count and page separately.
    """
    if cursor:
        ids = matching_ids(db, query, decode_cursor(cursor), limit + 1)
        total, more = count_up_to(db, query, count_limit)
    else:
        ids = matching_ids(db, query, 0, count_limit + 1)
        total, more = min(len(ids), count_limit), len(ids) > count_limit
    shown = ids[:limit]
    rows = list(db.scalars(sa.select(Contact).where(Contact.id.in_(shown)).order_by(Contact.id)))
    next_cursor = encode_cursor(shown[-1]) if len(ids) > limit and shown else None
    return rows, next_cursor, total, more


def count_all_contacts(db: Session) -> int:
    """Every contact, remembered a moment when that takes long (see outreach.slow_counts)."""
    return remembered("contacts:total", lambda: int(
        db.scalar(sa.select(sa.func.count()).select_from(Contact)) or 0), rows=lambda n: n)


def page(db: Session, query: sa.Select[Any], limit: int, cursor: str | None,
         id_column: Any = Contact.id) -> tuple[list[Any], str | None]:
    """One page of a query ordered by id, and the cursor of the next page (or None)."""
    if cursor:
        query = query.where(id_column > decode_cursor(cursor))
    rows = list(db.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


def grant_or_revoke(db: Session, contact: Contact, channel: Channel, status: ConsentStatus,
                    source: str, evidence: dict[str, Any], actor_id: int | None) -> None:
    """Record a consent change made by staff or the API, if it changes anything."""
    if getattr(contact, consent.CONSENT_COLUMN[channel]) != status.value:
        consent.record_consent(db, contact, channel, status, source, evidence, actor_id)


# Lists ---------------------------------------------------------------------------------------

def create_list(db: Session, name: str, description: str = "") -> ContactList:
    """Create a list with a unique name."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("Invalid list", {"name": "required, at most 200 characters"})
    if db.scalar(sa.select(ContactList.id).where(ContactList.name == name)) is not None:
        raise Conflict(f"A list named {name!r} already exists")
    row = ContactList(name=name, description=description or "")
    db.add(row)
    db.flush()
    return row


def find_list(db: Session, ref: str | int) -> ContactList:
    """A list by id or by exact name."""
    row = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        row = db.get(ContactList, int(ref))
    if row is None and isinstance(ref, str):
        row = db.scalar(sa.select(ContactList).where(ContactList.name == ref.strip()))
    if row is None:
        raise NotFound(f"No list {ref!r}")
    return row


def list_counts(db: Session) -> list[tuple[ContactList, int]]:
    """Every list with its member count (remembered a moment on big lists: slow_counts)."""
    counts = (sa.select(ListMember.list_id, sa.func.count().label("n"))
              .group_by(ListMember.list_id).subquery())
    members = remembered("lists:members", lambda: {
        str(list_id): int(n) for list_id, n in db.execute(sa.select(counts))},
        rows=lambda found: sum(found.values()))
    rows = db.scalars(sa.select(ContactList).order_by(ContactList.name))
    return [(row, members.get(str(row.id), 0)) for row in rows]


def member_counts(db: Session, list_ids: list[int]) -> dict[int, int]:
    """The member count of each of these lists, in one query."""
    rows = db.execute(sa.select(ListMember.list_id, sa.func.count())
                      .where(ListMember.list_id.in_(list_ids)).group_by(ListMember.list_id))
    counts = dict.fromkeys(list_ids, 0)
    counts.update({list_id: int(n) for list_id, n in rows})
    return counts


def update_list(db: Session, list_id: int, data: dict[str, Any]) -> ContactList:
    """Rename a list or change its description (the lists page and the API)."""
    row = find_list(db, list_id)
    errors: dict[str, str] = {}
    name = data.get("name", row.name)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        errors["name"] = "required, at most 200 characters"
    description = data.get("description", row.description)
    if description is None:
        description = row.description
    if not isinstance(description, str):
        errors["description"] = "must be a string"
    if errors:
        raise ValidationError("Invalid list", errors)
    name = name.strip()
    clash = db.scalar(sa.select(ContactList.id).where(ContactList.name == name))
    if clash is not None and clash != list_id:
        raise Conflict(f"A list named {name!r} already exists")
    row.name, row.description = name, description.strip()
    db.flush()
    return row


def add_members(db: Session, list_id: int, contact_ids: list[int]) -> int:
    """Add contacts to a list in one set-based statement; return how many were new members."""
    find_list(db, list_id)
    wanted = sorted(set(contact_ids))
    found = set(db.scalars(sa.select(Contact.id).where(Contact.id.in_(wanted))))
    unknown = [i for i in wanted if i not in found]
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise ValidationError("Unknown contacts", {"contact_ids": f"no contacts {shown}"})
    dialect = db.get_bind().dialect.name
    # The rows the statement inserted are the new members (existing ones are ignored), so a
    # list of a million is not counted twice to add ten.
    added = db.execute(insert_ignore(ListMember.__table__, dialect).from_select(
        ["list_id", "contact_id", "created_at"],
        sa.select(sa.literal(list_id), Contact.id,
                  sa.literal(utcnow(), ListMember.created_at.type))
        .where(Contact.id.in_(wanted))).returning(ListMember.contact_id))
    return len(added.all())


def remove_member(db: Session, list_id: int, contact_id: int) -> None:
    """Take a contact off a list, or NotFound if it is not on it."""
    find_list(db, list_id)
    done = db.execute(sa.delete(ListMember).where(ListMember.list_id == list_id,
                                                  ListMember.contact_id == contact_id))
    if not done.rowcount:
        raise NotFound(f"Contact {contact_id} is not on list {list_id}")


def delete_list(db: Session, list_id: int) -> None:
    """Delete a list (its contacts stay)."""
    row = db.get(ContactList, list_id)
    if row is None:
        raise NotFound(f"No list {list_id}")
    db.delete(row)


def consent_states() -> list[str]:
    """The values a contact's consent can take."""
    return [s.value for s in ConsentStatus]
