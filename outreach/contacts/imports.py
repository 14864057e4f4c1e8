"""CSV import of contacts: checked at upload, staged in batches, applied in one transaction.

Reading and validating is streaming Python (memory stays flat); everything per contact after
that is set-based SQL over the staging table `import_rows`, inside a single transaction, so
a crash leaves no half-written contact and running the same file again changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach import db as database
from outreach.contacts import consent
from outreach.contacts.csvfile import CsvError, custom_columns, match_columns, open_csv
from outreach.contacts.import_apply import apply_import
from outreach.contacts.models import (
    Channel,
    ContactList,
    Import,
    ImportRejection,
    ImportRow,
    Tombstone,
    TransferStatus,
)
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.contacts.service import find_list
from outreach.contacts.timezones import (
    infer_timezone,
    state_for_phone,
    state_for_zip,
    valid_timezone,
)
from outreach.db import utcnow
from outreach.exceptions import NotFound, ValidationError
from outreach.files.service import open_stored, store_stream
from outreach.queue import enqueue

BATCH = 5000
FIELDS = ("email", "phone", "first_name", "last_name", "postal_code", "timezone", "tags")
MAX_VALUE = 200


def parse_consent(value: str | None) -> str:
    """The consent channels an import grants: "", "email", "sms" or "email,sms"."""
    parts = sorted({p.strip() for p in (value or "").split(",") if p.strip()})
    if any(p not in ("email", "sms") for p in parts):
        raise ValidationError("Invalid consent", {"consent": "email, sms, email,sms or empty"})
    return ",".join(parts)


def check_header(stream: BinaryIO, column_map: dict[str, int] | None = None) -> dict[str, Any]:
    """Read a file's header; refuse a file that is not a CSV or has no email or phone column."""
    try:
        source = open_csv(stream)
    except CsvError as exc:
        raise ValidationError(str(exc), {"file": str(exc)}) from None
    mapping = column_map or match_columns(source.header)
    if "email" not in mapping and "phone" not in mapping:
        message = ("No email or phone column found; the columns are: "
                   + ", ".join(source.header[:20]))
        raise ValidationError(message, {"file": message})
    return {"header": source.header, "mapping": mapping, "encoding": source.encoding,
            "delimiter": source.delimiter}


def create_import(db: Session, stream: BinaryIO, filename: str, list_ref: str | int | None,
                  mode: str = "add", consent_channels: str = "", consent_source: str = "",
                  actor_id: int | None = None,
                  column_map: dict[str, int] | None = None) -> Import:
    """Check and store an uploaded CSV and queue its import; nothing else is written yet."""
    if mode not in ("add", "update"):
        raise ValidationError("Invalid mode", {"mode": "add or update"})
    channels = parse_consent(consent_channels)
    if channels and not consent_source.strip():
        raise ValidationError("Say where the consent comes from",
                              {"consent_source": "required when the import grants consent"})
    check_header(stream, column_map)
    stream.seek(0)
    target = _target_list(db, list_ref)
    stored = store_stream(db, stream, filename or "import.csv",
                          max_bytes=current_app.config.get("MAX_CONTENT_LENGTH"))
    row = Import(filename=(filename or "import.csv")[:255], file_id=stored.id,
                 list_id=target.id if target else None, mode=mode, consent=channels,
                 consent_source=consent_source.strip(), created_by_id=actor_id,
                 column_map=column_map)
    db.add(row)
    db.flush()
    return row


def _target_list(db: Session, list_ref: str | int | None) -> ContactList | None:
    """The list an import fills: an id or a name (a new name creates the list)."""
    if list_ref in (None, ""):
        return None
    try:
        return find_list(db, list_ref)  # type: ignore[arg-type]
    except NotFound:
        if isinstance(list_ref, int) or str(list_ref).isdigit():
            raise ValidationError("Unknown list", {"list": f"no list {list_ref}"}) from None
    from outreach.contacts.service import create_list

    return create_list(db, str(list_ref))


def queue_import(import_id: int) -> None:
    """Queue the background job of an import."""
    enqueue("default", run_import, import_id, job_id=f"import-{import_id}")


