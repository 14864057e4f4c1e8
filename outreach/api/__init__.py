"""The JSON API under /api/v1: bearer tokens, JSON errors, an OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request
from sqlalchemy import exc as sa_exc

from outreach import db
from outreach.accounts import service as accounts
from outreach.accounts.models import Role, User
from outreach.api.errors import api_error
from outreach.api.openapi import document
from outreach.auth import current_user, public, requires
from outreach.exceptions import Conflict, NotFound, ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app: Flask, csrf: Any) -> None:
    """Register the API; it authenticates by token, so cookies' CSRF checks do not apply."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Any:
    return api_error(422, "invalid", exc.message, exc.fields)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return api_error(404, "not_found", str(exc))


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Any:
    return api_error(409, "conflict", str(exc))


@bp.errorhandler(OverflowError)
@bp.errorhandler(sa_exc.DataError)
def _out_of_range(exc: Exception) -> Any:
    # A number or text the database cannot hold (an id past INTEGER, say): the client's input.
    db.session().rollback()
    return api_error(422, "invalid", "A value is out of range", {"body": type(exc).__name__})


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 422 naming the problem."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object", {"body": "expected a JSON object"})
    return data


def user_json(user: User) -> dict[str, Any]:
    """A staff user as the API shows it."""
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role,
            "active": user.active, "created_at": user.created_at.isoformat()}


@bp.get("/openapi.json")
@public
def openapi() -> Any:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document())


@bp.get("/me")
@requires(Role.VIEWER)
def me() -> Any:
    """The user behind the token."""
    user = current_user()
    assert user is not None
    return jsonify(user_json(user))


@bp.get("/users")
@requires(Role.ADMIN)
def list_users() -> Any:
    """All staff users (admin)."""
    return jsonify({"data": [user_json(u) for u in accounts.list_users(db.session())],
                    "next_cursor": None})


@bp.post("/users")
@requires(Role.ADMIN)
def create_user() -> Any:
    """Create a staff user (admin)."""
    data = json_body()
    bad = {k: "required string" for k in ("email", "role", "password")
           if not isinstance(data.get(k), str)}
    if bad:
        raise ValidationError("Missing or invalid fields", bad)
    with db.transaction() as session:
        user = accounts.create_user(session, data["email"], data["role"], data["password"],
                                    str(data.get("name", "")))
    return jsonify(user_json(user)), 201


@bp.post("/test-messages")
@requires(Role.ORGANIZER)
def create_test_message() -> Any:
    """Queue a test email or text through the configured channel (organizer)."""
    from outreach.channels.service import queue_test_message

    data = json_body()
    bad = {k: "must be a string" for k in ("channel", "to", "subject", "body")
           if k in data and not isinstance(data[k], str)}
    if bad:
        raise ValidationError("Invalid fields", bad)
    job_id = queue_test_message(data.get("channel", ""), data.get("to", ""),
                                data.get("subject", ""), data.get("body", ""))
    return jsonify({"job_id": job_id, "status": "queued"}), 202


# Domain routes register themselves on `bp` when imported.
from outreach.api import blasts as _blasts  # noqa: E402,F401
from outreach.api import contacts as _contacts  # noqa: E402,F401
from outreach.api import metrics as _metrics  # noqa: E402,F401
from outreach.api import templates as _templates  # noqa: E402,F401
