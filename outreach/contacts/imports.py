"""CSV import of contacts: checked at upload, staged in batches, applied in one transaction.

Reading, validating and deduping is streaming Python (import_stage.py: memory grows only with
the file's distinct addresses); everything per contact after that is set-based SQL over the
staged rows (import_apply.py), inside a single transaction with the staging itself, so a crash
leaves no half-written contact and running the same file again changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from outreach import db as database
from outreach.contacts.csvfile import CsvError, custom_columns, match_columns, open_csv
from outreach.contacts.import_apply import (
    ImportPlan,
    address_taken,
    apply_chunk,
    create_stage_tables,
    finish_apply,
    start_apply,
)
from outreach.contacts.import_stage import Columns, StageWriter, stage_records
from outreach.contacts.models import (
    ContactList,
    Import,
    ImportRejection,
    ImportRow,
    Tombstone,
    TransferStatus,
)
from outreach.contacts.service import find_list
from outreach.db import utcnow
from outreach.exceptions import NotFound, ValidationError
from outreach.files.service import open_stored, store_stream
from outreach.queue import enqueue


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
    _fast_compression(db)
    stored = store_stream(db, stream, filename or "import.csv",
                          max_bytes=current_app.config.get("MAX_CONTENT_LENGTH"))
    row = Import(filename=(filename or "import.csv")[:255], file_id=stored.id,
                 list_id=target.id if target else None, mode=mode, consent=channels,
                 consent_source=consent_source.strip(), created_by_id=actor_id,
                 column_map=column_map)
    db.add(row)
    db.flush()
    return row


def _fast_compression(db: Session) -> None:
    """Have PostgreSQL compress the stored upload with lz4 rather than pglz, if it can.

    Storing a 100 MB file spends most of its time in pglz (measured: 20 MB of CSV in 1.3-1.6 s
    with pglz, 0.35 s with lz4, to the same size); only this transaction's new values change.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    if db.scalar(sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                         "WHERE name = 'default_toast_compression'")):
        db.execute(sa.text("SET LOCAL default_toast_compression = lz4"))


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
        try:
            _apply_file(session, imp, on_progress, match=False)
        except sa.exc.IntegrityError as exc:
            if not address_taken(exc):
                raise
            # Somebody added a contact with an address of the file while the import ran:
            # unseen because the import, having found no contacts at its start, did not look
            # its rows up (or, rarely, between a batch's look-up and its insert). All of it is
            # rolled back, and it runs once more, looking each row up.
            session.rollback()
            _progress(engine, import_id, 0, 0, phase="reading again")  # the bar starts over
            imp = session.get(Import, import_id)
            assert imp is not None
            _apply_file(session, imp, on_progress, match=True)
    except Exception as exc:
        session.rollback()
        failed = session.get(Import, import_id)
        assert failed is not None
        failed.status, failed.finished_at = TransferStatus.FAILED.value, utcnow()
        failed.error = str(exc)[:2000] if isinstance(exc, (CsvError, ValidationError)) else (
            f"Internal error ({type(exc).__name__}); nothing was imported.")
        session.commit()
        raise  # RQ records the job as failed with its traceback


def _apply_file(session: Session, imp: Import,
                on_progress: Callable[[int, int], None] | None, match: bool) -> None:
    """Stage and apply the whole file and commit; `match`: see start_apply."""
    engine = session.get_bind()
    # Staged rows live in temporary tables of this session's connection, inside the one
    # transaction that applies them. Progress goes through other connections meanwhile,
    # so this session must not write the imports row before the end.
    create_stage_tables(session)
    plan = start_apply(session, imp, match=match)
    total = _stage(session, imp, plan, on_progress)
    _progress(engine, imp.id, total, 99, phase="applying")
    apply_chunk(session, plan)  # what is still staged: all of it on SQLite, else nothing
    finish_apply(session, plan, imp)
    imp.rows_total = imp.rows_processed = total
    imp.status, imp.phase, imp.progress = TransferStatus.DONE.value, "", 100
    imp.finished_at = utcnow()
    session.commit()


def _stage(session: Session, imp: Import, plan: ImportPlan,
           on_progress: Callable[[int, int], None] | None = None) -> int:
    """Read, validate and normalize each row, applying them batch by batch; return the count."""
    assert imp.file_id is not None
    import_id, file_id, column_map = imp.id, imp.file_id, dict(imp.column_map or {})
    engine = session.get_bind()
    stream, raw = open_stored(engine, file_id)
    size = max(1, _file_size(session, file_id))
    source = open_csv(stream)
    column_map = column_map or dict(match_columns(source.header))
    ignored = {int(i) for i in column_map.pop("_ignore", None) or []}
    mapping = {k: int(v) for k, v in column_map.items() if not k.startswith("custom:")}
    # Columns neither mapped nor ignored become custom fields named after their header.
    custom = custom_columns(source.header, {**mapping, **{f"_ignore{i}": i for i in ignored}})
    custom.update({k.removeprefix("custom:"): int(v) for k, v in column_map.items()
                   if k.startswith("custom:")})
    cols = Columns.of(mapping, custom)
    tombstones = set(session.scalars(sa.select(Tombstone.digest)))
    region = current_app.config.get("DEFAULT_REGION", "US")

    def batch_done(total: int) -> None:
        percent = min(99, raw.bytes_read * 100 // size)
        _progress(engine, import_id, total, percent)
        if on_progress:
            on_progress(total, percent)

    # From here on the writer's thread alone uses the session, until stage_records returns.
    writer = StageWriter(session.connection(), lambda: apply_chunk(session, plan))
    try:
        return stage_records(source.records(cols.width()), cols, region, tombstones, writer,
                             batch_done)
    finally:
        writer.stop()


def _progress(engine: sa.Engine, import_id: int, processed: int, percent: int,
              phase: str | None = None) -> None:
    """Publish how far the import is, in its own short transaction."""
    values: dict[str, Any] = {"rows_processed": processed, "progress": percent}
    if phase is not None:
        values["phase"] = phase
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # A progress figure may be lost in a crash, and the import's own transaction
            # keeps writing WAL meanwhile: a synchronous commit here would wait for the
            # server to flush all of that to disk, once per batch, stalling the reader.
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        conn.execute(sa.update(Import).where(Import.id == import_id).values(**values))


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