def run_import(import_id: int,
               on_progress: Callable[[int, int], None] | None = None) -> None:
    """The import job: stage every valid row, then apply them all in one transaction."""
    engine = database.engine()
    session = database.session()
    imp = session.get(Import, import_id)
    if imp is None or imp.status == TransferStatus.DONE.value:
        return  # a duplicated job: the import already ran
    imp.status, imp.phase, imp.started_at = TransferStatus.RUNNING.value, "reading", utcnow()
    imp.error = None
    session.commit()
    try:
        with engine.begin() as conn:  # a retried job starts from a clean slate
            conn.execute(sa.delete(ImportRow).where(ImportRow.import_id == import_id))
            conn.execute(sa.delete(ImportRejection).where(ImportRejection.import_id == import_id))
        _stage(session, imp, on_progress)
        imp.phase = "applying"
        session.commit()
        apply_import(session, imp)
        imp.status, imp.phase, imp.progress = TransferStatus.DONE.value, "", 100
        imp.finished_at = utcnow()
        session.commit()
    except Exception as exc:
        session.rollback()
        failed = session.get(Import, import_id)
        assert failed is not None
        failed.status, failed.finished_at = TransferStatus.FAILED.value, utcnow()
        failed.error = str(exc)[:2000] if isinstance(exc, (CsvError, ValidationError)) else (
            f"Internal error ({type(exc).__name__}); nothing was imported.")
        session.commit()
        raise  # RQ records the job as failed with its traceback


