"""The lists API: lists, their member counts, and adding and removing members."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts.models import Contact, ListMember
from tests.api.test_contacts_api import Tokens, make_contacts


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


def test_list_lifecycle(app, client, auth_as):
    org, viewer = auth_as("organizer"), auth_as("viewer")
    created = client.post("/api/v1/lists", headers=org,
                          json={"name": " Volunteers ", "description": "People who help"})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["name"] == "Volunteers" and body["members"] == 0
    assert set(body) >= {"id", "name", "description", "members", "created_at"}
    url = f"/api/v1/lists/{body['id']}"
    assert created.headers["Location"].endswith(url)

    ids = make_contacts(app, [{"email": f"m{i}@example.org"} for i in range(3)])
    added = client.post(f"{url}/members", headers=org, json={"contact_ids": ids + [ids[0]]})
    assert added.status_code == 200, added.json
    assert added.json == {"list_id": body["id"], "added": 3, "members": 3}
    again = client.post(f"{url}/members", headers=org, json={"contact_ids": ids})
    assert again.json["added"] == 0 and again.json["members"] == 3

    assert client.get(url, headers=viewer).json["members"] == 3
    listing = client.get("/api/v1/lists", headers=viewer).json
    assert listing["next_cursor"] is None
    assert [(x["name"], x["members"]) for x in listing["data"]] == [("Volunteers", 3)]

    renamed = client.patch(url, headers=org, json={"name": "Helpers"})
    assert renamed.status_code == 200
    assert renamed.json["name"] == "Helpers"
    assert renamed.json["description"] == "People who help" and renamed.json["members"] == 3
    assert client.patch(url, headers=org,
                        json={"description": "New"}).json["description"] == "New"

    assert client.delete(f"{url}/members/{ids[0]}", headers=org).status_code == 204
    assert client.delete(f"{url}/members/{ids[0]}", headers=org).status_code == 404
    assert client.get(url, headers=viewer).json["members"] == 2
    contacts = client.get(f"/api/v1/contacts?list={body['id']}", headers=viewer).json["data"]
    assert [c["id"] for c in contacts] == ids[1:]

    assert client.delete(url, headers=org).status_code == 204
    assert client.get(url, headers=viewer).status_code == 404
    with app.app_context():
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 3
        assert session.scalar(sa.select(sa.func.count()).select_from(ListMember)) == 0


def test_list_pagination(client, auth_as):
    org = auth_as("organizer")
    for i in range(5):
        client.post("/api/v1/lists", headers=org, json={"name": f"List {i}"})
    first = client.get("/api/v1/lists?limit=3", headers=org).json
    second = client.get(f"/api/v1/lists?limit=3&cursor={first['next_cursor']}",
                        headers=org).json
    assert [x["name"] for x in first["data"] + second["data"]] == [f"List {i}" for i in range(5)]
    assert second["next_cursor"] is None
    assert client.get("/api/v1/lists?limit=0", headers=org).status_code == 422


def test_duplicate_name_is_409(client, auth_as):
    org = auth_as("organizer")
    first = client.post("/api/v1/lists", headers=org, json={"name": "A"}).json
    client.post("/api/v1/lists", headers=org, json={"name": "B"})
    assert client.post("/api/v1/lists", headers=org, json={"name": "A"}).status_code == 409
    assert client.patch(f"/api/v1/lists/{first['id']}", headers=org,
                        json={"name": "B"}).status_code == 409
    assert client.patch(f"/api/v1/lists/{first['id']}", headers=org,
                        json={"name": "A"}).status_code == 200


@pytest.mark.parametrize("body,field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": 5}, "name"), ({"name": "x" * 201}, "name"),
    ({"name": "ok", "description": 3}, "description"),
])
def test_invalid_list_is_422(client, auth_as, body, field):
    response = client.post("/api/v1/lists", headers=auth_as("organizer"), json=body)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]


@pytest.mark.parametrize("body", [{}, {"contact_ids": "1"}, {"contact_ids": [1, "2"]},
                                  {"contact_ids": [True]}, {"contact_ids": [999]}])
def test_invalid_members_are_422_and_nothing_is_added(app, client, auth_as, body):
    org = auth_as("organizer")
    list_id = client.post("/api/v1/lists", headers=org, json={"name": "L"}).json["id"]
    ids = make_contacts(app, [{"email": "one@example.org"}])
    if body.get("contact_ids") == [999]:
        body = {"contact_ids": [ids[0], 999]}
    response = client.post(f"/api/v1/lists/{list_id}/members", headers=org, json=body)
    assert response.status_code == 422
    assert "contact_ids" in response.json["error"]["details"]
    assert client.get(f"/api/v1/lists/{list_id}", headers=org).json["members"] == 0


def test_unknown_list_is_404(client, auth_as):
    org = auth_as("organizer")
    assert client.get("/api/v1/lists/999", headers=org).status_code == 404
    assert client.patch("/api/v1/lists/999", headers=org, json={"name": "x"}).status_code == 404
    assert client.delete("/api/v1/lists/999", headers=org).status_code == 404
    assert client.post("/api/v1/lists/999/members", headers=org,
                       json={"contact_ids": []}).status_code == 404
    assert client.delete("/api/v1/lists/999/members/1", headers=org).status_code == 404


ROUTES = [("get", "/api/v1/lists"), ("post", "/api/v1/lists"), ("get", "/api/v1/lists/1"),
          ("patch", "/api/v1/lists/1"), ("delete", "/api/v1/lists/1"),
          ("post", "/api/v1/lists/1/members"), ("delete", "/api/v1/lists/1/members/1")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_token_required(client, method, path):
    assert getattr(client, method)(path, json={}).status_code == 401


@pytest.mark.parametrize("method,path", [r for r in ROUTES if r[0] != "get"])
def test_viewer_cannot_write(client, auth_as, method, path):
    response = getattr(client, method)(path, headers=auth_as("viewer"),
                                       json={"name": "x", "contact_ids": []})
    assert response.status_code == 403
