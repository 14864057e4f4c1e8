"""The import pages: upload, check the columns, run, report, and refuse bad files cleanly."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from outreach.contacts.models import Contact, ContactList, Import, ListMember
from outreach.files.models import FileChunk, StoredFile
from outreach.queue import connection
from tests.contacts.test_pages import make_list, query
from tests.fixtures.app import csrf_token, run_jobs

MESSY = ("\ufeffE-mail;First Name;Mobile;Favorite Color;Notes\r\n"
         "ana@example.org;Ana;(202) 555-0101;teal;likes \"quotes\"\r\n"
         "BAD-EMAIL;Bo;;red;\r\n"
         "\r\n"
         ";Cy;202-555-0103;blue;\r\n"
         "ANA@example.org;Ana again;;green;\r\n"
         "dee@example.org;Dée;;;\r\n").encode("utf-8")


def upload(client, content: bytes | None, filename: str = "messy.csv", **fields):
    """Submit the upload form with a file."""
    data = {"csrf_token": csrf_token(client, "/imports/new"), "list": "new",
            "new_list": "Rally", "mode": "add", **fields}
    if content is not None:
        data["file"] = (io.BytesIO(content), filename)
    return client.post("/imports/new", data=data, content_type="multipart/form-data")


def confirm(client, import_id: int, choices: dict[int, str]):
    """Submit the mapping form."""
    data = {f"col-{i}": choice for i, choice in choices.items()}
    data["csrf_token"] = csrf_token(client, f"/imports/{import_id}")
    return client.post(f"/imports/{import_id}/mapping", data=data)


def test_import_flow_from_upload_to_report(app, auth, client):
    auth.login("organizer")
    form = client.get("/imports/new").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in form and "Add and update" in form
    response = upload(client, MESSY, consent=["email"], consent_source="Rally sign-up sheet")
    assert response.status_code == 302
    mapping_path = response.headers["Location"]
    assert mapping_path.endswith("/mapping")
    imp = query(app, sa.select(Import))[0][0]
    assert imp.status == "queued" and imp.phase == "mapping" and imp.consent == "email"
    assert connection(app).keys("rq:job:import-*") == []  # not queued yet

    page = client.get(mapping_path).get_data(as_text=True)
    assert "utf-8-sig" in page and "semicolon" in page
    for column in ("E-mail", "First Name", "Mobile", "Favorite Color", "Notes"):
        assert f"<strong>{column}</strong>" in page
    assert 'value="email" selected' in page and 'value="phone" selected' in page
    assert "Custom field “favorite_color”" in page
    assert "ana@example.org" in page and "BAD-EMAIL" in page and "Dée" in page
    assert "likes &#34;quotes&#34;" in page

    response = confirm(client, imp.id, {0: "email", 1: "first_name", 2: "phone", 3: "custom",
                                        4: "custom"})
    assert response.status_code == 302
    detail = response.headers["Location"]
    imp = query(app, sa.select(Import))[0][0]
    assert imp.column_map == {"email": 0, "first_name": 1, "phone": 2}
    assert imp.phase == "queued"
    running = client.get(detail).get_data(as_text=True)
    assert "<progress" in running and "import-progress.js" in running
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in running
    assert client.get(mapping_path).status_code == 302  # confirmed: no second mapping
    again = confirm(client, imp.id, {0: "email"})
    assert again.status_code == 302

    run_jobs(app)
    status = client.get(detail + "/status.json").get_json()
    assert status["status"] == "done" and status["finished"] is True
    assert (status["created"], status["rejected"]) == (3, 2)
    report = client.get(detail).get_data(as_text=True)
    assert "refresh" not in report and "import-progress.js" not in report
    assert "<strong>3</strong><span>created</span>" in report
    assert "<strong>2</strong><span>rejected</span>" in report
    assert "Download rejected rows (CSV)" in report

    download = client.get(detail + "/rejections.csv")
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["line", "reason"]
    assert [r[0] for r in rows[1:]] == ["3", "6"]
    assert "duplicate in file" in rows[2][1]

    contacts = {c.email or c.phone: c for c, in query(app, sa.select(Contact))}
    assert contacts["ana@example.org"].fields == {"favorite_color": "teal",
                                                  "notes": 'likes "quotes"'}
    assert contacts["ana@example.org"].email_consent == "granted"
    assert contacts["+12025550103"].first_name == "Cy"
    assert contacts["dee@example.org"].first_name == "Dée"
    rally = query(app, sa.select(ContactList.id).where(ContactList.name == "Rally"))[0][0]
    assert len(query(app, sa.select(ListMember).where(ListMember.list_id == rally))) == 3
    listing = client.get("/imports").get_data(as_text=True)
    assert "messy.csv" in listing and "Rally" in listing


def test_mapping_choices_are_checked_and_ignored_columns_recorded(app, auth, client):
    auth.login("organizer")
    import_id = int(upload(client, MESSY).headers["Location"].split("/")[-2])
    response = confirm(client, import_id, {0: "email", 1: "email", 2: "phone"})
    assert response.status_code == 422
    assert "Email is already column 1" in response.get_data(as_text=True)
    response = confirm(client, import_id, {i: "ignore" for i in range(5)})
    assert response.status_code == 422
    assert "map at least one column to Email or Phone" in response.get_data(as_text=True)
    assert query(app, sa.select(Import.phase, Import.column_map)) == [("mapping", None)]

    response = confirm(client, import_id, {0: "email", 1: "first_name", 2: "ignore",
                                           3: "custom", 4: "ignore"})
    assert response.status_code == 302
    assert query(app, sa.select(Import.column_map))[0][0] == {
        "email": 0, "first_name": 1, "_ignore": [2, 4]}


def test_an_unconfirmed_upload_can_be_discarded(app, auth, client):
    auth.login("organizer")
    import_id = int(upload(client, MESSY).headers["Location"].split("/")[-2])
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "have not been confirmed yet" in page
    response = client.post(f"/imports/{import_id}/discard",
                           data={"csrf_token": csrf_token(client, "/imports")})
    assert response.status_code == 302
    assert query(app, sa.select(Import)) == [] and query(app, sa.select(StoredFile)) == []
    assert query(app, sa.select(FileChunk)) == []


@pytest.mark.parametrize(("content", "filename", "message"), [
    (None, "", "Choose a CSV file to upload."),
    (b"", "empty.csv", "The file is empty"),
    (b"%PDF-1.7\n%binary", "people.pdf", "looks like a PDF document"),
    (b"PK\x03\x04rest-of-a-zip", "people.xlsx", "Excel workbook (.xlsx); save it as CSV"),
    (b"name,city\nAna,Paris\n", "people.csv", "No email or phone column found"),
])
def test_bad_uploads_show_the_form_again_and_store_nothing(app, auth, client, content,
                                                           filename, message):
    make_list(app, "Existing")
    auth.login("organizer")
    response = upload(client, content, filename)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in page and 'id="upload-error"' in page
    assert 'value="Rally"' in page  # what was filled in is kept
    assert query(app, sa.select(Import)) == [] and query(app, sa.select(StoredFile)) == []
    assert query(app, sa.select(ContactList.name)) == [("Existing",)]


def test_a_file_over_the_size_limit_is_refused_with_the_form(app, auth, client):
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    auth.login("organizer")
    big = b"email\n" + b"someone@example.org\n" * 120_000
    response = upload(client, big)
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "The file is too large; the limit is 2 MB." in page and "CSV file" in page
    assert query(app, sa.select(Import)) == [] and query(app, sa.select(StoredFile)) == []


def test_consent_needs_its_source(app, auth, client):
    auth.login("organizer")
    response = upload(client, MESSY, consent=["sms"], consent_source="")
    assert response.status_code == 422
    assert "Say where the consent comes from" in response.get_data(as_text=True)
    assert query(app, sa.select(Import)) == []
