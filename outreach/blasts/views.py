"""Staff pages for blasts: list, create and edit drafts, launch, pause, resume, cancel, progress."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from outreach import db
from outreach.accounts.models import Role
from outreach.auth import current_user, requires
from outreach.blasts import pipeline, service
from outreach.blasts.models import ACTIVE, Blast, BlastStatus
from outreach.contacts.models import ContactList, Segment
from outreach.content.models import MessageTemplate, TemplateVersion
from outreach.exceptions import Conflict, NotFound, ValidationError

bp = Blueprint("blasts", __name__)
PAGE_SIZE = 50
EDITABLE = (BlastStatus.DRAFT.value, BlastStatus.SCHEDULED.value)


class _HttpError:
    """What error.html needs to show a domain error as a page."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", error=_HttpError(404, "Not Found", str(exc))), 404


def _actor() -> Any:
    return current_user()


def _optional_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def progress(counts: dict[str, int]) -> dict[str, Any]:
    """Counts with how many messages are finished, and the percentage, for bars."""
    total = counts.get("total", 0)
    processed = total - counts.get("queued", 0) - counts.get("sending", 0)
    return {**counts, "processed": processed,
            "percent": round(processed * 100 / total) if total else 0}


# The form ------------------------------------------------------------------------------------

def _form_data(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The blast form as `save_blast` data, plus errors only the form can make."""
    errors: dict[str, str] = {}
    throttle_raw = form.get("throttle_per_minute", "").strip()
    data: dict[str, Any] = {
        "name": form.get("name", ""),
        "channel": "sms" if form.get("channel") == "sms" else "email",
        "template_id": _optional_int(form.get("template_id")),
        "list_ids": [int(v) for v in form.getlist("list_ids") if v.isdigit()],
        "exclude_list_ids": [int(v) for v in form.getlist("exclude_list_ids") if v.isdigit()],
        "segment_id": _optional_int(form.get("segment_id")),
        "throttle_per_minute": (int(throttle_raw) if throttle_raw.isdigit()
                                else throttle_raw or None),
        "send_at": None, "window": None,
    }
    schedule = form.get("schedule", "now")
    if schedule == "at":
        # datetime-local has no zone; save_blast reads a naive time as UTC, as the form says.
        data["send_at"] = form.get("send_at", "").strip() or None
        if not data["send_at"]:
            errors["send_at"] = "choose the date and time (UTC)"
    elif schedule == "window":
        start, end = form.get("window_start", "").strip(), form.get("window_end", "").strip()
        if start and end:
            data["window"] = {"start": start, "end": end}
        else:
            errors["window"] = "choose a start and an end time"
    return data, errors


def _values(form: MultiDict[str, str] | None = None, blast: Blast | None = None) -> dict[str, Any]:
    """What the form shows: a submitted form, a blast's settings, or defaults."""
    if form is not None:
        return {"name": form.get("name", ""), "template_id": _optional_int(form.get("template_id")),
                "list_ids": [int(v) for v in form.getlist("list_ids") if v.isdigit()],
                "exclude_list_ids": [int(v) for v in form.getlist("exclude_list_ids")
                                     if v.isdigit()],
                "segment_id": _optional_int(form.get("segment_id")),
                "schedule": form.get("schedule", "now"), "send_at": form.get("send_at", ""),
                "window_start": form.get("window_start", ""),
                "window_end": form.get("window_end", ""),
                "throttle_per_minute": form.get("throttle_per_minute", "")}
    if blast is not None:
        schedule = "at" if blast.send_at else "window" if blast.window_start else "now"
        return {"name": blast.name, "template_id": blast.template_id,
                "list_ids": blast.list_ids or [], "exclude_list_ids": blast.exclude_list_ids or [],
                "segment_id": blast.segment_id, "schedule": schedule,
                "send_at": blast.send_at.strftime("%Y-%m-%dT%H:%M") if blast.send_at else "",
                "window_start": blast.window_start or "", "window_end": blast.window_end or "",
                "throttle_per_minute": blast.throttle_per_minute or ""}
    return {"name": "", "template_id": _optional_int(request.args.get("template_id")),
            "list_ids": [], "exclude_list_ids": [], "segment_id": None, "schedule": "now",
            "send_at": "", "window_start": "10:00", "window_end": "12:00",
            "throttle_per_minute": ""}


def _form_page(channel: str, values: dict[str, Any], errors: dict[str, str],
               blast: Blast | None = None, status: int = 200) -> Any:
    session = db.session()
    templates = session.scalars(sa.select(MessageTemplate).where(
        MessageTemplate.channel == channel).order_by(MessageTemplate.name)).all()
    lists = session.execute(sa.select(ContactList.id, ContactList.name)
                            .order_by(ContactList.name)).all()
    segments = session.execute(sa.select(Segment.id, Segment.name).order_by(Segment.name)).all()
    return render_template("blasts/form.html", blast=blast, channel=channel, values=values,
                           errors=errors, templates=templates, lists=lists,
                           segments=segments), status


def _channel(default: str) -> str:
    requested = request.args.get("channel")
    return requested if requested in ("email", "sms") else default


# Pages ---------------------------------------------------------------------------------------

@bp.get("/blasts")
@requires(Role.VIEWER)
def index() -> Any:
    """Blasts, newest first, with their status and progress."""
    session = db.session()
    query = sa.select(Blast).order_by(Blast.id.desc()).limit(PAGE_SIZE + 1)
    before = _optional_int(request.args.get("before"))
    if before:
        query = query.where(Blast.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    counts = service.counts_of(session, rows)
    shown = [(blast, progress(counts[blast.id])) for blast in rows]
    return render_template("blasts/index.html", blasts=shown,
                           next_before=rows[-1].id if more else None)


@bp.get("/blasts/new")
@requires(Role.ORGANIZER)
def new() -> Any:
    """The form for a new draft blast."""
    template_id = _optional_int(request.args.get("template_id"))
    template = db.session().get(MessageTemplate, template_id) if template_id else None
    channel = _channel(template.channel if template else "email")
    return _form_page(channel, _values(), {})


@bp.post("/blasts/new")
@requires(Role.ORGANIZER)
def create() -> Any:
    """Save the form as a draft blast and show its page, with the audience count."""
    data, form_errors = _form_data(request.form)
    actor = _actor()
    try:
        with db.transaction() as session:
            blast = service.save_blast(session, data, actor_id=actor.id if actor else None)
            if form_errors:
                raise ValidationError("Invalid blast", form_errors)
    except ValidationError as exc:
        return _form_page(data["channel"], _values(request.form),
                          {**exc.fields, **form_errors}, status=422)
    flash("Draft saved. Check the audience, then launch it.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast.id))


@bp.get("/blasts/<int:blast_id>")
@requires(Role.VIEWER)
def blast(blast_id: int) -> Any:
    """A blast's settings, audience, status and progress, with the actions its status allows."""
    session = db.session()
    row = service.get_blast(session, blast_id)
    template = session.get(MessageTemplate, row.template_id)
    version = session.get(TemplateVersion, row.template_version_id) \
        if row.template_version_id else None
    lists = dict(session.execute(sa.select(ContactList.id, ContactList.name)).all())
    segment = session.get(Segment, row.segment_id) if row.segment_id else None
    audience = service.preview_audience(session, row) if row.status in EDITABLE else None
    return render_template("blasts/blast.html", blast=row, template=template, version=version,
                           lists=lists, segment=segment, audience=audience,
                           counts=progress(service.counts(session, row)), active=ACTIVE,
                           editable=EDITABLE)


@bp.get("/blasts/<int:blast_id>/status.json")
@requires(Role.VIEWER)
def status_json(blast_id: int) -> Any:
    """The blast's status and counts, polled by blast-progress.js."""
    session = db.session()
    row = service.get_blast(session, blast_id)
    return jsonify({"id": row.id, "status": row.status, "status_reason": row.status_reason,
                    "active": row.status in ACTIVE,
                    "counts": progress(service.counts(session, row))})


@bp.get("/blasts/<int:blast_id>/edit")
@requires(Role.ORGANIZER)
def edit(blast_id: int) -> Any:
    """The form for a draft or scheduled blast."""
    row = service.get_blast(db.session(), blast_id)
    if row.status not in EDITABLE:
        flash(f"This blast is {row.status}; only a draft or a scheduled blast can be changed.",
              "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    return _form_page(_channel(row.channel), _values(blast=row), {}, blast=row)


@bp.post("/blasts/<int:blast_id>/edit")
@requires(Role.ORGANIZER)
def update(blast_id: int) -> Any:
    """Save the form; a scheduled blast whose send time changed is scheduled again."""
    data, form_errors = _form_data(request.form)
    try:
        with db.transaction() as session:
            row = service.get_blast(session, blast_id)
            was_scheduled, old_send_at = row.status == BlastStatus.SCHEDULED, row.send_at
            row = service.save_blast(session, data, blast_id)
            if form_errors:
                raise ValidationError("Invalid blast", form_errors)
            relaunch = was_scheduled and row.send_at != old_send_at
            if relaunch:
                row = service.launch(session, blast_id)
    except Conflict as exc:
        flash(f"Not saved: {exc}.", "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    except ValidationError as exc:
        row = service.get_blast(db.session(), blast_id)
        return _form_page(data["channel"], _values(request.form),
                          {**exc.fields, **form_errors}, blast=row, status=422)
    if relaunch:
        pipeline.start_blast(row)
    flash("Blast saved.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast_id))


@bp.get("/blasts/<int:blast_id>/launch")
@requires(Role.ORGANIZER)
def confirm_launch(blast_id: int) -> Any:
    """Ask before launching: how many people this will reach, and when."""
    session = db.session()
    row = service.get_blast(session, blast_id)
    if row.status != BlastStatus.DRAFT:
        flash(f"This blast is {row.status}; only a draft can be launched.", "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    return render_template("blasts/confirm_launch.html", blast=row,
                           audience=service.preview_audience(session, row),
                           template=session.get(MessageTemplate, row.template_id))


@bp.post("/blasts/<int:blast_id>/launch")
@requires(Role.ORGANIZER)
def launch(blast_id: int) -> Any:
    """Launch: freeze the template version, commit, then queue the preparation."""
    try:
        with db.transaction() as session:
            row = service.launch(session, blast_id)
    except Conflict as exc:
        flash(f"Not launched: {exc}.", "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    pipeline.start_blast(row)
    if row.status == BlastStatus.SCHEDULED:
        flash(f"Scheduled for {row.send_at:%Y-%m-%d %H:%M} UTC.", "success")
    else:
        flash("Launched: the audience is being prepared.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast_id))


@bp.post("/blasts/<int:blast_id>/pause")
@requires(Role.ORGANIZER)
def pause(blast_id: int) -> Any:
    """Pause after the batches in flight; nothing queued is lost."""
    actor = _actor()
    reason = f"Paused by {actor.email}" if actor else "Paused by staff"
    try:
        with db.transaction() as session:
            service.pause(session, blast_id, reason)
    except Conflict as exc:
        flash(f"Not paused: {exc}.", "error")
    else:
        flash("Paused. Messages already handed to the provider still go out.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast_id))


@bp.post("/blasts/<int:blast_id>/resume")
@requires(Role.ORGANIZER)
def resume(blast_id: int) -> Any:
    """Resume a paused blast where it stopped (commit first, then queue what is left)."""
    try:
        with db.transaction() as session:
            row = service.resume(session, blast_id)
    except Conflict as exc:
        flash(f"Not resumed: {exc}.", "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    pipeline.continue_blast(row)
    flash("Resumed.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast_id))


@bp.get("/blasts/<int:blast_id>/cancel")
@requires(Role.ORGANIZER)
def confirm_cancel(blast_id: int) -> Any:
    """Ask before canceling for good."""
    session = db.session()
    row = service.get_blast(session, blast_id)
    if row.status in (BlastStatus.DONE, BlastStatus.CANCELED):
        flash(f"This blast is already {row.status}.", "error")
        return redirect(url_for("blasts.blast", blast_id=blast_id))
    return render_template("blasts/confirm_cancel.html", blast=row,
                           counts=progress(service.counts(session, row)))


@bp.post("/blasts/<int:blast_id>/cancel")
@requires(Role.ORGANIZER)
def cancel(blast_id: int) -> Any:
    """Cancel for good: messages not yet sent are canceled."""
    try:
        with db.transaction() as session:
            service.cancel(session, blast_id)
    except Conflict as exc:
        flash(f"Not canceled: {exc}.", "error")
    else:
        flash("Canceled. Messages not yet sent will not be sent.", "success")
    return redirect(url_for("blasts.blast", blast_id=blast_id))
