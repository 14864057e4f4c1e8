"""Token authentication and role checks on the JSON API."""

from __future__ import annotations

import pytest

from tests.fixtures.app import make_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_json_error(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_wrong_token_is_401(client):
    assert client.get("/api/v1/me", headers=bearer("otk_nope")).status_code == 401


def test_session_cookie_does_not_authenticate_the_api(auth, client):
    auth.login("admin")
    assert client.get("/api/v1/me").status_code == 401


def test_valid_token_identifies_the_user(app, client):
    token = make_token(app, "viewer")
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json["role"] == "viewer"


@pytest.mark.parametrize("role,status", [("viewer", 403), ("organizer", 202), ("admin", 202)])
def test_api_write_needs_organizer(app, client, role, status):
    token = make_token(app, role)
    response = client.post("/api/v1/test-messages", headers=bearer(token), json={
        "channel": "email", "to": "someone@example.org", "body": "hello"})
    assert response.status_code == status
    if status == 403:
        assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize("role,status", [("viewer", 403), ("organizer", 403), ("admin", 200)])
def test_user_listing_needs_admin(app, client, role, status):
    assert client.get("/api/v1/users", headers=bearer(make_token(app, role))).status_code == status


def test_api_post_needs_no_csrf_token_but_a_token(app, client):
    token = make_token(app, "admin")
    response = client.post("/api/v1/users", headers=bearer(token), json={
        "email": "api-made@example.org", "role": "viewer", "password": "long enough pw"})
    assert response.status_code == 201
    assert response.json["email"] == "api-made@example.org"


def test_invalid_fields_get_422_naming_them(app, client):
    token = make_token(app, "admin")
    response = client.post("/api/v1/users", headers=bearer(token), json={"email": 5})
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"email", "role", "password"}
    response = client.post("/api/v1/test-messages", headers=bearer(token), json={
        "channel": "sms", "to": "not a phone", "body": "hi"})
    assert response.status_code == 422
    assert "to" in response.json["error"]["details"]


def test_revoked_token_stops_working(app, auth, client):
    token = make_token(app, "viewer")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    from outreach import db
    from outreach.accounts.models import ApiToken

    with app.app_context():
        token_id = db.session().query(ApiToken.id).scalar()
    auth.login("admin")
    from tests.fixtures.app import csrf_token

    client.post(f"/account/tokens/{token_id}/revoke",
                data={"csrf_token": csrf_token(client, "/account")})
    assert app.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_openapi_document_is_public(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert "/test-messages" in doc["paths"]


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
