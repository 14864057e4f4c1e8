"""Signing in and out, wrong passwords, throttling, CSRF and session cookies."""

from __future__ import annotations

import pytest

from tests.fixtures.app import CSRF_RE, PASSWORD, build_app, csrf_token, make_user


def test_login_and_logout(auth, client):
    response = auth.login("organizer")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert b"organizer@example.org" in home.data
    assert auth.logout().status_code == 302
    assert client.get("/").status_code == 302  # back to the login page


def test_anonymous_page_redirects_to_login_with_next(client):
    response = client.get("/outbox/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/outbox/")


def test_login_returns_to_next_but_never_offsite(app, auth, client):
    make_user(app, "viewer")
    token = csrf_token(client)
    ok = client.post("/login", data={"email": "viewer@example.org", "password": PASSWORD,
                                     "csrf_token": token, "next": "/outbox/"})
    assert ok.headers["Location"] == "/outbox/"
    auth.logout()
    token = csrf_token(client)
    evil = client.post("/login", data={"email": "viewer@example.org", "password": PASSWORD,
                                       "csrf_token": token, "next": "//evil.example/x"})
    assert evil.headers["Location"] == "/"


def test_wrong_password_is_refused(app, auth, client):
    make_user(app, "viewer")
    response = auth.post_login("viewer@example.org", "not the password")
    assert response.status_code == 401
    assert b"Wrong email or password" in response.data
    assert client.get("/").status_code == 302


def test_unknown_email_gets_the_same_answer(auth):
    response = auth.post_login("nobody@example.org", "whatever-password")
    assert response.status_code == 401
    assert b"Wrong email or password" in response.data


def test_repeated_failures_lock_the_account_for_a_while(app, auth, client):
    make_user(app, "viewer")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert auth.post_login("viewer@example.org", "wrong password!").status_code == 401
    locked = auth.post_login("viewer@example.org", PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.data
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_rejected(app, client):
    make_user(app, "admin")
    response = client.post("/login", data={"email": "admin@example.org", "password": PASSWORD})
    assert response.status_code == 400
    assert b"CSRF" in response.data


def test_logout_needs_csrf_token(auth, client):
    auth.login("viewer")
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_deactivated_user_loses_access(app, auth, client):
    auth.login("admin")
    user_id = make_user(app, "viewer", "leaver@example.org")
    token = csrf_token(client, "/admin/users")
    client.post(f"/admin/users/{user_id}", data={"active": "0", "csrf_token": token})
    other = app.test_client()
    token = csrf_token(other)
    response = other.post("/login", data={"email": "leaver@example.org", "password": PASSWORD,
                                          "csrf_token": token})
    assert response.status_code == 401


def test_session_cookie_is_secure_httponly_and_samesite(database_url, redis_url, tmp_path):
    app = build_app(database_url, redis_url, tmp_path / "i", PUBLIC_BASE_URL="https://o.example")
    from tests.fixtures.services import clean_database

    clean_database(app.extensions["db_engine"])
    make_user(app, "viewer")
    client = app.test_client()
    page = client.get("/login", base_url="https://o.example").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", base_url="https://o.example", data={
        "email": "viewer@example.org", "password": PASSWORD, "csrf_token": token},
        headers={"Referer": "https://o.example/login"})
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if "outreach_session" in h)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("role,status", [("viewer", 403), ("organizer", 403), ("admin", 200)])
def test_user_admin_page_needs_admin(auth, client, role, status):
    auth.login(role)
    assert client.get("/admin/users").status_code == status


def test_admin_adds_a_user_and_changes_a_role(app, auth, client):
    auth.login("admin")
    token = csrf_token(client, "/admin/users")
    response = client.post("/admin/users", data={
        "email": "New.Person@Example.org", "role": "viewer", "password": "long enough pw",
        "csrf_token": token}, follow_redirects=True)
    assert b"Added new.person@example.org as viewer" in response.data
    from outreach import db
    from outreach.accounts.service import get_user_by_email

    with app.app_context():
        user = get_user_by_email(db.session(), "new.person@example.org")
    client.post(f"/admin/users/{user.id}", data={"role": "organizer", "csrf_token": token})
    with app.app_context():
        assert get_user_by_email(db.session(), "new.person@example.org").role == "organizer"


def test_last_admin_cannot_be_demoted(app, auth, client):
    auth.login("admin")
    token = csrf_token(client, "/admin/users")
    response = client.post("/admin/users/1", data={"role": "viewer", "csrf_token": token},
                           follow_redirects=True)
    assert b"At least one active admin must remain" in response.data
    assert client.get("/admin/users").status_code == 200
