"""The imports API: upload a CSV, a worker imports it, poll the import, read the rejections."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts.models import ConsentEvent, Contact, ContactList, Import, Suppression
from outreach.files.models import FileChunk, StoredFile
from outreach.queue import connection, get_queue
from tests.api.test_contacts_api import Tokens, make_list
from tests.fixtures.app import build_app, make_token, run_jobs


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


def upload(client, headers, content: bytes, name: str = "people.csv", **form):
    """POST a CSV to /imports."""
    return client.post("/api/v1/imports", headers=headers,
                       data={"file": (io.BytesIO(content), name), **form})


def counts(app) -> dict[str, int]:
    """How many rows the tables an upload could write hold."""
    with app.app_context():
        session = db.session()
        return {model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Import, StoredFile, FileChunk, Contact, ContactList)}


def assert_nothing_written(app) -> None:
    assert counts(app) == dict.fromkeys(["Import", "StoredFile", "FileChunk", "Contact",
                                         "ContactList"], 0)
    assert get_queue("default", connection(app)).count == 0


MESSY = ("\ufeffE-mail;First Name;Mobile;Tags;Favorite Color\r\n"
         "ann@Example.org;Ann;(202) 555-0143;donor, vip;blue\r\n"
         "not-an-email;Bob;;;\r\n"
         ";Cy;+1 202 555 0199;;green\r\n"
         ";;;;\r\n"
         "dup@example.org;D1;;;\r\n"
         "DUP@example.org;D2;;;\r\n"
         "ed@example.org;Ed;12;;\r\n").encode("utf-8")


def test_messy_csv_import_end_to_end(app, client, auth_as):
    org = auth_as("organizer")
    response = upload(client, org, MESSY, list="Rally signups", mode="add")
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    import_id = response.json["id"]
    assert response.headers["Location"].endswith(f"/api/v1/imports/{import_id}")

    pending = client.get(f"/api/v1/imports/{import_id}", headers=auth_as("viewer")).json
    assert pending["status"] == "queued"
    run_jobs(app)

    result = client.get(f"/api/v1/imports/{import_id}", headers=auth_as("viewer")).json
    assert result["status"] == "done", result
    assert (result["rows_total"], result["created"], result["updated"], result["rejected"]) == (
        6, 3, 0, 3)
    assert result["errors_url"] == f"/api/v1/imports/{import_id}/errors"

    errors = client.get(result["errors_url"], headers=auth_as("viewer"))
    assert errors.status_code == 200
    assert errors.mimetype == "text/csv"
    assert "attachment" in errors.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(errors.get_data(as_text=True))))
    # The streamed body gave its database connection back (none left idle in a transaction).
    assert app.extensions["db_engine"].pool.checkedout() == 0
    assert rows[0] == ["line", "reason"]
    by_line = {int(r[0]): r[1:] for r in rows[1:]}
    assert sorted(by_line) == [3, 7, 8] and len(rows) == 4
    assert by_line[3][1:] == ["not-an-email", "Bob", "", "", ""]
    assert "invalid email" in by_line[3][0]
    assert by_line[7][0] == "duplicate in file (same email as line 6)"
    assert by_line[7][1:] == ["DUP@example.org", "D2", "", "", ""]
    assert "invalid phone" in by_line[8][0]

    list_id = client.get("/api/v1/lists", headers=org).json["data"][0]["id"]
    people = client.get(f"/api/v1/contacts?list={list_id}", headers=org).json["data"]
    by_name = {p["first_name"]: p for p in people}
    assert set(by_name) == {"Ann", "Cy", "D1"}
    assert by_name["Ann"]["email"] == "ann@example.org"
    assert by_name["Ann"]["phone"] == "+12025550143"
    assert by_name["Ann"]["tags"] == ["donor", "vip"]
    assert by_name["Ann"]["fields"] == {"favorite_color": "blue"}
    assert by_name["Cy"]["email"] is None and by_name["Cy"]["phone"] == "+12025550199"

    listing = client.get("/api/v1/imports", headers=org).json
    assert [i["id"] for i in listing["data"]] == [import_id]


def test_recent_imports_newest_first_with_pagination(app, client, auth_as):
    org = auth_as("organizer")
    ids = [upload(client, org, b"email\na@example.org\n").json["id"] for _ in range(3)]
    first = client.get("/api/v1/imports?limit=2", headers=org).json
    second = client.get(f"/api/v1/imports?limit=2&cursor={first['next_cursor']}",
                        headers=org).json
    assert [i["id"] for i in first["data"] + second["data"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_import_consent_never_regains_revoked_consent_nor_lifts_suppressions(
        app, client, auth_as):
    org = auth_as("organizer")
    revoked = client.post("/api/v1/contacts", headers=org, json={
        "email": "revoked@example.org", "consent": {"email": "granted"},
        "consent_source": "form"}).json
    client.patch(f"/api/v1/contacts/{revoked['id']}", headers=org, json={
        "consent": {"email": "revoked"}, "consent_source": "Replied asking to stop"})
    assert client.post("/api/v1/suppressions", headers=org, json={
        "channel": "email", "address": "suppressed@example.org",
        "reason": "unsubscribed"}).status_code == 201

    content = b"email\nrevoked@example.org\nsuppressed@example.org\nfresh@example.org\n"
    response = upload(client, org, content, mode="update", consent="email",
                      consent_source="Petition, March")
    assert response.status_code == 202, response.json
    run_jobs(app)
    assert client.get(f"/api/v1/imports/{response.json['id']}",
                      headers=org).json["status"] == "done"

    people = {c["email"]: c for c in client.get("/api/v1/contacts", headers=org).json["data"]}
    assert people["revoked@example.org"]["consent"]["email"] == "revoked"
    assert people["suppressed@example.org"]["consent"]["email"] == "none"
    assert people["suppressed@example.org"]["suppressed"]["email"] == "unsubscribed"
    assert people["fresh@example.org"]["consent"]["email"] == "granted"
    ledger = client.get(f"/api/v1/contacts/{revoked['id']}/consent", headers=org).json["data"]
    assert [e["status"] for e in ledger] == ["revoked", "granted"]
    fresh = client.get(f"/api/v1/contacts/{people['fresh@example.org']['id']}/consent",
                       headers=org).json["data"]
    assert fresh[0]["source"] == "import"
    assert fresh[0]["evidence"]["consent_source"] == "Petition, March"
    with app.app_context():
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 3


def test_a_row_with_10000_columns_is_rejected_with_its_line(app, client, auth_as):
    org = auth_as("organizer")
    wide = ",".join(["wide@example.org", "Wide"] + ["x"] * 9998)
    content = f"email,first_name\nok@example.org,Ok\n{wide}\nalso@example.org,Also\n".encode()
    response = upload(client, org, content)
    assert response.status_code == 202, response.json
    run_jobs(app)
    result = client.get(f"/api/v1/imports/{response.json['id']}", headers=org).json
    assert (result["status"], result["created"], result["rejected"]) == ("done", 2, 1)
    rows = list(csv.reader(io.StringIO(
        client.get(result["errors_url"], headers=org).get_data(as_text=True))))
    assert rows[1][0] == "3" and "10000 values" in rows[1][1]


@pytest.mark.parametrize("content,name,form,field", [
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"\x00" * 200, "people.xlsx", {},
     "file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "people.csv", {}, "file"),
    (b"", "empty.csv", {}, "file"),
    (b"\n\n  \n", "blank.csv", {}, "file"),
    (b"name,city\nAnn,Paris\n", "people.csv", {}, "file"),
    (b"email\na@example.org\n", "people.csv", {"mode": "replace"}, "mode"),
    (b"email\na@example.org\n", "people.csv", {"consent": "email,fax"}, "consent"),
    (b"email\na@example.org\n", "people.csv", {"consent": "sms"}, "consent_source"),
    (b"email\na@example.org\n", "people.csv", {"list": "999"}, "list"),
])
def test_bad_uploads_are_422_and_write_nothing(app, client, auth_as, content, name, form,
                                               field):
    response = upload(client, auth_as("organizer"), content, name, **form)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]
    assert_nothing_written(app)


def test_missing_file_is_422(app, client, auth_as):
    response = client.post("/api/v1/imports", headers=auth_as("organizer"),
                           data={"list": "x"})
    assert response.status_code == 422
    assert "file" in response.json["error"]["details"]
    assert_nothing_written(app)


def test_too_large_upload_is_413_json_and_writes_nothing(app, database_url, redis_url,
                                                         tmp_path: Path):
    small = build_app(database_url, redis_url, tmp_path / "small", MAX_UPLOAD_MB=1)
    assert small.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    try:
        headers = {"Authorization": f"Bearer {make_token(small, 'organizer')}"}
        content = b"email\n" + b"someone@example.org\n" * 60_000  # about 1.2 MB
        response = upload(small.test_client(), headers, content, list="Big")
        assert response.status_code == 413
        error = response.json["error"]
        assert error["code"] == "too_large" and "1 MB" in error["message"]
        assert "file" in error["details"]
        assert_nothing_written(small)
        ok = upload(small.test_client(), headers, b"email\nsomeone@example.org\n")
        assert ok.status_code == 202
    finally:
        small.extensions["db_engine"].dispose()


def test_unknown_import_is_404(client, auth_as):
    viewer = auth_as("viewer")
    assert client.get("/api/v1/imports/999", headers=viewer).status_code == 404
    assert client.get("/api/v1/imports/999/errors", headers=viewer).status_code == 404


def test_list_given_by_id(app, client, auth_as):
    org = auth_as("organizer")
    list_id = make_list(app, "Existing")
    response = upload(client, org, b"email\na@example.org\n", list=str(list_id))
    assert response.status_code == 202
    assert response.json["list_id"] == list_id
    run_jobs(app)
    assert client.get(f"/api/v1/lists/{list_id}", headers=org).json["members"] == 1


@pytest.mark.parametrize("method,path", [("get", "/api/v1/imports"),
                                         ("post", "/api/v1/imports"),
                                         ("get", "/api/v1/imports/1"),
                                         ("get", "/api/v1/imports/1/errors")])
def test_token_required(client, method, path):
    assert getattr(client, method)(path).status_code == 401


def test_viewer_cannot_upload(app, client, auth_as):
    response = upload(client, auth_as("viewer"), b"email\na@example.org\n")
    assert response.status_code == 403
    assert_nothing_written(app)
