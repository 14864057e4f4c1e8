"""Import pages: upload a CSV, confirm its columns, watch the progress, read the report.

The flow: step 1 stores the file and creates the Import (phase "mapping", not queued yet);
step 2 shows the detected columns with a preview and saves the confirmed `column_map`, then
queues the job; step 3 shows the progress bar and, when done, the report.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import sqlalchemy as sa
from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from outreach import db
from outreach.accounts.models import Role, User
from outreach.auth import requires
from outreach.contacts import imports as import_service
from outreach.contacts.csvfile import CsvError, field_key, match_columns, open_csv
from outreach.contacts.models import Import, TransferStatus
from outreach.contacts.views import (
    actor_id,
    bp,
    csv_response,
    error_text,
    list_names,
    optional_int,
)
from outreach.exceptions import NotFound, ValidationError
from outreach.files.models import StoredFile
from outreach.files.service import open_stored

AWAITING_MAPPING = "mapping"  # Import.phase while the organizer has not confirmed the columns
CONFIRMED = "queued"  # Import.phase once confirmed, until the job starts reading
PREVIEW_ROWS = 10
RECENT = 50
# What a column can be mapped to on the mapping page, in the order the select shows them.
TARGETS: dict[str, str] = {
    "email": "Email", "phone": "Phone (mobile)", "first_name": "First name",
    "last_name": "Last name", "postal_code": "Postal code", "timezone": "Time zone",
    "tags": "Tags (separated by commas)", "custom": "Custom field", "ignore": "Ignore",
}
CANONICAL = tuple(k for k in TARGETS if k not in ("custom", "ignore"))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Any:
    """An upload over MAX_UPLOAD_MB: the form again with a clear error (nothing is stored)."""
    limit = (request.max_content_length or 0) // (1024 * 1024)
    message = f"The file is too large; the limit is {limit} MB." if limit else (
        "The file is too large.")
    if request.endpoint == "contacts.upload_import":
        return _upload_form(message, 413)
    if request.endpoint == "contacts.import_suppressions":
        flash(message, "error")
        return redirect(url_for("contacts.suppressions"))
    return render_template("error.html", error=exc), 413


def _get_import(import_id: int) -> Import:
    row = db.session().get(Import, import_id)
    if row is None:
        raise NotFound(f"No import {import_id}")
    return row


def _upload_form(error: str | None = None, status: int = 200, **values: Any) -> Any:
    return render_template("contacts/import_new.html", error=error, values=values,
                           lists=list_names(db.session())), status


@bp.get("/imports")
@requires(Role.VIEWER)
def imports() -> Any:
    """The most recent imports with their status and counts."""
    session = db.session()
    rows = session.scalars(sa.select(Import).order_by(Import.id.desc()).limit(RECENT)).all()
    user_ids = {r.created_by_id for r in rows if r.created_by_id}
    users = dict(session.execute(sa.select(User.id, User.email)
                                 .where(User.id.in_(user_ids))).all()) if user_ids else {}
    return render_template("contacts/imports.html", imports=rows, users=users,
                           lists=list_names(session), awaiting=AWAITING_MAPPING)


@bp.get("/imports/new")
@requires(Role.ORGANIZER)
def new_import() -> Any:
    """Step 1: the upload form."""
    return _upload_form(list=request.args.get("list", ""), mode="add")


@bp.post("/imports/new")
@requires(Role.ORGANIZER)
def upload_import() -> Any:
    """Store the uploaded file and create the import; bad files store nothing."""
    form = request.form
    upload = request.files.get("file")
    choice, new_name = form.get("list", ""), form.get("new_list", "").strip()
    values = {"list": choice, "new_list": new_name, "mode": form.get("mode", "add"),
              "consent": form.getlist("consent"), "consent_source": form.get("consent_source", "")}
    if upload is None or not upload.filename:
        return _upload_form("Choose a CSV file to upload.", 422, **values)
    if choice == "new" and not new_name:
        return _upload_form("Give the new list a name, or pick an existing list.", 422, **values)
    list_ref: str | int | None = new_name if choice == "new" else optional_int(choice)
    try:
        with db.transaction() as session:
            imp = import_service.create_import(
                session, upload.stream, upload.filename, list_ref, values["mode"],
                ",".join(values["consent"]), values["consent_source"], actor_id())
            imp.phase = AWAITING_MAPPING
    except ValidationError as exc:
        return _upload_form(error_text(exc), 422, **values)
    return redirect(url_for("contacts.import_mapping", import_id=imp.id))


def read_preview(file_id: int, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    """A stored CSV's header, encoding, delimiter, warnings and first rows."""
    stream, _ = open_stored(db.engine(), file_id)
    with open_csv(stream) as source:
        preview = list(islice(source.rows(), rows))
        return {"header": source.header, "encoding": source.encoding,
                "delimiter": source.delimiter, "warnings": source.warnings, "rows": preview}


def default_choices(header: list[str], column_map: dict[str, Any] | None) -> list[str]:
    """The target each column is mapped to: the saved map, or the automatic one."""
    saved = dict(column_map or match_columns(header))
    ignored = {int(i) for i in saved.pop("_ignore", None) or []}
    by_index = {int(i): field for field, i in saved.items() if field in CANONICAL}
    return [by_index.get(i) or ("ignore" if i in ignored or not field_key(name) else "custom")
            for i, name in enumerate(header)]


