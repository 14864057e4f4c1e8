"""Every route of the app refuses the anonymous and the under-privileged, as it declares.

The needed role is read from each view's `@requires` mark (outreach/auth.py); the public routes
must be exactly the allow-list below, so a new public route is a deliberate, reviewed change.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter, Rule

from outreach.accounts.models import Role
from tests.fixtures.app import make_token, make_user

PUBLIC_ENDPOINTS = {
    "static", "web.healthz", "api.openapi", "accounts.login", "accounts.logout",
    "tracking.open_pixel", "tracking.click", "tracking.honeypot", "tracking.unsubscribe_page",
    "tracking.unsubscribe_post", "tracking.resubscribe", "tracking.sendgrid_webhook",
    "tracking.twilio_status", "tracking.twilio_inbound",
    "action_public.form", "action_public.submit_form", "action_public.confirm_page",
    "action_public.confirm_post", "action_public.count", "action_public.thanks",
}
BELOW = {Role.ORGANIZER: Role.VIEWER, Role.ADMIN: Role.ORGANIZER}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _routes(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) the app answers, HEAD and OPTIONS aside."""
    return [(rule, method) for rule in app.url_map.iter_rules() for method in METHODS
            if method in (rule.methods or set())]


def _url(rule: Rule) -> str:
    """A concrete URL for the rule: 1 for numbers, a harmless word for the rest."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        converter = rule._converters[name]  # noqa: SLF001 - the converter says int or string
        values[name] = 1 if isinstance(converter, IntegerConverter) else "x"
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def _needed(app: Flask, endpoint: str) -> Role | None:
    view = app.view_functions[endpoint]
    return None if getattr(view, "_outreach_public", False) else view._outreach_role


def _is_api(rule: Rule) -> bool:
    return rule.rule.startswith("/api/")


def test_every_view_declares_public_or_a_role(open_app: Flask) -> None:
    """No view relies on the fail-closed default: each says who may use it."""
    undeclared = sorted(endpoint for endpoint, view in open_app.view_functions.items()
                        if not getattr(view, "_outreach_public", False)
                        and not isinstance(getattr(view, "_outreach_role", None), Role))
    assert undeclared == []


def test_public_routes_are_exactly_the_allow_list(open_app: Flask) -> None:
    """Anything public that is not listed here (or listed and gone) fails the build."""
    public = {rule.endpoint for rule in open_app.url_map.iter_rules()
              if _needed(open_app, rule.endpoint) is None}
    assert public == PUBLIC_ENDPOINTS


def test_anonymous_requests_are_refused_everywhere_but_public_routes(open_app: Flask) -> None:
    """Pages redirect to the login page with a way back; the API answers 401 in its shape."""
    client = open_app.test_client()
    checked = 0
    for rule, method in _routes(open_app):
        if _needed(open_app, rule.endpoint) is None:
            continue
        url = _url(rule)
        response = client.open(url, method=method, json={} if _is_api(rule) else None)
        where = f"{method} {url} ({rule.endpoint})"
        if _is_api(rule):
            assert response.status_code == 401, where
            assert response.get_json()["error"]["code"] == "unauthorized", where
        else:
            assert response.status_code == 302, where
            assert response.headers["Location"].startswith("/login?next="), where
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("needed", [Role.ORGANIZER, Role.ADMIN], ids=lambda r: r.value)
def test_a_role_below_the_needed_one_gets_403(open_app: Flask, needed: Role) -> None:
    """A viewer on an organizer route, an organizer on an admin route: 403, nothing done."""
    below = BELOW[needed]
    token = make_token(open_app, below.value)
    page_user = make_user(open_app, below.value, f"{below.value}-page@example.org")
    client = open_app.test_client()
    with client.session_transaction() as session:
        session["user_id"] = page_user
    checked = 0
    for rule, method in _routes(open_app):
        if _needed(open_app, rule.endpoint) != needed:
            continue
        url = _url(rule)
        where = f"{method} {url} ({rule.endpoint}) as {below.value}"
        if _is_api(rule):
            response = client.open(url, method=method, json={},
                                   headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 403, where
            assert response.get_json()["error"]["code"] == "forbidden", where
        else:
            response = client.open(url, method=method)
            assert response.status_code == 403, where
        checked += 1
    assert checked >= (10 if needed is Role.ADMIN else 50)


def test_a_revoked_or_garbled_token_is_401_not_500(open_app: Flask) -> None:
    """Odd Authorization headers are refused cleanly."""
    client = open_app.test_client()
    for header in ("Bearer", "Bearer ", "Basic abc", "Bearer \x00", "Bearer " + "x" * 5000,
                   "bearer not-a-token", "Bearer é"):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
