"""CSV exports of contacts and suppressions: the service, the job and the API."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from outreach import db
from outreach.contacts import exports, service
from outreach.contacts.models import Export, Segment
from outreach.exceptions import ValidationError
from outreach.files.models import StoredFile
from tests.api.test_contacts_api import Tokens, make_contacts, make_list
from tests.fixtures.app import run_jobs


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


def export_rows(client, headers, export_id: int) -> list[dict[str, str]]:
    """Download a finished export and parse it."""
    info = client.get(f"/api/v1/exports/{export_id}", headers=headers).json
    assert info["status"] == "done", info
    response = client.get(info["download_url"], headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def people(app, client, auth_as):
    """A list, a segment and contacts with tags, custom fields, consent and suppressions."""
    org = auth_as("organizer")
    donors, rally = make_list(app, "Donors"), make_list(app, "Rally")
    ids = make_contacts(app, [
        {"email": "ann@example.org", "phone": "2025550143", "first_name": "Ann",
         "tags": ["vip", "donor"], "lists": [donors, rally], "fields": {"color": "blue"}},
        {"email": "bob@example.org", "first_name": "=HYPERLINK(\"http://x\")",
         "lists": [donors], "fields": {"size": "M", "email": "other"}},
        {"phone": "2025550144", "first_name": "Cy", "tags": ["vip"]},
    ])
    client.patch(f"/api/v1/contacts/{ids[0]}", headers=org, json={
        "consent": {"email": "granted", "sms": "revoked"}, "consent_source": "form"})
    client.post("/api/v1/suppressions", headers=org, json={
        "channel": "email", "address": "bob@example.org", "reason": "hard_bounce"})
    client.post("/api/v1/suppressions", headers=org, json={
        "channel": "sms", "address": "2025550143", "reason": "stop"})
    segment = client.post("/api/v1/segments", headers=org, json={
        "name": "VIP", "rules": {"match": "all", "rules": [
            {"field": "tag", "op": "has", "value": "vip"}]}}).json
    return {"ids": ids, "donors": donors, "rally": rally, "segment": segment["id"]}


def test_contacts_export_of_a_list(app, client, auth_as, people):
    org = auth_as("organizer")
    response = client.post("/api/v1/exports", headers=org,
                           json={"kind": "contacts", "list_id": people["donors"]})
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued" and response.json["download_url"] is None
    export_id = response.json["id"]
    assert client.get(f"/api/v1/exports/{export_id}/download", headers=org).status_code == 409
    run_jobs(app)
    info = client.get(f"/api/v1/exports/{export_id}", headers=org).json
    assert (info["status"], info["rows"]) == ("done", 2)
    assert info["download_url"] == f"/api/v1/exports/{export_id}/download"

    rows = export_rows(client, org, export_id)
    assert list(rows[0]) == [*exports.CONTACT_COLUMNS, "color", "custom_email", "size"]
    ann, bob = rows
    assert ann == {
        "id": str(people["ids"][0]), "email": "ann@example.org", "phone": "+12025550143",
        "first_name": "Ann", "last_name": "", "postal_code": "",
        "timezone": "America/New_York", "tags": "donor|vip", "lists": "Donors|Rally",
        "email_consent": "granted", "sms_consent": "revoked", "email_suppressed": "",
        "sms_suppressed": "stop", "created_at": ann["created_at"], "color": "blue",
        "custom_email": "", "size": ""}
    assert ann["created_at"].startswith("20")
    assert bob["first_name"] == "'=HYPERLINK(\"http://x\")"  # not run as a formula
    assert (bob["email_consent"], bob["email_suppressed"]) == ("none", "hard_bounce")
    assert (bob["custom_email"], bob["size"], bob["lists"]) == ("other", "M", "Donors")


def test_contacts_export_of_a_segment_and_of_everyone(app, client, auth_as, people):
    org = auth_as("organizer")
    by_segment = client.post("/api/v1/exports", headers=org,
                             json={"kind": "contacts", "segment_id": people["segment"]}).json
    everyone = client.post("/api/v1/exports", headers=org, json={"kind": "contacts"}).json
    run_jobs(app)
    rows = export_rows(client, org, by_segment["id"])
    assert [r["first_name"] for r in rows] == ["Ann", "Cy"]
    assert rows[1]["email"] == "" and rows[1]["phone"] == "+12025550144"
    assert rows[1]["tags"] == "vip" and rows[1]["lists"] == ""
    assert len(export_rows(client, org, everyone["id"])) == 3
    listing = client.get("/api/v1/exports", headers=org).json
    assert [e["id"] for e in listing["data"]] == [everyone["id"], by_segment["id"]]


def test_suppressions_export_is_admin_only(app, client, auth_as, people):
    org, admin = auth_as("organizer"), auth_as("admin")
    refused = client.post("/api/v1/exports", headers=org, json={"kind": "suppressions"})
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    response = client.post("/api/v1/exports", headers=admin, json={"kind": "suppressions"})
    assert response.status_code == 202
    export_id = response.json["id"]
    run_jobs(app)
    rows = export_rows(client, admin, export_id)
    assert [(r["channel"], r["address"], r["reason"]) for r in rows] == [
        ("email", "bob@example.org", "hard_bounce"), ("sms", "+12025550143", "stop")]
    assert list(rows[0]) == list(exports.SUPPRESSION_COLUMNS)
    assert client.get(f"/api/v1/exports/{export_id}", headers=org).status_code == 403
    assert client.get(f"/api/v1/exports/{export_id}/download", headers=org).status_code == 403
    assert client.get("/api/v1/exports", headers=org).json["data"] == []
    assert len(client.get("/api/v1/exports", headers=admin).json["data"]) == 1


@pytest.mark.parametrize("body,field", [
    ({}, "kind"), ({"kind": "blasts"}, "kind"),
    ({"kind": "contacts", "list_id": 999}, "list_id"),
    ({"kind": "contacts", "list_id": "1"}, "list_id"),
    ({"kind": "contacts", "segment_id": 999}, "segment_id"),
])
def test_invalid_export_is_422(app, client, auth_as, body, field):
    response = client.post("/api/v1/exports", headers=auth_as("organizer"), json=body)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Export)) == 0


def test_a_suppressions_export_takes_no_list(app, auth_as):
    with app.app_context(), pytest.raises(ValidationError) as caught:
        exports.create_export(db.session(), "suppressions", list_id=1)
    assert "list_id" in caught.value.fields


def test_export_roles_and_tokens(client, auth_as):
    assert client.post("/api/v1/exports", json={"kind": "contacts"}).status_code == 401
    assert client.get("/api/v1/exports/1").status_code == 401
    assert client.get("/api/v1/exports/1/download").status_code == 401
    viewer = auth_as("viewer")
    assert client.post("/api/v1/exports", headers=viewer,
                       json={"kind": "contacts"}).status_code == 403
    assert client.get("/api/v1/exports/999", headers=auth_as("organizer")).status_code == 404


def test_export_streams_in_batches_with_bulk_queries(app, monkeypatch):
    """Each batch costs a fixed number of queries, however many contacts it holds."""
    monkeypatch.setattr(exports, "BATCH", 4)
    list_id = make_list(app, "L")
    make_contacts(app, [{"email": f"p{i:02d}@example.org", "tags": [f"t{i % 3}"],
                         "lists": [list_id], "fields": {f"k{i % 2}": str(i)}}
                        for i in range(10)])
    with app.app_context():
        session = db.session()
        with db.transaction():
            export = exports.create_export(session, "contacts")
        statements: list[str] = []

        def count(conn, cursor, statement, *args) -> None:
            statements.append(statement)

        engine = db.engine()
        event.listen(engine, "before_cursor_execute", count)
        try:
            exports.run_export(export.id)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        done = session.get(Export, export.id)
        assert (done.status, done.rows) == ("done", 10)
        batch_queries = [s for s in statements if "contact_tags" in s]
        assert len(batch_queries) == 3  # batches of 4, 4 and 2
        assert len(statements) < 30
        stored = session.get(StoredFile, done.file_id)
        assert stored.name == f"contacts-export-{export.id}.csv"
    from outreach.files.service import iter_chunks

    with app.app_context():
        text = b"".join(iter_chunks(db.engine(), done.file_id)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["email"] for r in rows] == [f"p{i:02d}@example.org" for i in range(10)]
    assert [r["k0"] for r in rows[:2]] == ["0", ""] and rows[9]["k1"] == "9"
    assert all(r["lists"] == "L" for r in rows)


def test_many_custom_field_keys_become_one_json_column(app, monkeypatch):
    monkeypatch.setattr(exports, "MAX_FIELD_COLUMNS", 2)
    make_contacts(app, [{"email": "a@example.org", "fields": {"a": "1", "b": "2"}},
                        {"email": "b@example.org", "fields": {"c": "3"}}])
    with app.app_context():
        with db.transaction() as session:
            export = exports.create_export(session, "contacts")
        exports.run_export(export.id)
        from outreach.files.service import iter_chunks

        done = db.session().get(Export, export.id)
        text = b"".join(iter_chunks(db.engine(), done.file_id)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[-1] == "fields"
    assert [r["fields"] for r in rows] == ['{"a": "1", "b": "2"}', '{"c": "3"}']


def test_a_failing_export_is_marked_failed_and_the_error_raised(app):
    with app.app_context():
        with db.transaction() as session:
            segment = Segment(name="Broken", rules={"match": "all", "rules": [
                {"field": "no_such_column", "op": "eq", "value": "x"}]})
            session.add(segment)
            session.flush()
            export = exports.create_export(session, "contacts", segment_id=segment.id)
        with pytest.raises(AttributeError):
            exports.run_export(export.id)
        failed = db.session().get(Export, export.id)
        assert failed.status == "failed"
        assert "Internal error (AttributeError)" in failed.error
        assert failed.file_id is None


def test_a_done_export_is_not_run_twice(app):
    make_contacts(app, [{"email": "a@example.org"}])
    with app.app_context():
        with db.transaction() as session:
            export = exports.create_export(session, "contacts")
        exports.run_export(export.id)
        first_file = db.session().get(Export, export.id).file_id
        exports.run_export(export.id)
        assert db.session().get(Export, export.id).file_id == first_file
        assert db.session().scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 1


def test_service_validates_ids(app):
    with app.app_context():
        session = db.session()
        list_id = service.create_list(session, "Real").id
        assert exports.create_export(session, "contacts", list_id=list_id).list_id == list_id
        with pytest.raises(ValidationError) as caught:
            exports.create_export(session, "contacts", list_id=list_id + 1, segment_id=True)
        assert set(caught.value.fields) == {"list_id", "segment_id"}
        session.rollback()


def test_deleting_the_list_before_the_job_runs_fails_the_export(app, client, auth_as):
    """A list export never widens to every contact when its list disappears."""
    org = auth_as("organizer")
    list_id = make_list(app, "Short-lived")
    make_contacts(app, [{"email": "in@example.org", "lists": [list_id]},
                        {"email": "out@example.org"}])
    export = client.post("/api/v1/exports", headers=org,
                         json={"kind": "contacts", "list_id": list_id}).json
    assert client.delete(f"/api/v1/lists/{list_id}", headers=org).status_code == 204
    run_jobs(app)
    info = client.get(f"/api/v1/exports/{export['id']}", headers=org).json
    assert info["status"] == "failed" and info["download_url"] is None
    assert "deleted before the export ran" in info["error"]
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(StoredFile)) == 0
