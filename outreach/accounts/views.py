"""Staff sign-in and the admin's user management pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from outreach import db
from outreach.accounts import service
from outreach.accounts.models import ApiToken, Role
from outreach.auth import current_user, login_user, logout_user, public, requires, safe_next
from outreach.exceptions import Conflict, NotFound, ValidationError
from outreach.queue import redis

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    """Show the sign-in form and sign a staff member in."""
    if request.method == "GET":
        if current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return render_template("accounts/login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    ip = request.remote_addr or "unknown"
    cfg = current_app.config
    if service.login_locked(redis(), email, ip, cfg["LOGIN_MAX_FAILURES"]):
        minutes = max(1, cfg["LOGIN_LOCKOUT_SECONDS"] // 60)
        flash(f"Too many failed sign-ins. Try again in {minutes} minutes.", "error")
        return render_template("accounts/login.html", next=request.form.get("next", ""),
                               email=email), 429
    user = service.authenticate(db.session(), email, password)
    if user is None:
        service.record_login_failure(redis(), email, ip, cfg["LOGIN_LOCKOUT_SECONDS"])
        db.session().rollback()
        flash("Wrong email or password.", "error")
        return render_template("accounts/login.html", next=request.form.get("next", ""),
                               email=email), 401
    db.session().commit()
    service.clear_login_failures(redis(), email)
    login_user(user)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/logout")
@public
def logout() -> Any:
    """Sign out (a POST with the CSRF token, so a link cannot sign anyone out)."""
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.login"))


@bp.get("/admin/users")
@requires(Role.ADMIN)
def users() -> Any:
    """List staff users with forms to add one and change roles."""
    return render_template("accounts/users.html", users=service.list_users(db.session()),
                           roles=[r.value for r in Role])


@bp.post("/admin/users")
@requires(Role.ADMIN)
def create_user() -> Any:
    """Add a staff user."""
    form = request.form
    try:
        with db.transaction() as session:
            user = service.create_user(session, form.get("email", ""), form.get("role", ""),
                                       form.get("password", ""), form.get("name", "").strip())
    except (ValidationError, Conflict) as exc:
        _flash_error(exc)
        return redirect(url_for("accounts.users"))
    flash(f"Added {user.email} as {user.role}.", "success")
    return redirect(url_for("accounts.users"))


@bp.post("/admin/users/<int:user_id>")
@requires(Role.ADMIN)
def update_user(user_id: int) -> Any:
    """Change a user's role or deactivate and reactivate them."""
    form = request.form
    active = {"1": True, "0": False}.get(form.get("active", ""))
    try:
        with db.transaction() as session:
            user = service.update_user(session, user_id, form.get("role") or None, active)
    except (ValidationError, Conflict, NotFound) as exc:
        _flash_error(exc)
        return redirect(url_for("accounts.users"))
    flash(f"Updated {user.email}: {user.role}, {'active' if user.active else 'deactivated'}.",
          "success")
    return redirect(url_for("accounts.users"))


@bp.post("/account/tokens")
@requires(Role.VIEWER)
def create_token() -> Any:
    """Create an API token for the signed-in user and show it once."""
    user = current_user()
    assert user is not None
    with db.transaction() as session:
        token = service.create_token(session, session.merge(user),
                                     request.form.get("name", "").strip()[:200])
    return render_template("accounts/token_created.html", token=token)


@bp.get("/account")
@requires(Role.VIEWER)
def account() -> Any:
    """The signed-in user's account: role and API tokens."""
    return render_template("accounts/account.html", user=current_user())


def _flash_error(exc: Exception) -> None:
    details = "; ".join(f"{k}: {v}" for k, v in getattr(exc, "fields", {}).items())
    flash(f"{exc}{' (' + details + ')' if details else ''}", "error")


@bp.post("/account/tokens/<int:token_id>/revoke")
@requires(Role.VIEWER)
def revoke_token(token_id: int) -> Any:
    """Revoke one of the signed-in user's tokens (admins may revoke anyone's)."""
    user = current_user()
    assert user is not None
    with db.transaction() as session:
        token = session.get(ApiToken, token_id)
        if token is None or (token.user_id != user.id and not user.role_enum.allows(Role.ADMIN)):
            abort(404)
        service.revoke_token(session, token_id)
    flash("Token revoked.", "success")
    return redirect(url_for("accounts.account"))
