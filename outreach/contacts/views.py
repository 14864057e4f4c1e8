"""Staff pages for contacts, lists, segments, imports, exports and suppressions.

This module holds the contact and list pages and the helpers the other page modules share;
`import_views`, `segment_views` and `suppression_views` add their routes to the same blueprint.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.datastructures import MultiDict

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import current_user, requires
from outreach.contacts import consent, service
from outreach.contacts.models import (
    Channel,
    ConsentStatus,
    Contact,
    ContactList,
    Export,
    Segment,
    Tag,
)
from outreach.exceptions import Conflict, NotFound, ValidationError
from outreach.files.models import StoredFile
from outreach.files.service import iter_chunks

bp = Blueprint("contacts", __name__)
PAGE_SIZE = 50
COUNT_LIMIT = 1_000  # a filtered total is counted this far, then "More than 1,000"
CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "postal_code", "timezone")


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", error=_HttpError(404, "Not Found", str(exc))), 404


class _HttpError:
    """What error.html needs to show a domain error as a page."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


def actor_id() -> int | None:
    """The signed-in staff member's id, recorded on what they change."""
    user = current_user()
    return user.id if user is not None else None


def error_text(exc: Exception) -> str:
    """A domain error as one readable sentence, naming the bad fields."""
    fields = getattr(exc, "fields", None) or {}
    details = "; ".join(f"{k}: {v}" for k, v in fields.items())
    message = getattr(exc, "message", None) or str(exc)
    return f"{message} ({details})" if details else message


def optional_int(value: str | None) -> int | None:
    """A positive id from a query string or form, or None when blank or not a number."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def list_names(session: Any) -> dict[int, str]:
    """Every list's name by id, for selects and labels."""
    return dict(session.execute(sa.select(ContactList.id, ContactList.name)
                                .order_by(ContactList.name)).all())


# Contacts ------------------------------------------------------------------------------------

@bp.get("/contacts")
@requires(Role.VIEWER)
def index() -> Any:
    """Search and filter contacts, a page at a time, with the total for the filter."""
    args = request.args
    filters = {"q": args.get("q", "").strip(), "list": optional_int(args.get("list")),
               "tag": args.get("tag", "").strip(), "segment": optional_int(args.get("segment"))}
    session = db.session()
    rows: list[Contact] = []
    total, more, next_cursor, error = 0, False, None, None
    try:
        query = service.search_contacts(session, list_id=filters["list"], tag=filters["tag"],
                                        segment_id=filters["segment"], q=filters["q"])
        cursor = args.get("cursor") or None
        if any(filters.values()):
            rows, next_cursor, total, more = service.filtered_page(
                session, query, PAGE_SIZE, cursor, COUNT_LIMIT)
        else:
            total = service.count_all_contacts(session)
            rows, next_cursor = service.page(session, query, PAGE_SIZE, cursor)
    except (ValidationError, NotFound) as exc:
        session.rollback()
        error = error_text(exc)
    return render_template(
        "contacts/index.html", contacts=service.contacts_json(session, rows), total=total,
        more=more,
        next_cursor=next_cursor, filters=filters, error=error, lists=list_names(session),
        tags=session.scalars(sa.select(Tag.name).order_by(Tag.name)).all(),
        segments=session.execute(sa.select(Segment.id, Segment.name).order_by(Segment.name)).all(),
        paged=bool(args.get("cursor")),
    ), (400 if error else 200)


def _contact_form_data(form: MultiDict[str, str], all_fields: bool = True) -> dict[str, Any]:
    """The contact form as the data `service.create_contact`/`update_contact` take."""
    data: dict[str, Any] = {key: form.get(key, "") for key in CONTACT_FIELDS}
    data["tags"] = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    data["lists"] = [int(i) for i in form.getlist("lists") if i.isdigit()]
    fields: dict[str, str] = {}
    for key, value in zip(form.getlist("field_key"), form.getlist("field_value"), strict=False):
        if key.strip() and (value.strip() or not all_fields):
            fields[key.strip()[:100]] = value.strip()
    for key, value in zip(form.getlist("new_field_key"), form.getlist("new_field_value"),
                          strict=False):
        if key.strip() and value.strip():
            fields[key.strip()[:100]] = value.strip()
    data["fields"] = fields
    return data


