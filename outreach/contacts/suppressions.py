"""Suppressions: addresses never to be messaged on a channel, whatever any list or consent says.

The one implementation of search, add and CSV import behind both the staff pages and the JSON
API; each of those only parses its input and shapes the result for its own output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outreach.contacts import consent
from outreach.contacts.csvfile import CsvError, CsvSource, field_key, open_csv
from outreach.contacts.models import Channel, Suppression, SuppressionReason
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.csv_cells import cell
from outreach.db import insert_ignore, utcnow
from outreach.exceptions import NotFound, ValidationError

IMPORT_BATCH = 5000  # rows per INSERT statement
MAX_REJECTIONS = 1000  # rejected lines kept for the report; the count covers them all
MAX_NOTE = 2000
IMPORTED_NOTE = "imported from a file"
REASONS = frozenset(r.value for r in SuppressionReason)
ADDRESS_COLUMNS = ("address", "email", "email_address", "phone", "phone_number", "mobile",
                   "number", "to")
# What a file's channel column may say; spreadsheets kept by hand say "text" or "mobile".
CHANNEL_WORDS = {"email": Channel.EMAIL, "sms": Channel.SMS, "text": Channel.SMS,
                 "phone": Channel.SMS, "mobile": Channel.SMS}
SUPPRESSION_COLUMNS = ("channel", "address", "reason", "note", "created_at")
EXPORT_BATCH = 5000
REASON_CHOICES = "must be one of " + ", ".join(r.value for r in SuppressionReason)


def normalize_address(channel: Channel, raw: str, region: str, field: str = "address") -> str:
    """An address in the form suppressions store (normalized email or E.164), or a 422."""
    try:
        if channel is Channel.EMAIL:
            return normalize_email(raw)
        return normalize_phone(raw, region)
    except InvalidAddress as exc:
        raise ValidationError("Invalid address", {field: str(exc)}) from None


def address_forms(address: str, region: str) -> list[str]:
    """The stored forms an address typed in any format may have: as typed, and normalized."""
    forms = {address.strip(), address.strip().lower()}
    for channel in Channel:
        try:
            forms.add(normalize_address(channel, address, region))
        except ValidationError:
            pass
    return sorted(forms)


def search(channel: Channel | None, region: str, *, address: str | None = None,
           text: str | None = None) -> sa.Select[Any]:
    """Suppressions (unordered) of a channel; `address` matches exactly in any format, `text`
    also matches part of an address (the pages' search box)."""
    query = sa.select(Suppression)
    if channel is not None:
        query = query.where(Suppression.channel == channel.value)
    if address:
        query = query.where(Suppression.address.in_(address_forms(address, region)))
    if text:
        query = query.where(sa.or_(
            sa.func.lower(Suppression.address).contains(text.lower(), autoescape=True),
            Suppression.address.in_(address_forms(text, region))))
    return query


def get(db: Session, suppression_id: int) -> Suppression:
    """A suppression by id, or NotFound."""
    row = db.get(Suppression, suppression_id)
    if row is None:
        raise NotFound("No such suppression; it may have been removed already")
    return row


def check_reason(reason: str) -> str:
    """A suppression reason, or a 422 naming the field."""
    if reason not in REASONS:
        raise ValidationError("Unknown reason", {"reason": REASON_CHOICES})
    return reason


def add(db: Session, channel: Channel, address: str, reason: str, note: str,
        actor: int | None, region: str) -> tuple[Suppression, bool]:
    """Suppress an address as typed; return the suppression and whether it is new.

    Idempotent: an address already suppressed keeps its first reason and note.
    """
    check_reason(reason)
    address = normalize_address(channel, address, region)
    existing = consent.suppression_for(db, channel, address)
    if existing is not None:
        return existing, False
    try:
        with db.begin_nested():
            return consent.suppress(db, channel, address, reason, note.strip()[:MAX_NOTE],
                                    actor), True
    except IntegrityError:  # another request suppressed it at the same moment
        row = consent.suppression_for(db, channel, address)
        assert row is not None
        return row, False


@dataclass
class ImportReport:
    """What a CSV import did: rows read, suppressions added, ones already there, rejected
    lines (counted in full, listed up to MAX_REJECTIONS as (line, reason))."""

    rows_total: int = 0
    added: int = 0
    existing: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS:
            self.rejections.append((line, reason))


@dataclass(frozen=True)
class _Columns:
    address: int
    channel: int | None
    reason: int | None
    note: int | None


def import_file(db: Session, stream: BinaryIO, *, channel: Channel | None, reason: str,
                region: str, actor: int | None) -> ImportReport:
    """Suppress the addresses a CSV lists, in set-based batches; existing ones are kept.

    Columns: an address (address, email, phone, ...; or a file's only column), and optionally
    channel, reason and note. A row's own channel and reason win; `channel` and `reason` are
    for rows without one. A CSV the reader cannot read at all is a 422 naming `file`.
    """
    check_reason(reason)
    try:
        with open_csv(stream) as source:
            return _import(db, source, channel, reason, region, actor)
    except CsvError as exc:  # not a CSV file, or it stops being readable text part way
        raise ValidationError(str(exc), {"file": str(exc)}) from None


def _columns(source: CsvSource, channel: Channel | None) -> _Columns:
    keys = [field_key(name) for name in source.header]
    address = next((keys.index(k) for k in ADDRESS_COLUMNS if k in keys), None)
    if address is None and len(keys) == 1:
        address = 0  # a plain list of addresses, whatever its heading
    if address is None:
        raise ValidationError("No address column", {"file": "the file needs an address column "
                                                    "(address, email or phone)"})
    found = {name: keys.index(name) if name in keys else None
             for name in ("channel", "reason", "note")}
    if channel is None and found["channel"] is None:
        raise ValidationError("Which channel?", {"channel": "choose a channel, or add a "
                                                 "channel column (email or sms) to the file"})
    return _Columns(address, found["channel"], found["reason"], found["note"])


def _records(source: CsvSource, channel: Channel | None,
             region: str) -> Iterator[tuple[int, list[str], str | None]]:
    """The file's records; a headerless list of addresses gives its first one back too."""
    header = source.header
    if len(header) == 1 and field_key(header[0]) not in ADDRESS_COLUMNS and channel is not None:
        try:
            normalize_address(channel, header[0], region)
        except ValidationError:
            pass
        else:  # the "header" is an address: the file has none, so it is the first record
            yield 1, list(header), None
    yield from source.records()


# PostgreSQL takes a batch as four array parameters: psycopg parses a statement's placeholders
# in Python and caches only short statements, so multi-row VALUES with thousands of placeholders
# cost more client CPU than everything else the import does (4x the whole import, measured).
_PG_INSERT = sa.text("""
    WITH added AS (
        INSERT INTO suppressions (channel, address, reason, note, created_by_id, created_at)
        SELECT r.channel, r.address, r.reason, r.note, CAST(:actor AS integer),
               CAST(:now AS timestamp)
        FROM unnest(CAST(:channels AS text[]), CAST(:addresses AS text[]),
                    CAST(:reasons AS text[]), CAST(:notes AS text[]))
             AS r(channel, address, reason, note)
        ON CONFLICT DO NOTHING
        RETURNING 1)
    SELECT count(*) FROM added
""").bindparams(sa.bindparam("now", type_=Suppression.__table__.c.created_at.type))


def _insert(db: Session, rows: list[dict[str, Any]], actor: int | None) -> int:
    """Insert a batch of distinct suppressions, skipping existing ones; return how many were
    new. Rows go in (channel, address) order, so concurrent imports lock keys in one order."""
    rows.sort(key=lambda row: (row["channel"], row["address"]))
    now = utcnow()
    if db.get_bind().dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows]
                   for name in ("channel", "address", "reason", "note")}
        return int(db.scalar(_PG_INSERT, {
            "channels": columns["channel"], "addresses": columns["address"],
            "reasons": columns["reason"], "notes": columns["note"], "actor": actor,
            "now": now}) or 0)
    statement = insert_ignore(Suppression.__table__, "sqlite").returning(Suppression.id)
    return len(db.execute(statement, [{**row, "created_by_id": actor, "created_at": now}
                                      for row in rows]).all())