def build_column_map(header: list[str], choices: list[str]) -> dict[str, Any]:
    """The Import.column_map for the chosen targets: {field: index}, plus "_ignore": [index].

    Columns left as "custom" are not listed: the import makes every column that is neither
    mapped nor ignored a custom field named after its header (csvfile.custom_columns).
    """
    column_map: dict[str, Any] = {}
    errors: dict[str, str] = {}
    ignored: list[int] = []
    for index, choice in enumerate(choices):
        if choice == "ignore":
            ignored.append(index)
        elif choice == "custom":
            if not field_key(header[index]):
                errors[f"col-{index}"] = "this column has no name to use as a custom field"
        elif choice not in CANONICAL:
            errors[f"col-{index}"] = "choose what this column holds"
        elif choice in column_map:
            errors[f"col-{index}"] = (f"{TARGETS[choice]} is already column "
                                      f"{column_map[choice] + 1}")
        else:
            column_map[choice] = index
    if "email" not in column_map and "phone" not in column_map and not errors:
        errors["columns"] = "map at least one column to Email or Phone"
    if errors:
        raise ValidationError("Check the columns", errors)
    if ignored:
        column_map["_ignore"] = ignored
    return column_map


def _mapping_page(imp: Import, choices: list[str] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200) -> Any:
    try:
        preview = read_preview(imp.file_id) if imp.file_id else None
    except CsvError as exc:
        preview, errors = None, {"file": str(exc)}
    if preview is None:
        return render_template("contacts/import_mapping.html", imp=imp, preview=None,
                               errors=errors or {"file": "The stored file is missing."},
                               targets=TARGETS, lists=list_names(db.session())), 410
    header = preview["header"]
    return render_template(
        "contacts/import_mapping.html", imp=imp, preview=preview, targets=TARGETS,
        choices=choices or default_choices(header, imp.column_map), errors=errors or {},
        custom_keys=[field_key(name) for name in header], lists=list_names(db.session()),
        samples=[[row.values[i] for row in preview["rows"] if not row.error
                  and i < len(row.values) and row.values[i].strip()][:3]
                 for i in range(len(header))],
        delimiter_name={",": "comma", ";": "semicolon", "\t": "tab"}.get(
            preview["delimiter"], repr(preview["delimiter"]))), status


@bp.get("/imports/<int:import_id>/mapping")
@requires(Role.ORGANIZER)
def import_mapping(import_id: int) -> Any:
    """Step 2: the detected columns, the mapping to confirm and the first rows."""
    imp = _get_import(import_id)
    if imp.phase != AWAITING_MAPPING:
        return redirect(url_for("contacts.import_detail", import_id=import_id))
    return _mapping_page(imp)


@bp.post("/imports/<int:import_id>/mapping")
@requires(Role.ORGANIZER)
def confirm_import(import_id: int) -> Any:
    """Save the confirmed column mapping and queue the import."""
    imp = _get_import(import_id)
    if imp.phase != AWAITING_MAPPING or imp.file_id is None:
        flash("This import was already confirmed.", "info")
        return redirect(url_for("contacts.import_detail", import_id=import_id))
    header = read_preview(imp.file_id, rows=0)["header"]
    choices = [request.form.get(f"col-{i}", "ignore") for i in range(len(header))]
    try:
        column_map = build_column_map(header, choices)
    except ValidationError as exc:
        return _mapping_page(imp, choices, exc.fields, 422)
    with db.transaction() as session:
        claimed = session.execute(
            sa.update(Import).where(Import.id == import_id, Import.phase == AWAITING_MAPPING,
                                    Import.status == TransferStatus.QUEUED.value)
            .values(column_map=column_map, phase=CONFIRMED)).rowcount
    if claimed == 1:
        import_service.queue_import(import_id)
        flash("Import queued.", "success")
    return redirect(url_for("contacts.import_detail", import_id=import_id))


@bp.post("/imports/<int:import_id>/discard")
@requires(Role.ORGANIZER)
def discard_import(import_id: int) -> Any:
    """Throw away an upload whose columns were never confirmed, with its stored file."""
    with db.transaction() as session:
        imp = session.get(Import, import_id)
        if imp is None or imp.phase != AWAITING_MAPPING:
            flash("Only an import waiting for its columns to be confirmed can be discarded.",
                  "error")
            return redirect(url_for("contacts.imports"))
        if imp.file_id is not None:
            session.execute(sa.delete(StoredFile).where(StoredFile.id == imp.file_id))
        session.delete(imp)
    flash("Upload discarded.", "success")
    return redirect(url_for("contacts.imports"))


def status_json(imp: Import) -> dict[str, Any]:
    """What the progress bar needs."""
    return {"id": imp.id, "status": imp.status, "phase": imp.phase, "progress": imp.progress,
            "rows_processed": imp.rows_processed, "rows_total": imp.rows_total,
            "created": imp.created, "updated": imp.updated, "skipped": imp.skipped,
            "rejected": imp.rejected, "error": imp.error,
            "finished": imp.status in (TransferStatus.DONE.value, TransferStatus.FAILED.value)}


@bp.get("/imports/<int:import_id>")
@requires(Role.VIEWER)
def import_detail(import_id: int) -> Any:
    """Step 3: the progress bar while the import runs, then its report."""
    imp = _get_import(import_id)
    return render_template("contacts/import.html", imp=imp, status=status_json(imp),
                           lists=list_names(db.session()), awaiting=AWAITING_MAPPING)


@bp.get("/imports/<int:import_id>/status.json")
@requires(Role.VIEWER)
def import_status(import_id: int) -> Any:
    """The import's progress as JSON, polled by static/js/import-progress.js."""
    imp = _get_import(import_id)
    return jsonify(status_json(imp)), 200, {"Cache-Control": "no-store"}


@bp.get("/imports/<int:import_id>/rejections.csv")
@requires(Role.VIEWER)
def import_rejections(import_id: int) -> Any:
    """The rows the import refused, as CSV: line, reason, then the row's values."""
    imp = _get_import(import_id)
    return csv_response(import_service.rejections_csv(db.session(), imp.id),
                        f"import-{imp.id}-rejected.csv")
