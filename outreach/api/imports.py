"""The JSON API for CSV transfers: contact imports (upload, then poll) and exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge

from outreach import db
from outreach.accounts.models import Role
from outreach.api import bp, json_body
from outreach.api.contacts import actor_id, limit_arg, page_json, page_newest_first
from outreach.api.errors import api_error
from outreach.auth import current_user, requires
from outreach.contacts import exports, imports
from outreach.contacts.models import Export, Import, TransferStatus
from outreach.exceptions import Conflict, NotFound, ValidationError
from outreach.files.service import iter_chunks


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Any:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    message = f"The upload is larger than the {limit // (1024 * 1024) or 1} MB allowed"
    return api_error(413, "too_large", message, {"file": message})


def _get(model: Any, ident: int, what: str) -> Any:
    row = db.session().get(model, ident)
    if row is None:
        raise NotFound(f"No {what} {ident}")
    return row


# Imports ------------------------------------------------------------------------------------

@bp.get("/imports")
@requires(Role.VIEWER)
def list_imports() -> Any:
    """Recent imports, newest first."""
    rows, next_cursor = page_newest_first(db.session(), sa.select(Import), Import.id,
                                          limit_arg(), request.args.get("cursor"))
    return jsonify(page_json([imports.import_json(i) for i in rows], next_cursor))


@bp.post("/imports")
@requires(Role.ORGANIZER)
def create_import() -> Any:
    """Upload a CSV of contacts; it is checked now and imported by a worker (poll its status)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Attach the CSV file as `file`", {"file": "required"})
    form = request.form
    with db.transaction() as session:
        imp = imports.create_import(
            session, upload.stream, upload.filename, form.get("list", "").strip() or None,
            form.get("mode", "").strip() or "add", form.get("consent", ""),
            form.get("consent_source", ""), actor_id())
    imports.queue_import(imp.id)  # after the commit, so the worker finds the row
    response = jsonify(imports.import_json(imp))
    response.headers["Location"] = url_for("api.get_import", import_id=imp.id)
    return response, 202


@bp.get("/imports/<int:import_id>")
@requires(Role.VIEWER)
def get_import(import_id: int) -> Any:
    """An import's status and counts."""
    return jsonify(imports.import_json(_get(Import, import_id, "import")))


@bp.get("/imports/<int:import_id>/errors")
@requires(Role.VIEWER)
def import_errors(import_id: int) -> Any:
    """The rows an import rejected, as CSV: line, reason, then the row's values."""
    _get(Import, import_id, "import")
    engine = db.engine()

    def body() -> Iterator[str]:
        # Its own session, closed when the stream ends or the client goes away: the request's
        # session is closed before a streamed body runs, and reusing it would leave its
        # connection idle in a transaction.
        with Session(engine) as session:
            yield from imports.rejections_csv(session, import_id)

    return Response(body(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'})


# Exports ------------------------------------------------------------------------------------

def _check_export_role(kind: str | None) -> None:
    """Suppression exports are for admins; contacts exports for organizers and up."""
    user = current_user()
    if kind == "suppressions" and (user is None or not user.role_enum.allows(Role.ADMIN)):
        raise Forbidden("Exporting suppressions needs the admin role.")


def _readable_export(export_id: int) -> Export:
    export = _get(Export, export_id, "export")
    _check_export_role(export.kind)
    return export


@bp.get("/exports")
@requires(Role.ORGANIZER)
def list_exports() -> Any:
    """Recent exports, newest first (suppression exports are listed to admins only)."""
    query = sa.select(Export)
    user = current_user()
    if user is None or not user.role_enum.allows(Role.ADMIN):
        query = query.where(Export.kind != "suppressions")
    rows, next_cursor = page_newest_first(db.session(), query, Export.id, limit_arg(),
                                          request.args.get("cursor"))
    return jsonify(page_json([exports.export_json(e) for e in rows], next_cursor))


@bp.post("/exports")
@requires(Role.ORGANIZER)
def create_export() -> Any:
    """Queue a CSV export of contacts (all, a list or a segment) or of suppressions (admin)."""
    data = json_body()
    _check_export_role(data.get("kind"))
    with db.transaction() as session:
        export = exports.create_export(session, data.get("kind"), data.get("list_id"),
                                       data.get("segment_id"), actor_id())
    exports.queue_export(export.id)  # after the commit, so the worker finds the row
    response = jsonify(exports.export_json(export))
    response.headers["Location"] = url_for("api.get_export", export_id=export.id)
    return response, 202


@bp.get("/exports/<int:export_id>")
@requires(Role.ORGANIZER)
def get_export(export_id: int) -> Any:
    """An export's status, row count and, once done, its download URL."""
    return jsonify(exports.export_json(_readable_export(export_id)))


@bp.get("/exports/<int:export_id>/download")
@requires(Role.ORGANIZER)
def export_download(export_id: int) -> Any:
    """The exported CSV file."""
    export = _readable_export(export_id)
    if export.status != TransferStatus.DONE.value or export.file_id is None:
        raise Conflict(f"Export {export_id} is {export.status}, not ready to download")
    return Response(iter_chunks(db.engine(), export.file_id), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{exports.filename(export)}"'})
