"""The staff home page, health check and error pages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from outreach import db
from outreach.accounts.models import Role
from outreach.api.errors import api_error
from outreach.auth import is_api_request, public, requires
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.queue import redis

bp = Blueprint("web", __name__)

# The main navigation: (endpoint, label, least role that sees it); domains add their pages.
NAV_ITEMS: list[tuple[str, str, str]] = [
    ("web.home", "Home", "viewer"),
    ("contacts.index", "Contacts", "viewer"),
    ("contacts.lists", "Lists", "viewer"),
    ("contacts.segments", "Segments", "viewer"),
    ("contacts.imports", "Imports", "organizer"),
    ("contacts.suppressions", "Suppressions", "viewer"),
    ("content.templates", "Templates", "viewer"),
    ("blasts.index", "Blasts", "viewer"),
    ("metrics.overview", "Metrics", "viewer"),
    ("metrics.replies", "Replies", "viewer"),
    ("actions.pages", "Action pages", "viewer"),
    ("outbox.index", "Outbox", "viewer"),
    ("system.system", "System", "organizer"),
    ("accounts.users", "Staff", "admin"),
]


@bp.get("/")
@requires(Role.VIEWER)
def home() -> Any:
    """The dashboard: where to go next."""
    session = db.session()
    stats = {
        "outbox_emails": session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)),
        "outbox_sms": session.scalar(sa.select(sa.func.count()).select_from(OutboxSms)),
    }
    return render_template("home.html", stats=stats)


@bp.get("/healthz")
@public
def healthz() -> Any:
    """200 when the database and Redis answer; 503 naming what is down."""
    status: dict[str, str] = {}
    try:
        with db.engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        status["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        status["database"] = f"down: {type(exc).__name__}"
    try:
        redis().ping()
        status["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        status["redis"] = f"down: {type(exc).__name__}"
    down = [name for name, value in status.items() if value != "ok"]
    body = {"status": "ok" if not down else "down", "down": down, **status}
    return jsonify(body), (503 if down else 200)


# On every response (the tracking fast path in outreach/tracking/hits.py sends them too).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"),
)
HSTS_HEADER = ("Strict-Transport-Security", "max-age=31536000")  # https requests only


def register_error_pages(app: Flask) -> None:
    """Answer errors as JSON on the API and as friendly pages elsewhere; add security headers."""
    app.context_processor(lambda: {"nav_items": NAV_ITEMS})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if is_api_request():
            code = (exc.name or "error").lower().replace(" ", "_")
            return api_error(exc.code or 500, code, exc.description or exc.name)
        return render_template("error.html", error=exc), exc.code or 500

    @app.after_request
    def _security_headers(response: Any) -> Any:
        headers = response.headers
        for name, value in SECURITY_HEADERS:
            headers.setdefault(name, value)
        # https as the request saw it (TRUST_PROXY reads X-Forwarded-Proto) or as configured.
        if request.is_secure or app.config["PREFERRED_URL_SCHEME"] == "https":
            headers.setdefault(*HSTS_HEADER)
        return response
