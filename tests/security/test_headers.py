"""Security headers on every page, no inline script anywhere, and cookies that stay put."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from outreach import resource_dir
from tests.actions.helpers import make_page
from tests.fixtures.app import PASSWORD, build_app, csrf_token, make_user
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all

# An inline <script> is allowed only as a data block (type="application/json"), never as code.
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def _csp(response: Any) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def _check_headers(response: Any, where: str, embeddable: bool) -> None:
    csp = _csp(response)
    assert csp, f"{where}: no Content-Security-Policy"
    script = csp.get("script-src") or csp.get("default-src", "")
    assert script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    ancestors = csp.get("frame-ancestors", "")
    if not embeddable:
        assert ancestors in ("frame-ancestors 'none'", "frame-ancestors 'self'"), where
        assert response.headers.get("X-Frame-Options") in ("DENY", "SAMEORIGIN"), where
    else:  # an action page: framed by the sites ACTION_FRAME_ANCESTORS names, or not at all
        assert ancestors, where


def _check_body(response: Any, where: str) -> None:
    if response.mimetype != "text/html":
        return
    body = response.get_data(as_text=True)
    if "sandbox" in _csp(response):
        return  # a stored email's HTML, shown script-less in a sandboxed frame
    assert not INLINE_SCRIPT.search(body), f"{where}: inline script"
    assert not EVENT_HANDLER.search(body), f"{where}: on* handler"
    assert not JS_URL.search(body), f"{where}: javascript: URL"


def test_no_template_has_inline_script_or_event_handlers() -> None:
    """The page templates themselves: scripts come from /static, behaviour from addEventListener."""
    templates = sorted(Path(resource_dir("templates")).rglob("*.html"))
    assert len(templates) > 30
    for path in templates:
        source = path.read_text()
        assert not INLINE_SCRIPT.search(source), f"{path}: inline <script>"
        assert not EVENT_HANDLER.search(source), f"{path}: on* handler"
        assert not JS_URL.search(source), f"{path}: javascript: URL"


def _seed(app: Flask) -> None:
    """One of each thing, so pages with id 1 render with content instead of 404."""
    list_id = audience(app, 2)
    blast_id = launch_blast(app, email_template(app), [list_id])
    send_all(app, blast_id)
    make_page(app)


def _url(rule: Rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]  # noqa: SLF001
        values[name] = 1 if isinstance(converter, IntegerConverter) else {
            "slug": "join-us", "filename": "css/app.css"}.get(name, "x")
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def test_every_page_sends_the_security_headers(app: Flask, client: FlaskClient, auth) -> None:
    """Every GET route, signed in as an admin and anonymously: CSP, framing, nosniff, no inline
    script in what is rendered; only the public action pages may be framed by other sites."""
    _seed(app)
    anonymous = app.test_client()
    auth.login("admin")
    seen = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        url = _url(rule)
        for who, browser in (("admin", client), ("anonymous", anonymous)):
            response = browser.get(url)
            where = f"GET {url} as {who} -> {response.status_code}"
            assert response.status_code < 500, where
            _check_headers(response, where, embeddable=rule.rule.startswith("/a/"))
            _check_body(response, where)
            response.close()
            seen += 1
    assert seen > 150
    form = anonymous.get("/a/join-us")  # the action form is what other sites embed
    assert "X-Frame-Options" not in form.headers
    assert _csp(form)["frame-ancestors"] == "frame-ancestors *"
    for path in ("/no-such-page", "/api/v1/no-such-thing"):  # error pages too
        response = client.get(path)
        _check_headers(response, path, embeddable=False)


def _https_app(tmp_path: Path, database_url: str, redis_url: str, **config: Any) -> Flask:
    return build_app(database_url, redis_url, tmp_path / "instance", **config)


def test_hsts_is_sent_behind_https_only(tmp_path: Path, database_url: str, redis_url: str,
                                        app: Flask) -> None:
    """HSTS behind a TLS proxy (TRUST_PROXY + X-Forwarded-Proto) or an https PUBLIC_BASE_URL."""
    proxied = _https_app(tmp_path, database_url, redis_url, TRUST_PROXY=1)
    plain = proxied.test_client().get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    forwarded = proxied.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert forwarded.headers["Strict-Transport-Security"].startswith("max-age=")
    configured = _https_app(tmp_path, database_url, redis_url,
                            PUBLIC_BASE_URL="https://outreach.example.org")
    response = configured.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    for other in (proxied, configured):
        other.extensions["db_engine"].dispose()


def _set_cookies(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def test_production_cookies_are_secure_httponly_and_samesite(
        tmp_path: Path, database_url: str, redis_url: str, app: Flask) -> None:
    """The session cookie (which also holds the CSRF token) in production behind https."""
    prod = _https_app(tmp_path, database_url, redis_url, OUTREACH_ENV="production",
                      PUBLIC_BASE_URL="https://outreach.example.org", TESTING=False)
    make_user(prod, "viewer")
    client = prod.test_client()
    base = {"base_url": "https://outreach.example.org"}
    cookies = _set_cookies(client.get("/login", **base))
    token = csrf_token(client, "/login")
    cookies += _set_cookies(client.post("/login", data={
        "email": "viewer@example.org", "password": PASSWORD, "csrf_token": token}, **base))
    assert cookies, "no cookie was set"
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite"} <= attributes, cookie
        assert "samesite=none" not in cookie.lower(), cookie
    prod.extensions["db_engine"].dispose()


def test_development_cookies_are_httponly_and_samesite(client: FlaskClient, auth) -> None:
    """Plain-http development still keeps the session out of scripts and cross-site posts."""
    response = auth.login("viewer")
    cookies = _set_cookies(response)
    assert cookies
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
