"""CSV exports of contacts (all, one list or one segment) and of suppressions, built by a job.

The job streams rows with one query (a server-side cursor on PostgreSQL, `yield_per`) in
batches of 5000; each batch's tags, list names and suppressions are fetched with one query
each. The CSV is written to a spooled temporary file (memory up to 8 MB, then disk) and then
stored in the database with `files.service.store_stream`.

Contacts CSV columns: id, email, phone, first_name, last_name, postal_code, timezone, tags
(names joined with "|"), lists (names joined with "|"), email_consent, sms_consent,
email_suppressed and sms_suppressed (the suppression reason, or empty), created_at; then one
column per custom field key found among the exported contacts (sorted; collected first with one
cheap DISTINCT query over the JSON keys, a key clashing with a standard column is prefixed with
"custom_"). When the contacts have more than MAX_FIELD_COLUMNS distinct keys, a single
`fields` column holding each contact's custom fields as a JSON object replaces them.

Suppressions CSV columns: channel, address, reason, note, created_at.

Cells that a spreadsheet would run as a formula (starting with = + - @ or a tab) are prefixed
with a single quote; E.164 phone numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from outreach import db as database
from outreach.contacts.models import (
    Contact,
    ContactList,
    Export,
    ListMember,
    Segment,
    TransferStatus,
)
from outreach.contacts.segments import segment_condition
from outreach.contacts.service import contact_suppressions, contact_tags
from outreach.contacts.suppressions import SUPPRESSION_COLUMNS, suppression_rows
from outreach.csv_cells import cell
from outreach.db import utcnow
from outreach.exceptions import NotFound, ValidationError
from outreach.files.service import store_stream
from outreach.queue import enqueue

BATCH = 5000
SPOOL_BYTES = 8 * 1024 * 1024
MAX_FIELD_COLUMNS = 200
KINDS = ("contacts", "suppressions")
CONTACT_COLUMNS = ("id", "email", "phone", "first_name", "last_name", "postal_code", "timezone",
                   "tags", "lists", "email_consent", "sms_consent", "email_suppressed",
                   "sms_suppressed", "created_at")


def create_export(db: Session, kind: Any, list_id: Any = None, segment_id: Any = None,
                  actor_id: int | None = None) -> Export:
    """Record an export to run; a 422 names an unknown kind, list or segment."""
    if kind not in KINDS:
        raise ValidationError("Unknown export kind", {"kind": "contacts or suppressions"})
    errors: dict[str, str] = {}
    for field, value, model in (("list_id", list_id, ContactList),
                                ("segment_id", segment_id, Segment)):
        if value is None:
            continue
        if kind != "contacts":
            errors[field] = "only a contacts export takes a list or a segment"
        elif not isinstance(value, int) or isinstance(value, bool):
            errors[field] = "must be an id"
        elif db.get(model, value) is None:
            errors[field] = f"no {field.removesuffix('_id')} {value}"
    if errors:
        raise ValidationError("Invalid export", errors)
    export = Export(kind=kind, list_id=list_id, segment_id=segment_id, created_by_id=actor_id,
                    status=TransferStatus.QUEUED.value, rows=0)
    db.add(export)
    db.flush()
    return export


def queue_export(export_id: int) -> None:
    """Queue the background job of an export (with the scope it was asked for)."""
    export = database.session().get(Export, export_id)
    scope = _scope_of(export) if export is not None else None
    enqueue("default", run_export, export_id, scope=scope, job_id=f"export-{export_id}")


def _scope_of(export: Export) -> dict[str, int | None]:
    return {"list_id": export.list_id, "segment_id": export.segment_id}


def run_export(export_id: int, scope: dict[str, int | None] | None = None) -> None:
    """The export job: write the CSV batch by batch, store it, mark the export done or failed.

    `scope` is the list and segment the export was queued with: deleting them sets the
    export's ids to NULL, and the job then fails rather than export every contact.
    """
    session = database.session()
    export = session.get(Export, export_id)
    if export is None or export.status == TransferStatus.DONE.value:
        return  # a duplicated job: the export already ran
    export.status, export.error, export.finished_at = TransferStatus.RUNNING.value, None, None
    session.commit()
    try:
        if scope is not None and scope != _scope_of(export):
            raise ValidationError("The list or segment of this export was deleted before "
                                  "the export ran; nothing was exported.")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            writer = csv.writer(text)
            write = _write_contacts if export.kind == "contacts" else _write_suppressions
            rows = write(session, export, writer)
            text.flush()
            text.detach()  # keep the spool open for storing
            spool.seek(0)
            stored = store_stream(session, spool, filename(export))
        export.file_id, export.rows = stored.id, rows
        export.status, export.finished_at = TransferStatus.DONE.value, utcnow()
        session.commit()
    except Exception as exc:
        session.rollback()
        failed = session.get(Export, export_id)
        assert failed is not None
        failed.status, failed.finished_at = TransferStatus.FAILED.value, utcnow()
        failed.error = str(exc)[:2000] if isinstance(exc, (ValidationError, NotFound)) else (
            f"Internal error ({type(exc).__name__}); nothing was exported.")
        session.commit()
        raise  # RQ records the job as failed with its traceback


def filename(export: Export) -> str:
    """The name the export's file is stored and downloaded under."""
    return f"{export.kind}-export-{export.id}.csv"


