"""The one authorization mechanism: every view is marked public or with the role it needs.

An app-wide `before_request` hook reads the mark of the view about to run, so a page or API
route that forgot to declare its role is refused rather than left open (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, request, session, url_for

from outreach import db
from outreach.accounts import service as accounts
from outreach.accounts.models import Role, User
from outreach.api.errors import api_error

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
SESSION_USER_KEY = "user_id"


def public(view: F) -> F:
    """Mark a view as open to anyone (tracking, unsubscribe, webhooks, login, health)."""
    view._outreach_public = True  # type: ignore[attr-defined]
    return view


def requires(role: Role | str) -> Callable[[F], F]:
    """Mark a view as needing a signed-in staff member with at least this role."""
    needed = Role(role)

    def mark(view: F) -> F:
        view._outreach_role = needed  # type: ignore[attr-defined]
        return view

    return mark


def is_api_request() -> bool:
    """True for the JSON API, which authenticates with bearer tokens instead of cookies."""
    return request.blueprint == "api" or request.path.startswith("/api/")


def current_user() -> User | None:
    """The staff member behind this request, from the bearer token (API) or the session."""
    if "current_user" in g:
        return g.current_user
    user: User | None = None
    if is_api_request():
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = accounts.user_for_token(db.session(), token.strip())
            db.session().commit()  # keeps last_used_at
    else:
        user_id = session.get(SESSION_USER_KEY)
        if isinstance(user_id, int):
            found = db.session().get(User, user_id)
            user = found if found is not None and found.active else None
    g.current_user = user
    return user


def login_user(user: User) -> None:
    """Start a fresh session for a user (a new session guards against fixation)."""
    session.clear()
    session[SESSION_USER_KEY] = user.id
    session.permanent = True
    g.current_user = user


def logout_user() -> None:
    """End the session."""
    session.clear()
    g.pop("current_user", None)


def safe_next(target: str | None) -> str:
    """A same-site path to return to after login; never an absolute URL (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and "\\" not in target:
            return target
    return url_for("web.home")


def _authorize() -> Any:
    """Refuse the request unless the view is public or the user's role suffices."""
    if request.endpoint is None:
        return None  # no route matched: Flask answers 404 or 405
    view = current_app.view_functions.get(request.endpoint)
    if view is None or getattr(view, "_outreach_public", False):
        return None
    needed: Role | None = getattr(view, "_outreach_role", None)
    if needed is None:
        log.error("view %s declares no role; refusing", request.endpoint)
        return _deny(403, "This page declares no access rule.")
    user = current_user()
    if user is None:
        if is_api_request():
            return api_error(401, "unauthorized", "A valid API token is required "
                             "(Authorization: Bearer TOKEN).")
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    if not user.role_enum.allows(needed):
        return _deny(403, f"This needs the {needed.value} role; you are {user.role}.")
    return None


def _deny(status: int, message: str) -> Any:
    if is_api_request():
        return api_error(status, "forbidden", message)
    abort(status, description=message)


def init_app(app: Flask) -> None:
    """Install the authorization hook and expose the current user to templates."""
    app.before_request(_authorize)
    app.context_processor(lambda: {"current_user": current_user(), "Role": Role})