def _import(db: Session, source: CsvSource, channel: Channel | None, reason: str, region: str,
            actor: int | None) -> ImportReport:
    columns = _columns(source, channel)
    report = ImportReport()
    records = _records(source, channel, region)
    while batch := list(islice(records, IMPORT_BATCH)):
        report.rows_total += len(batch)
        pending: dict[tuple[str, str], dict[str, Any]] = {}
        for line, values, error in batch:
            if error:
                report.reject(line, error)
                continue
            try:
                row = _row(values, columns, channel, reason, region)
            except ValidationError as exc:
                report.reject(line, next(iter(exc.fields.values()), exc.message))
                continue
            key = (row["channel"], row["address"])
            if key in pending:
                report.existing += 1  # repeated in the file
            else:
                pending[key] = row
        if pending:
            added = _insert(db, list(pending.values()), actor)
            report.added += added
            report.existing += len(pending) - added
    return report


def _row(values: list[str], columns: _Columns, channel: Channel | None, reason: str,
         region: str) -> dict[str, Any]:
    """One record as a suppression to insert, or a ValidationError saying why not."""
    row_channel = channel
    if columns.channel is not None and (word := values[columns.channel].strip().lower()):
        row_channel = CHANNEL_WORDS.get(word)
        if row_channel is None:
            raise ValidationError(f"unknown channel {word!r} (email or sms)")
    if row_channel is None:
        raise ValidationError("no channel (email or sms)")
    address = normalize_address(row_channel, values[columns.address], region)
    row_reason = (values[columns.reason].strip().lower() if columns.reason is not None
                  else "") or reason
    if row_reason not in REASONS:
        raise ValidationError(f"unknown reason {row_reason!r}")
    note = values[columns.note].strip()[:MAX_NOTE] if columns.note is not None else ""
    return {"channel": row_channel.value, "address": address, "reason": row_reason,
            "note": note or IMPORTED_NOTE}


def suppression_rows(db: Session, channel: str = "") -> Iterator[list[list[str]]]:
    """Every suppression (or one channel's) as CSV rows of SUPPRESSION_COLUMNS, in id order,
    a batch at a time (keyset pages: no long-held cursor, flat memory)."""
    table = Suppression.__table__
    last = 0
    while True:
        query = (sa.select(table.c.id, table.c.channel, table.c.address, table.c.reason,
                           table.c.note, table.c.created_at)
                 .where(table.c.id > last).order_by(table.c.id).limit(EXPORT_BATCH))
        if channel:
            query = query.where(table.c.channel == channel)
        batch = db.execute(query).all()
        if batch:
            yield [[row.channel, cell(row.address),  # phones are E.164: cell keeps them
                    row.reason, cell(row.note), row.created_at.isoformat()] for row in batch]
            last = batch[-1].id
        if len(batch) < EXPORT_BATCH:
            return