def export_json(export: Export) -> dict[str, Any]:
    """An export as the API shows it."""
    from flask import url_for

    done = export.status == TransferStatus.DONE.value and export.file_id is not None
    return {
        "id": export.id, "kind": export.kind, "status": export.status,
        "list_id": export.list_id, "segment_id": export.segment_id, "rows": export.rows,
        "error": export.error,
        "download_url": url_for("api.export_download", export_id=export.id) if done else None,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
    }


def _field(value: Any) -> str:
    """A custom field's value as a cell: text as it is, any other JSON value as JSON."""
    return cell(value if value is None or isinstance(value, str)
                else json.dumps(value, ensure_ascii=False))


def _contact_scope(db: Session, export: Export) -> ColumnElement[bool]:
    """The SQL condition of the contacts an export covers."""
    conditions: list[ColumnElement[bool]] = []
    if export.list_id is not None:
        conditions.append(Contact.id.in_(
            sa.select(ListMember.contact_id).where(ListMember.list_id == export.list_id)))
    if export.segment_id is not None:
        conditions.append(segment_condition(db, export.segment_id))
    return sa.and_(sa.true(), *conditions)


def field_keys(db: Session, scope: ColumnElement[bool]) -> list[str]:
    """The distinct custom field keys of the contacts in scope, sorted (at most MAX + 1)."""
    if db.get_bind().dialect.name == "postgresql":
        fields = sa.cast(Contact.fields, JSONB)
        query = (sa.select(sa.func.jsonb_object_keys(fields).label("key"))
                 .where(scope, sa.func.jsonb_typeof(fields) == "object"))
    else:
        each = sa.func.json_each(Contact.fields).table_valued("key")
        query = (sa.select(each.c.key.label("key")).select_from(Contact)
                 .join(each, sa.true())
                 .where(scope, sa.func.json_type(Contact.fields) == "object"))
    keys = query.subquery()
    return list(db.scalars(sa.select(keys.c.key).distinct().order_by(keys.c.key)
                           .limit(MAX_FIELD_COLUMNS + 1)))


def _list_names(db: Session, contact_ids: Sequence[int]) -> dict[int, list[str]]:
    """List names per contact, for many contacts in one query."""
    out: dict[int, list[str]] = {i: [] for i in contact_ids}
    rows = db.execute(sa.select(ListMember.contact_id, ContactList.name)
                      .join(ContactList, ContactList.id == ListMember.list_id)
                      .where(ListMember.contact_id.in_(contact_ids)).order_by(ContactList.name))
    for contact_id, name in rows:
        out[contact_id].append(name)
    return out


def _write_contacts(db: Session, export: Export, writer: Any) -> int:
    """Write the contacts CSV; return the number of contacts written."""
    scope = _contact_scope(db, export)
    keys = field_keys(db, scope)
    as_json = len(keys) > MAX_FIELD_COLUMNS
    extra = ["fields"] if as_json else [
        f"custom_{k}" if k in CONTACT_COLUMNS or k.startswith("custom_") else k for k in keys]
    writer.writerow([*CONTACT_COLUMNS, *extra])
    query = (sa.select(Contact.id, Contact.email, Contact.phone, Contact.first_name,
                       Contact.last_name, Contact.postal_code, Contact.timezone,
                       Contact.email_consent, Contact.sms_consent, Contact.created_at,
                       Contact.fields)
             .where(scope).order_by(Contact.id).execution_options(yield_per=BATCH))
    total = 0
    for batch in db.execute(query).partitions():
        ids = [row.id for row in batch]
        tags, lists = contact_tags(db, ids), _list_names(db, ids)
        suppressed = contact_suppressions(db, batch)  # type: ignore[arg-type]
        for row in batch:
            fields = row.fields if isinstance(row.fields, dict) else {}
            custom = [_field(fields or None)] if as_json else [_field(fields.get(k)) for k in keys]
            writer.writerow([
                row.id, cell(row.email), row.phone or "", cell(row.first_name),
                cell(row.last_name), cell(row.postal_code), cell(row.timezone),
                cell("|".join(tags[row.id])), cell("|".join(lists[row.id])),
                row.email_consent, row.sms_consent,
                suppressed.get(("email", row.email or ""), ""),
                suppressed.get(("sms", row.phone or ""), ""),
                row.created_at.isoformat(), *custom])
        total += len(batch)
    return total


def _write_suppressions(db: Session, export: Export, writer: Any) -> int:
    """Write the suppressions CSV; return the number of suppressions written."""
    writer.writerow(SUPPRESSION_COLUMNS)
    total = 0
    for rows in suppression_rows(db):
        writer.writerows(rows)
        total += len(rows)
    return total