def _form_values(data: dict[str, Any]) -> dict[str, Any]:
    """Submitted data shaped back into what the form template shows."""
    return {**{k: data.get(k) or "" for k in CONTACT_FIELDS}, "tags": ", ".join(data["tags"]),
            "lists": data["lists"], "fields": data["fields"]}


@bp.get("/contacts/new")
@requires(Role.ORGANIZER)
def new_contact() -> Any:
    """The form to add one contact by hand."""
    return render_template("contacts/new.html", values={"lists": [], "fields": {}}, errors={},
                           lists=list_names(db.session()))


@bp.post("/contacts/new")
@requires(Role.ORGANIZER)
def create_contact() -> Any:
    """Add a contact from the form; on error show the form again with each field's problem."""
    data = _contact_form_data(request.form)
    try:
        with db.transaction() as session:
            contact = service.create_contact(session, data)
    except (ValidationError, Conflict) as exc:
        return render_template(
            "contacts/new.html", values=_form_values(data), lists=list_names(db.session()),
            errors=getattr(exc, "fields", {}), form_error=error_text(exc)), 422
    flash("Contact added.", "success")
    return redirect(url_for("contacts.contact", contact_id=contact.id))


def _render_contact(contact_id: int, status: int = 200, **extra: Any) -> Any:
    """The contact page: fields, lists, tags, consent and its ledger, suppressions."""
    session = db.session()
    contact = service.get_contact(session, contact_id)
    shaped = service.contacts_json(session, [contact])[0]
    suppressions = {channel.value: consent.suppression_for(session, channel,
                                                           consent.address_for(contact, channel))
                    for channel in Channel}
    values = extra.pop("values", None) or {
        **{k: getattr(contact, k) or "" for k in CONTACT_FIELDS},
        "tags": ", ".join(shaped["tags"]), "lists": shaped["lists"], "fields": contact.fields or {}}
    return render_template(
        "contacts/contact.html", contact=contact, shaped=shaped, lists=list_names(session),
        history=consent.history(session, contact_id), suppressions=suppressions, values=values,
        errors=extra.pop("errors", {}), **extra), status


@bp.get("/contacts/<int:contact_id>")
@requires(Role.VIEWER)
def contact(contact_id: int) -> Any:
    """One contact's page."""
    return _render_contact(contact_id)


@bp.post("/contacts/<int:contact_id>")
@requires(Role.ORGANIZER)
def update_contact(contact_id: int) -> Any:
    """Save the edit form; on error show the page again with each field's problem."""
    data = _contact_form_data(request.form, all_fields=False)
    try:
        with db.transaction() as session:
            service.update_contact(session, contact_id, data)
    except (ValidationError, Conflict) as exc:
        return _render_contact(contact_id, 422, values=_form_values(data),
                               errors=getattr(exc, "fields", {}), form_error=error_text(exc))
    flash("Contact saved.", "success")
    return redirect(url_for("contacts.contact", contact_id=contact_id))