def _stage(session: Session, imp: Import,
           on_progress: Callable[[int, int], None] | None = None) -> None:
    """Read, validate and normalize each row; write staged rows and rejections in batches."""
    assert imp.file_id is not None
    engine = session.get_bind()
    stream, raw = open_stored(engine, imp.file_id)
    size = max(1, _file_size(session, imp.file_id))
    source = open_csv(stream)
    column_map = dict(imp.column_map or match_columns(source.header))
    ignored = {int(i) for i in column_map.pop("_ignore", None) or []}
    mapping = {k: int(v) for k, v in column_map.items() if not k.startswith("custom:")}
    # Columns neither mapped nor ignored become custom fields named after their header.
    custom = custom_columns(source.header, {**mapping, **{f"_ignore{i}": i for i in ignored}})
    custom.update({k.removeprefix("custom:"): int(v) for k, v in column_map.items()
                   if k.startswith("custom:")})
    tombstones = set(session.scalars(sa.select(Tombstone.digest)))
    region = current_app.config.get("DEFAULT_REGION", "US")
    staged: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    total = 0
    for total, (line, values, error) in enumerate(_records(source), start=1):
        row, reason = (None, error) if error else _normalize(values, mapping, custom, region,
                                                              tombstones)
        if row is None:
            rejected.append({"import_id": imp.id, "line": line, "reason": reason,
                             "values": json.dumps(values[:50], ensure_ascii=False)})
        else:
            row["import_id"], row["line"] = imp.id, line
            row["raw"] = json.dumps(values, ensure_ascii=False)
            staged.append(row)
        if len(staged) + len(rejected) >= BATCH:
            _flush(engine, staged, rejected)
            percent = min(99, raw.bytes_read * 100 // size)
            _progress(engine, imp.id, total, percent)
            if on_progress:
                on_progress(total, percent)
    _flush(engine, staged, rejected)
    imp.rows_total = imp.rows_processed = total
    imp.progress = 99


def _records(source: Any) -> Iterator[tuple[int, list[str], str | None]]:
    for row in source.rows():
        yield row.line, row.values, row.error


def _normalize(values: list[str], mapping: dict[str, int], custom: dict[str, int], region: str,
               tombstones: set[str]) -> tuple[dict[str, Any] | None, str]:
    """One row as a staged record, or None and the reason it is rejected."""
    get = {f: values[i].strip() if i < len(values) else "" for f, i in mapping.items()}
    email = phone = None
    if get.get("email"):
        try:
            email = normalize_email(get["email"])
        except InvalidAddress as exc:
            return None, str(exc)
    if get.get("phone"):
        try:
            phone = normalize_phone(get["phone"], region)
        except InvalidAddress as exc:
            return None, str(exc)
    if not email and not phone:
        return None, "no email or phone"
    for channel, address in ((Channel.EMAIL, email), (Channel.SMS, phone)):
        if address and tombstones and consent.tombstone_digest(channel, address) in tombstones:
            return None, f"{channel.value} address belongs to a contact erased on request"
    postal = get.get("postal_code") or None
    tz = get.get("timezone") or None
    if not tz or not valid_timezone(tz):
        tz = infer_timezone(phone, postal)
    fields = {k: values[i].strip() for k, i in custom.items() if i < len(values) and values[i]}
    tags = sorted({t.strip()[:100] for t in get.get("tags", "").replace(";", ",").split(",")
                   if t.strip()})
    return {
        "email": email, "phone": phone,
        "first_name": (get.get("first_name") or "")[:MAX_VALUE] or None,
        "last_name": (get.get("last_name") or "")[:MAX_VALUE] or None,
        "postal_code": (postal or "")[:20] or None, "timezone": tz,
        "region": (phone and state_for_phone(phone)) or (postal and state_for_zip(postal)) or None,
        "fields": json.dumps(fields, ensure_ascii=False) if fields else None,
        "tags": "|".join(tags) or None,
    }, ""


def _flush(engine: sa.Engine, staged: list[dict[str, Any]],
           rejected: list[dict[str, Any]]) -> None:
    """Write a batch of staged rows (COPY on PostgreSQL) and rejections, then clear them."""
    if staged:
        if engine.dialect.name == "postgresql":
            _copy_rows(engine, staged)
        else:
            with engine.begin() as conn:
                conn.execute(sa.insert(ImportRow), staged)
    if rejected:
        with engine.begin() as conn:
            conn.execute(sa.insert(ImportRejection), rejected)
    staged.clear()
    rejected.clear()


STAGE_COLUMNS = ("import_id", "line", "email", "phone", "first_name", "last_name",
                 "postal_code", "timezone", "region", "fields", "tags", "raw")


def _copy_rows(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    """Stage rows with PostgreSQL's COPY, the fastest way in."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY import_rows ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in STAGE_COLUMNS])
        raw.commit()
    finally:
        raw.close()


def _progress(engine: sa.Engine, import_id: int, processed: int, percent: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(Import).where(Import.id == import_id)
                     .values(rows_processed=processed, progress=percent))


def _file_size(session: Session, file_id: int) -> int:
    from outreach.files.models import StoredFile

    return int(session.scalar(sa.select(StoredFile.size).where(StoredFile.id == file_id)) or 0)


def import_json(imp: Import) -> dict[str, Any]:
    """An import as the API shows it."""
    from flask import url_for

    return {
        "id": imp.id, "status": imp.status, "phase": imp.phase, "progress": imp.progress,
        "filename": imp.filename, "list_id": imp.list_id, "mode": imp.mode,
        "consent": imp.consent, "rows_total": imp.rows_total,
        "rows_processed": imp.rows_processed, "created": imp.created, "updated": imp.updated,
        "skipped": imp.skipped, "rejected": imp.rejected, "error": imp.error,
        "errors_url": url_for("api.import_errors", import_id=imp.id, _external=False),
        "created_at": imp.created_at.isoformat(),
        "finished_at": imp.finished_at.isoformat() if imp.finished_at else None,
    }


def rejections_csv(db: Session, import_id: int) -> Iterator[str]:
    """The rejected rows as CSV text: line, reason, then the row's values."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason"])
    last = (0, 0)
    while True:
        # Keyset on (line, id): the report is in file order, whatever order rows were rejected.
        batch = db.execute(sa.select(ImportRejection.id, ImportRejection.line,
                                     ImportRejection.reason, ImportRejection.values)
                           .where(ImportRejection.import_id == import_id,
                                  sa.tuple_(ImportRejection.line, ImportRejection.id)
                                  > sa.tuple_(*last))
                           .order_by(ImportRejection.line, ImportRejection.id)
                           .limit(5000)).all()
        for row_id, line, reason, values in batch:
            writer.writerow([line, reason, *json.loads(values or "[]")])
            last = (line, row_id)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < 5000:
            return
