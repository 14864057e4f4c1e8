"""The segment pages: the builder saves rules, and the preview endpoint counts them live."""

from __future__ import annotations

import json

import sqlalchemy as sa

from outreach.contacts.models import Segment
from tests.contacts.test_pages import make_contact, make_list, make_segment, post, query
from tests.fixtures.app import csrf_token


def _people(app):
    donors = make_list(app, "Donors")
    make_contact(app, email="a@example.org", first_name="Ann", tags=["vip"], lists=[donors],
                 fields={"age": "41"})
    make_contact(app, email="b@example.org", first_name="Bob", lists=[donors],
                 fields={"age": "19"})
    make_contact(app, email="c@example.org", first_name="Cat", tags=["vip"])
    make_contact(app, phone="+12025550100")
    return donors


def test_builder_saves_rows_as_rules_and_lists_show_live_counts(app, auth, client):
    donors = _people(app)
    auth.login("organizer")
    page = client.get("/segments/new").get_data(as_text=True)
    assert page.count('<li class="rule-row') == 8 and 'name="rules_json"' in page
    assert "segment-builder.js" in page and "<script>" not in page
    response = post(client, "/segments/new", {
        "name": "VIP donors", "match": "all",
        "field-0": "list", "op-0": "in", "value-0": "Donors",
        "field-1": "tag", "op-1": "has", "value-1": "vip",
        "field-2": "", "op-2": "eq", "value-2": "",
        "action": "save"}, token_from="/segments/new")
    assert response.status_code == 302
    rules = query(app, sa.select(Segment.rules))[0][0]
    assert rules == {"match": "all", "rules": [
        {"field": "list", "op": "in", "value": donors},
        {"field": "tag", "op": "has", "value": "vip"}]}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 contact matches." in page and 'value="Donors"' in page
    listing = client.get("/segments").get_data(as_text=True)
    assert "VIP donors" in listing and ">1</td>" in listing

    segment_id = query(app, sa.select(Segment.id))[0][0]
    response = post(client, f"/segments/{segment_id}", {
        "name": "VIP donors", "match": "any",
        "field-0": "list", "op-0": "in", "value-0": str(donors),
        "field-1": "tag", "op-1": "has", "value-1": "vip", "action": "save"},
        token_from="/segments/new", follow_redirects=True)
    assert "Segment “VIP donors” saved." in response.get_data(as_text=True)
    assert "3 contacts match." in response.get_data(as_text=True)


def test_preview_endpoint_counts_with_the_csrf_header(app, auth, client):
    _people(app)
    auth.login("organizer")
    token = csrf_token(client, "/segments/new")
    headers = {"X-CSRFToken": token}
    response = client.post("/segments/preview", headers=headers, data={
        "match": "all", "field-0": "custom", "key-0": "age", "op-0": "gt", "value-0": "30"})
    assert response.status_code == 200 and response.get_json() == {"count": 1}
    response = client.post("/segments/preview", headers=headers, data={
        "match": "any", "field-0": "first_name", "op-0": "starts_with", "value-0": "b",
        "field-1": "email", "op-1": "empty"})
    assert response.get_json() == {"count": 2}
    response = client.post("/segments/preview", headers=headers, json={
        "match": "all", "rules": [{"field": "tag", "op": "has", "value": "vip"}]})
    assert response.get_json() == {"count": 2}
    response = client.post("/segments/preview", headers=headers, data={})
    assert response.get_json() == {"count": 4}  # no conditions: everyone
    bad = client.post("/segments/preview", headers=headers, data={
        "field-0": "email", "op-0": "has", "value-0": "x"})
    assert bad.status_code == 422
    assert "email takes" in bad.get_json()["error"]["details"]["rules"]
    missing = client.post("/segments/preview", headers=headers, data={
        "field-0": "opened", "op-0": "within_days", "value-0": "soon"})
    assert missing.get_json()["error"]["details"] == {"row-0": "needs a whole number of days"}
    assert client.post("/segments/preview", data={"field-0": "email"}).status_code == 400


def test_preview_refuses_viewers(auth, client):
    auth.login("viewer")
    token = csrf_token(client, "/segments")
    response = client.post("/segments/preview", headers={"X-CSRFToken": token}, data={})
    assert response.status_code == 403


def test_nested_groups_through_the_json_box(app, auth, client):
    _people(app)
    auth.login("organizer")
    rules = {"match": "all", "rules": [
        {"field": "email", "op": "not_empty"},
        {"match": "any", "rules": [{"field": "first_name", "op": "eq", "value": "ann"},
                                   {"field": "first_name", "op": "eq", "value": "cat"}]}]}
    response = post(client, "/segments/new", {"name": "Nested", "rules_json": json.dumps(rules),
                                              "field-0": "tag", "op-0": "has", "value-0": "x"},
                    token_from="/segments/new")
    assert response.status_code == 302
    assert query(app, sa.select(Segment.rules))[0][0] == rules
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 contacts match." in page and "&#34;match&#34;: &#34;any&#34;" in page
    bad = post(client, "/segments/new", {"name": "Broken", "rules_json": "{not json"},
               token_from="/segments/new")
    assert bad.status_code == 422 and "The JSON rules cannot be read" in bad.get_data(
        as_text=True)


def test_builder_without_javascript_counts_and_shows_errors(app, auth, client):
    _people(app)
    make_segment(app, "Taken", {"match": "all", "rules": []})
    auth.login("organizer")
    response = post(client, "/segments/new", {
        "name": "Young", "field-0": "custom", "key-0": "age", "op-0": "lt", "value-0": "30",
        "action": "count"}, token_from="/segments/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "1 contact matches." in page
    assert query(app, sa.select(Segment.name)) == [("Taken",)]  # counting saves nothing
    response = post(client, "/segments/new", {
        "name": "Young", "field-0": "first_name", "op-0": "eq", "value-0": "",
        "field-1": "list", "op-1": "in", "value-1": "Nope", "action": "save"},
        token_from="/segments/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Condition 1: needs a value" in page and "Condition 2: no list named “Nope”" in page
    response = post(client, "/segments/new", {"name": "Taken", "action": "save"},
                    token_from="/segments/new")
    assert response.status_code == 422 and "already exists" in response.get_data(as_text=True)
    response = post(client, "/segments/new", {
        "name": "Odd", "field-0": "custom", "key-0": "age", "op-0": "gt", "value-0": "many",
        "action": "save"}, token_from="/segments/new")
    assert response.status_code == 422 and "gt needs a number" in response.get_data(as_text=True)
    assert query(app, sa.select(Segment.name)) == [("Taken",)]


def test_a_viewer_sees_a_segment_read_only(app, auth, client):
    _people(app)
    segment_id = make_segment(app, "VIPs", {"match": "all", "rules": [
        {"field": "tag", "op": "has", "value": "vip"}]})
    auth.login("viewer")
    page = client.get(f"/segments/{segment_id}").get_data(as_text=True)
    assert "2 contacts match." in page and "disabled" in page
    assert "Save segment" not in page and "data-preview-url" not in page