@bp.post("/contacts/<int:contact_id>/consent")
@requires(Role.ORGANIZER)
def change_consent(contact_id: int) -> Any:
    """Record a consent given to staff (evidence required) or revoke one, in the ledger."""
    form = request.form
    action, evidence = form.get("action", ""), form.get("evidence", "").strip()
    try:
        channel = consent.parse_channel(form.get("channel", ""))
        if action not in ("grant", "revoke"):
            raise ValidationError("Unknown action", {"action": "grant or revoke"})
        if action == "grant" and not evidence:
            raise ValidationError("Say how this person gave consent",
                                  {"evidence": "required to record consent"})
        status = ConsentStatus.GRANTED if action == "grant" else ConsentStatus.REVOKED
        with db.transaction() as session:
            found = service.get_contact(session, contact_id)
            before = getattr(found, consent.CONSENT_COLUMN[channel])
            service.grant_or_revoke(session, found, channel, status, "staff",
                                    {"note": evidence[:2000], "staff_user_id": actor_id()},
                                    actor_id())
    except ValidationError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("contacts.contact", contact_id=contact_id))
    label = "Email" if channel is Channel.EMAIL else "SMS"
    if before == status.value:
        flash(f"{label} consent was already {status.value}; nothing changed.", "info")
    else:
        flash(f"{label} consent {status.value} and recorded in the ledger.", "success")
    return redirect(url_for("contacts.contact", contact_id=contact_id))


@bp.get("/contacts/<int:contact_id>/erase")
@requires(Role.ORGANIZER)
def confirm_erase(contact_id: int) -> Any:
    """Explain what erasing does and ask for confirmation."""
    return render_template("contacts/erase.html",
                           contact=service.get_contact(db.session(), contact_id))


@bp.post("/contacts/<int:contact_id>/erase")
@requires(Role.ORGANIZER)
def erase_contact(contact_id: int) -> Any:
    """Erase a contact for good; hashed tombstones stop their addresses coming back."""
    with db.transaction() as session:
        service.erase_contact(session, contact_id)
    flash("The contact was erased. Their addresses cannot be imported or added again.", "success")
    return redirect(url_for("contacts.index"))


# Exports -------------------------------------------------------------------------------------

@bp.post("/contacts/export")
@requires(Role.ORGANIZER)
def export_contacts() -> Any:
    """Start a background CSV export of every contact, a list or a segment."""
    try:
        from outreach.contacts import exports
    except ImportError:
        flash("Exports are not available yet.", "error")
        return redirect(url_for("contacts.index"))
    list_id, segment_id = optional_int(request.form.get("list")), optional_int(
        request.form.get("segment"))
    try:
        with db.transaction() as session:
            export = exports.create_export(session, "contacts", list_id=list_id,
                                           segment_id=segment_id, actor_id=actor_id())
    except ValidationError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("contacts.index", list=list_id, segment=segment_id))
    exports.queue_export(export.id)
    flash("Export started; the file appears here when it is ready.", "success")
    return redirect(url_for("contacts.export", export_id=export.id))


@bp.get("/exports/<int:export_id>")
@requires(Role.ORGANIZER)
def export(export_id: int) -> Any:
    """An export's status, refreshing until its file can be downloaded."""
    row = db.session().get(Export, export_id)
    if row is None or row.kind != "contacts":
        abort(404)
    return render_template("contacts/export.html", export=row, lists=list_names(db.session()),
                           segment=db.session().get(Segment, row.segment_id)
                           if row.segment_id else None)


@bp.get("/exports/<int:export_id>/download")
@requires(Role.ORGANIZER)
def download_export(export_id: int) -> Any:
    """Stream a finished export's CSV file."""
    session = db.session()
    row = session.get(Export, export_id)
    if row is None or row.kind != "contacts" or row.file_id is None:
        abort(404)
    stored = session.get(StoredFile, row.file_id)
    name = stored.name if stored is not None else f"contacts-{export_id}.csv"
    return csv_response(iter_chunks(db.engine(), row.file_id), name)


def csv_response(chunks: Any, filename: str) -> Response:
    """A streamed CSV download (the app context stays open while it streams)."""
    safe = "".join(ch for ch in filename if ch.isalnum() or ch in "-_.") or "export.csv"
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"',
                             "Cache-Control": "no-store"})


# The other page modules register their routes on `bp` when imported.
from outreach.contacts import (  # noqa: E402, F401
    import_views,
    list_views,
    segment_views,
    suppression_views,
)
