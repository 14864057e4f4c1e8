"""The contacts API: create, read, update, erase, search, paginate, consent."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import service
from outreach.contacts.models import ConsentEvent, Contact, Suppression, Tombstone
from tests.fixtures.app import make_token, run_jobs


class Tokens:
    """Authorization headers per role, each user created on first use."""

    def __init__(self, app) -> None:
        self.app, self._cache = app, {}

    def __call__(self, role: str) -> dict[str, str]:
        if role not in self._cache:
            self._cache[role] = {"Authorization": f"Bearer {make_token(self.app, role)}"}
        return self._cache[role]


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


def make_contacts(app, rows: list[dict]) -> list[int]:
    """Create contacts through the service (fast), returning their ids."""
    with app.app_context(), db.transaction() as session:
        return [service.create_contact(session, row).id for row in rows]


def make_list(app, name: str) -> int:
    with app.app_context(), db.transaction() as session:
        return service.create_list(session, name).id


CONTACT_KEYS = {"id", "email", "phone", "first_name", "last_name", "postal_code", "timezone",
                "fields", "tags", "lists", "consent", "suppressed", "created_at", "updated_at"}


def test_create_read_update_erase(app, client, auth_as):
    org = auth_as("organizer")
    list_id = make_list(app, "Volunteers")
    response = client.post("/api/v1/contacts", headers=org, json={
        "email": "  Ann.Lee@Example.ORG ", "phone": "(202) 555-0143", "first_name": "Ann",
        "last_name": "Lee", "postal_code": "20001", "fields": {"color": "blue"},
        "tags": ["donor", "vip"], "lists": [list_id]})
    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) >= CONTACT_KEYS
    assert body["email"] == "ann.lee@example.org"
    assert body["phone"] == "+12025550143"
    assert body["timezone"] == "America/New_York"
    assert body["tags"] == ["donor", "vip"] and body["lists"] == [list_id]
    assert body["consent"] == {"email": "none", "sms": "none"}
    assert body["suppressed"] == {"email": None, "sms": None}
    assert response.headers["Location"].endswith(f"/api/v1/contacts/{body['id']}")
    contact_url = f"/api/v1/contacts/{body['id']}"

    assert client.get(contact_url, headers=auth_as("viewer")).json == body

    response = client.patch(contact_url, headers=org, json={
        "first_name": "Anne", "fields": {"size": "M"}, "tags": ["vip"], "lists": []})
    assert response.status_code == 200
    assert response.json["first_name"] == "Anne" and response.json["last_name"] == "Lee"
    assert response.json["fields"] == {"color": "blue", "size": "M"}
    assert response.json["tags"] == ["vip"] and response.json["lists"] == []

    assert client.delete(contact_url, headers=org).status_code == 204
    assert client.get(contact_url, headers=org).status_code == 404
    assert client.delete(contact_url, headers=org).status_code == 404
    assert client.patch(contact_url, headers=org, json={"first_name": "X"}).status_code == 404


ROUTES = [("get", "/api/v1/contacts"), ("post", "/api/v1/contacts"),
          ("get", "/api/v1/contacts/1"), ("patch", "/api/v1/contacts/1"),
          ("delete", "/api/v1/contacts/1"), ("get", "/api/v1/contacts/1/consent")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_needs_a_token(client, method, path):
    response = getattr(client, method)(path, json={})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("method,path", [r for r in ROUTES if r[0] != "get"])
def test_viewer_cannot_write(app, client, auth_as, method, path):
    make_contacts(app, [{"email": "someone@example.org"}])
    response = getattr(client, method)(path, headers=auth_as("viewer"),
                                       json={"email": "x@example.org"})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Contact)) == 1


@pytest.mark.parametrize("body,field", [
    ({"email": "not an email"}, "email"),
    ({"email": "a@example.org", "phone": "12"}, "phone"),
    ({"phone": "555"}, "phone"),
    ({"first_name": "No address"}, "email"),
    ({"email": "a@example.org", "lists": [999]}, "lists"),
    ({"email": "a@example.org", "lists": "1"}, "lists"),
    ({"email": "a@example.org", "tags": [""]}, "tags"),
    ({"email": "a@example.org", "timezone": "Mars/Olympus"}, "timezone"),
    ({"email": "a@example.org", "fields": []}, "fields"),
    ({"email": "a@example.org", "consent": {"email": "yes"}, "consent_source": "x"}, "consent"),
    ({"email": "a@example.org", "consent": {"email": "granted"}}, "consent_source"),
    ({"email": "a@example.org", "consent": {"sms": "granted"}, "consent_source": "x"},
     "consent"),
])
def test_invalid_contact_is_422_naming_the_field(app, client, auth_as, body, field):
    response = client.post("/api/v1/contacts", headers=auth_as("organizer"), json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Contact)) == 0


def test_body_must_be_json_object(client, auth_as):
    response = client.post("/api/v1/contacts", headers=auth_as("organizer"), data="[1]",
                           content_type="application/json")
    assert response.status_code == 422
    assert "body" in response.json["error"]["details"]


def test_duplicate_address_is_409(app, client, auth_as):
    make_contacts(app, [{"email": "taken@example.org", "phone": "2025550100"}])
    org = auth_as("organizer")
    assert client.post("/api/v1/contacts", headers=org,
                       json={"email": "TAKEN@example.org"}).status_code == 409
    assert client.post("/api/v1/contacts", headers=org,
                       json={"phone": "+1 202 555 0100"}).status_code == 409


def test_cursor_pagination_walks_every_contact_once(app, client, auth_as):
    ids = make_contacts(app, [{"email": f"person{i:03d}@example.org"} for i in range(250)])
    viewer = auth_as("viewer")
    seen, sizes, cursor = [], [], None
    while True:
        url = "/api/v1/contacts?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=viewer).json
        sizes.append(len(page["data"]))
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [100, 100, 50]
    assert seen == sorted(ids)
    default = client.get("/api/v1/contacts", headers=viewer).json
    assert len(default["data"]) == 100 and default["next_cursor"]


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"),
    ("limit=-5", "limit"), ("cursor=nonsense!", "cursor"), ("cursor=Yzp4", "cursor"),
    ("list=abc", "list"), ("list=999", "list"), ("segment=x", "segment"),
    ("segment=999", "segment"), ("phone=not-a-phone", "phone"),
])
def test_bad_query_parameters_are_422_naming_them(client, auth_as, query, field):
    response = client.get(f"/api/v1/contacts?{query}", headers=auth_as("viewer"))
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]


def test_limit_of_1000_is_allowed(client, auth_as):
    assert client.get("/api/v1/contacts?limit=1000", headers=auth_as("viewer")).status_code == 200


def test_filters(app, client, auth_as):
    list_id = make_list(app, "Petition")
    ann, bob, cy = make_contacts(app, [
        {"email": "ann@example.org", "first_name": "Ann", "tags": ["vip"], "lists": [list_id]},
        {"email": "bob@example.org", "first_name": "Bob", "phone": "2025550111"},
        {"email": "cy@example.org", "last_name": "Annan", "tags": ["vip"]},
    ])
    org = auth_as("organizer")
    segment = client.post("/api/v1/segments", headers=org, json={
        "name": "Has phone", "rules": {"match": "all", "rules": [
            {"field": "phone", "op": "not_empty"}]}}).json

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/contacts?{query}", headers=auth_as("viewer"))
        assert response.status_code == 200, response.json
        return [c["id"] for c in response.json["data"]]

    assert ids(f"list={list_id}") == [ann]
    assert ids("tag=vip") == [ann, cy]
    assert ids("tag=nobody") == []
    assert ids(f"segment={segment['id']}") == [bob]
    assert ids("q=ann") == [ann, cy]
    assert ids("email=ANN@Example.org") == [ann]
    assert ids("phone=(202) 555-0111") == [bob]
    assert ids(f"tag=vip&list={list_id}") == [ann]


def test_consent_via_api_is_recorded_in_the_ledger(app, client, auth_as):
    org = auth_as("organizer")
    created = client.post("/api/v1/contacts", headers=org, json={
        "email": "ledger@example.org", "phone": "2025550123",
        "consent": {"email": "granted", "sms": "granted"},
        "consent_source": "Signup form at the rally"})
    assert created.status_code == 201, created.json
    assert created.json["consent"] == {"email": "granted", "sms": "granted"}
    url = f"/api/v1/contacts/{created.json['id']}"
    patched = client.patch(url, headers=org, json={
        "consent": {"sms": "revoked"}, "consent_source": "Asked by phone to stop texts"})
    assert patched.json["consent"] == {"email": "granted", "sms": "revoked"}
    ledger = client.get(f"{url}/consent", headers=auth_as("viewer")).json
    assert ledger["next_cursor"] is None
    entries = [(e["channel"], e["status"], e["source"]) for e in ledger["data"]]
    assert entries == [("sms", "revoked", "api"), ("sms", "granted", "api"),
                       ("email", "granted", "api")]
    newest = ledger["data"][0]
    assert newest["evidence"]["consent_source"] == "Asked by phone to stop texts"
    assert newest["evidence"]["ip"] == "127.0.0.1"
    assert newest["created_by_id"] is not None
    # Asking for the state it already has changes nothing.
    client.patch(url, headers=org, json={"consent": {"sms": "revoked"}, "consent_source": "x"})
    assert len(client.get(f"{url}/consent", headers=org).json["data"]) == 3
    assert client.get("/api/v1/contacts/999/consent", headers=org).status_code == 404


def test_granting_consent_never_lifts_a_suppression(app, client, auth_as):
    admin = auth_as("admin")
    assert client.post("/api/v1/suppressions", headers=admin, json={
        "channel": "email", "address": "gone@example.org",
        "reason": "unsubscribed"}).status_code == 201
    created = client.post("/api/v1/contacts", headers=admin, json={
        "email": "gone@example.org", "consent": {"email": "granted"},
        "consent_source": "Re-signed on paper"}).json
    assert created["suppressed"]["email"] == "unsubscribed"
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Suppression)) == 1


def test_erased_contact_is_tombstoned_against_recreation_and_reimport(app, client, auth_as):
    org = auth_as("organizer")
    created = client.post("/api/v1/contacts", headers=org, json={
        "email": "forget.me@example.org", "phone": "2025550177",
        "consent": {"email": "granted"}, "consent_source": "form"}).json
    assert client.delete(f"/api/v1/contacts/{created['id']}", headers=org).status_code == 204
    with app.app_context():
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 2
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 0
    again = client.post("/api/v1/contacts", headers=org, json={"email": "Forget.Me@example.org"})
    assert again.status_code == 409
    again = client.post("/api/v1/contacts", headers=org, json={"phone": "202-555-0177"})
    assert again.status_code == 409

    upload = client.post("/api/v1/imports", headers=org, data={
        "file": (io.BytesIO(b"email\nforget.me@example.org\nnew@example.org\n"), "a.csv")})
    assert upload.status_code == 202, upload.json
    run_jobs(app)
    result = client.get(f"/api/v1/imports/{upload.json['id']}", headers=org).json
    assert (result["status"], result["created"], result["rejected"]) == ("done", 1, 1)
    errors = client.get(result["errors_url"], headers=org).get_data(as_text=True)
    assert "2,email address belongs to a contact erased on request" in errors


MODULES = {"outreach.api.contacts", "outreach.api.lists", "outreach.api.imports",
           "outreach.api.segments", "outreach.api.suppressions"}


def test_every_contacts_domain_route_is_documented_and_declares_a_role(app, client):
    doc = client.get("/api/v1/openapi.json").json
    checked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if view.__module__ not in MODULES:
            continue
        assert getattr(view, "_outreach_role", None) is not None, rule.endpoint
        path = rule.rule.removeprefix("/api/v1")
        for converter in ("<int:", "<"):
            path = path.replace(converter, "{")
        path = path.replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"].get(path, {}), f"{method} {path}"
            checked += 1
    assert checked >= 32
