"""The segments API: saved rules, their counts, and the builder's live count."""

from __future__ import annotations

import pytest

from tests.api.test_contacts_api import Tokens, make_contacts, make_list


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


VIP = {"match": "all", "rules": [{"field": "tag", "op": "has", "value": "vip"}]}


def test_segment_lifecycle(app, client, auth_as):
    org, viewer = auth_as("organizer"), auth_as("viewer")
    list_id = make_list(app, "Donors")
    make_contacts(app, [
        {"email": "a@example.org", "tags": ["vip"], "lists": [list_id]},
        {"email": "b@example.org", "tags": ["vip"]},
        {"email": "c@example.org", "fields": {"age": "40"}},
    ])
    created = client.post("/api/v1/segments", headers=org, json={"name": "VIPs", "rules": VIP})
    assert created.status_code == 201, created.json
    segment = created.json
    assert set(segment) >= {"id", "name", "rules", "created_at", "updated_at"}
    assert segment["rules"] == VIP
    url = f"/api/v1/segments/{segment['id']}"
    assert created.headers["Location"].endswith(url)

    assert client.get(url, headers=viewer).json == segment
    assert client.get(f"{url}/count", headers=viewer).json == {"count": 2}
    listing = client.get("/api/v1/segments", headers=viewer).json
    assert [s["name"] for s in listing["data"]] == ["VIPs"] and listing["next_cursor"] is None

    vip_donors = {"match": "all", "rules": [VIP, {"field": "list", "op": "in",
                                                  "value": list_id}]}
    replaced = client.put(url, headers=org, json={"name": "VIP donors", "rules": vip_donors})
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["name"] == "VIP donors" and replaced.json["rules"] == vip_donors
    assert client.get(f"{url}/count", headers=viewer).json == {"count": 1}

    assert client.delete(url, headers=org).status_code == 204
    assert client.get(url, headers=viewer).status_code == 404
    assert client.get(f"{url}/count", headers=viewer).status_code == 404


def test_live_count(app, client, auth_as):
    make_contacts(app, [{"email": "a@example.org", "first_name": "Ann"},
                        {"email": "b@example.org", "first_name": "Bob"}])
    response = client.post("/api/v1/segments/count", headers=auth_as("organizer"), json={
        "rules": {"match": "any", "rules": [
            {"field": "first_name", "op": "eq", "value": "ann"},
            {"field": "email", "op": "contains", "value": "b@"}]}})
    assert response.status_code == 200
    assert response.json == {"count": 2}
    assert client.post("/api/v1/segments/count", headers=auth_as("viewer"),
                       json={"rules": VIP}).status_code == 403


@pytest.mark.parametrize("rules", [
    None, {}, {"match": "some", "rules": []}, {"match": "all", "rules": "x"},
    {"match": "all", "rules": [{"field": "nope", "op": "eq", "value": 1}]},
    {"match": "all", "rules": [{"field": "tag", "op": "eq", "value": "vip"}]},
    {"match": "all", "rules": [{"field": "list", "op": "in", "value": "Donors"}]},
    {"match": "all", "rules": [{"field": "opened", "op": "within_days", "value": -1}]},
])
def test_bad_rules_are_422_naming_rules(client, auth_as, rules):
    org = auth_as("organizer")
    response = client.post("/api/v1/segments", headers=org, json={"name": "S", "rules": rules})
    assert response.status_code == 422
    assert "rules" in response.json["error"]["details"]
    response = client.post("/api/v1/segments/count", headers=org, json={"rules": rules})
    assert response.status_code == 422
    assert "rules" in response.json["error"]["details"]


def test_name_problems(client, auth_as):
    org = auth_as("organizer")
    for body in ({"rules": VIP}, {"name": "", "rules": VIP}, {"name": 3, "rules": VIP}):
        response = client.post("/api/v1/segments", headers=org, json=body)
        assert response.status_code == 422 and "name" in response.json["error"]["details"]
    first = client.post("/api/v1/segments", headers=org, json={"name": "A", "rules": VIP}).json
    client.post("/api/v1/segments", headers=org, json={"name": "B", "rules": VIP})
    assert client.post("/api/v1/segments", headers=org,
                       json={"name": "A", "rules": VIP}).status_code == 409
    assert client.put(f"/api/v1/segments/{first['id']}", headers=org,
                      json={"name": "B", "rules": VIP}).status_code == 409
    assert client.put("/api/v1/segments/999", headers=org,
                      json={"name": "C", "rules": VIP}).status_code == 404
    assert client.delete("/api/v1/segments/999", headers=org).status_code == 404


ROUTES = [("get", "/api/v1/segments"), ("post", "/api/v1/segments"),
          ("get", "/api/v1/segments/1"), ("put", "/api/v1/segments/1"),
          ("delete", "/api/v1/segments/1"), ("get", "/api/v1/segments/1/count"),
          ("post", "/api/v1/segments/count")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_token_required(client, method, path):
    assert getattr(client, method)(path, json={}).status_code == 401


@pytest.mark.parametrize("method,path", [r for r in ROUTES if r[0] != "get"])
def test_viewer_cannot_write(client, auth_as, method, path):
    response = getattr(client, method)(path, headers=auth_as("viewer"),
                                       json={"name": "x", "rules": VIP})
    assert response.status_code == 403
