"""Staff pages for action pages: list, create and edit each kind, embed, figures, moderation.

Paths under /actions: GET / (list), GET|POST /new, GET /<id>, GET|POST /<id>/edit,
GET /<id>/figures, GET /moderation, POST /letters/<id>/approve, POST /letters/<id>/reject.
Viewers read; organizers write.
"""

from __future__ import annotations

from html import escape
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from outreach import db
from outreach.accounts.models import Role
from outreach.actions import jobs, moderation, page_form, service, stats
from outreach.actions.models import ActionPage, PageKind
from outreach.auth import current_user, requires
from outreach.contacts.models import ContactList
from outreach.content.models import MessageTemplate
from outreach.exceptions import Conflict, NotFound, ValidationError

bp = Blueprint("actions", __name__, url_prefix="/actions")
KINDS = {"signup": "Sign-up", "petition": "Petition", "letter": "Letter"}


class _HttpError:
    """What error.html needs to show a domain error as a page."""

    def __init__(self, code: int, name: str, description: str) -> None:
        self.code, self.name, self.description = code, name, description


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", error=_HttpError(404, "Not Found", str(exc))), 404


@bp.app_context_processor
def _kinds() -> dict[str, Any]:
    return {"action_kinds": KINDS}


def _actor_id() -> int | None:
    user = current_user()
    return user.id if user is not None else None


@bp.get("")
@requires(Role.VIEWER)
def pages() -> Any:
    """Every action page with its counters."""
    session = db.session()
    return render_template("actions/index.html", pages=service.list_pages(session),
                           flagged=moderation.flagged_count(session))


def _editor(values: dict[str, Any], errors: dict[str, str], page: ActionPage | None = None,
            status: int = 200) -> Any:
    session = db.session()
    templates = session.execute(sa.select(MessageTemplate.id, MessageTemplate.name,
                                          MessageTemplate.channel)
                                .order_by(MessageTemplate.name)).all()
    lists = session.execute(sa.select(ContactList.id, ContactList.name)
                            .order_by(ContactList.name)).all()
    return render_template("actions/form.html", values=values, errors=errors, page=page,
                           lists=lists, email_templates=[t for t in templates
                                                         if t.channel == "email"],
                           sms_templates=[t for t in templates if t.channel == "sms"],
                           field_names=service.FIELD_NAMES, modes=service.MODES), status


@bp.get("/new")
@requires(Role.ORGANIZER)
def new() -> Any:
    """The editor for a new page of a kind (?kind=signup|petition|letter)."""
    kind = request.args.get("kind", "signup")
    kind = kind if kind in KINDS else PageKind.SIGNUP.value
    return _editor(page_form.page_values(None, [], kind), {})


@bp.post("/new")
@requires(Role.ORGANIZER)
def create() -> Any:
    """Create a page."""
    return _save(None)


def _save(page_id: int | None) -> Any:
    data, errors = page_form.form_to_data(request.form)
    page = service.get_page(db.session(), page_id) if page_id is not None else None
    if not errors:
        try:
            with db.transaction() as session:
                saved = service.save_page(session, data, page_id, _actor_id())
        except ValidationError as exc:
            errors = exc.fields
        except Conflict as exc:
            errors = {"slug": str(exc)}
        else:
            flash(f"Action page “{saved.title}” saved.", "success")
            return redirect(url_for("actions.page", page_id=saved.id))
    return _editor(page_form.submitted_values(request.form), errors, page, 422)


@bp.get("/<int:page_id>")
@requires(Role.VIEWER)
def page(page_id: int) -> Any:
    """A page's settings, public address, embed snippet and counters."""
    session = db.session()
    row = service.get_page(session, page_id)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    url = f"{base}/a/{row.slug}"
    snippet = (f'<iframe src="{url}?embed=1" title="{escape(row.title)}" width="100%" height="900" '
               f'style="border:0;max-width:40rem" loading="lazy"></iframe>')
    return render_template("actions/page_detail.html", page=row, url=url, snippet=snippet,
                           targets=service.active_targets(session, row.id),
                           config=service.field_config(row),
                           flagged=moderation.flagged_letters(session, row.id, limit=5))


@bp.get("/<int:page_id>/edit")
@requires(Role.ORGANIZER)
def edit(page_id: int) -> Any:
    """The editor for an existing page."""
    session = db.session()
    row = service.get_page(session, page_id)
    kind = request.args.get("kind")
    return _editor(page_form.page_values(row, service.active_targets(session, row.id),
                                         kind if kind in KINDS else row.kind), {}, row)


@bp.post("/<int:page_id>/edit")
@requires(Role.ORGANIZER)
def update(page_id: int) -> Any:
    """Save changes to a page."""
    return _save(page_id)


@bp.get("/<int:page_id>/figures")
@requires(Role.VIEWER)
def figures(page_id: int) -> Any:
    """A page's figures: views, submissions, conversion, new contacts, letters, sources, days."""
    session = db.session()
    row = service.get_page(session, page_id)
    return render_template("actions/figures.html", page=row, figures=stats.figures(session, row))


@bp.get("/moderation")
@requires(Role.VIEWER)
def moderation_queue() -> Any:
    """Letters the word list flagged, waiting for approval or rejection before delivery."""
    return render_template("actions/moderation.html",
                           letters=moderation.flagged_letters(db.session()))


def _moderate(letter_id: int, approve: bool) -> Any:
    try:
        with db.transaction() as session:
            letter, to_run, digests = moderation.moderate(session, letter_id, approve,
                                                          _actor_id())
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        jobs.dispatch(to_run, digests)
        flash(f"Letter {letter.id} {'approved for delivery' if approve else 'rejected'}.",
              "success")
    return redirect(url_for("actions.moderation_queue"))


@bp.post("/letters/<int:letter_id>/approve")
@requires(Role.ORGANIZER)
def approve(letter_id: int) -> Any:
    """Approve a flagged letter: it is delivered."""
    return _moderate(letter_id, True)


@bp.post("/letters/<int:letter_id>/reject")
@requires(Role.ORGANIZER)
def reject(letter_id: int) -> Any:
    """Reject a flagged letter: it is never delivered."""
    return _moderate(letter_id, False)
