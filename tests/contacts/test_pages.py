"""The contact and list pages: access rules, the contact's page and its forms, lists."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from outreach import db
from outreach.contacts import consent, segments, service
from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    Contact,
    ContactList,
    Import,
    ListMember,
    Tombstone,
)
from tests.fixtures.app import csrf_token, run_jobs

# Helpers, also used by the other test_*_pages modules.


def make_contact(app: Flask, **data: Any) -> int:
    """Create a contact through the service and return its id."""
    with app.app_context(), db.transaction() as session:
        return service.create_contact(session, data).id


def make_list(app: Flask, name: str) -> int:
    """Create a list and return its id."""
    with app.app_context(), db.transaction() as session:
        return service.create_list(session, name).id


def make_segment(app: Flask, name: str, rules: dict[str, Any]) -> int:
    """Save a segment and return its id."""
    with app.app_context(), db.transaction() as session:
        return segments.save_segment(session, name, rules).id


def make_suppression(app: Flask, channel: str, address: str, reason: str = "manual") -> int:
    """Suppress an address and return the suppression's id."""
    with app.app_context(), db.transaction() as session:
        return consent.suppress(session, Channel(channel), address, reason).id


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
         token_from: str = "/contacts", **kwargs: Any) -> Any:
    """POST a form with the session's CSRF token, as a browser would."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, token_from)},
                       **kwargs)


def query(app: Flask, statement: Any) -> list[Any]:
    """Run a read query in the app and return all rows."""
    with app.app_context():
        return list(db.session().execute(statement).all())


@pytest.fixture
def data(app):
    """One of everything the pages show."""
    list_id = make_list(app, "Volunteers")
    contact_id = make_contact(app, email="ana@example.org", first_name="Ana",
                              phone="+12025550123", lists=[list_id], tags=["vip"],
                              fields={"favorite_color": "teal"})
    segment_id = make_segment(app, "Teal", {"match": "all", "rules": [
        {"field": "custom:favorite_color", "op": "eq", "value": "teal"}]})
    suppression_id = make_suppression(app, "email", "gone@example.org", "hard_bounce")
    with app.app_context():
        with db.transaction() as session:
            imp = Import(filename="people.csv", status="done")
            session.add(imp)
            session.flush()
            import_id = imp.id
    return {"list": list_id, "contact": contact_id, "segment": segment_id,
            "suppression": suppression_id, "import": import_id}


def reads(data):
    """Every page a viewer may read."""
    return ["/contacts", f"/contacts/{data['contact']}", f"/contacts?list={data['list']}",
            "/contacts?tag=vip", f"/contacts?segment={data['segment']}", "/contacts?q=ana",
            "/lists", "/segments", f"/segments/{data['segment']}", "/imports",
            f"/imports/{data['import']}", f"/imports/{data['import']}/status.json",
            f"/imports/{data['import']}/rejections.csv", "/suppressions",
            "/suppressions?q=gone&channel=email"]


def writes(data):
    """Every form post, with the role it needs."""
    c, li, s, sup, imp = (data["contact"], data["list"], data["segment"], data["suppression"],
                          data["import"])
    return [
        ("/contacts/new", "organizer"), (f"/contacts/{c}", "organizer"),
        (f"/contacts/{c}/consent", "organizer"), (f"/contacts/{c}/erase", "organizer"),
        ("/contacts/export", "organizer"), ("/lists", "organizer"),
        (f"/lists/{li}/rename", "organizer"), (f"/lists/{li}/delete", "organizer"),
        ("/segments/new", "organizer"), (f"/segments/{s}", "organizer"),
        ("/segments/preview", "organizer"), ("/imports/new", "organizer"),
        (f"/imports/{imp}/mapping", "organizer"), (f"/imports/{imp}/discard", "organizer"),
        ("/suppressions", "organizer"), (f"/suppressions/{sup}/remove", "admin"),
        ("/suppressions/import", "admin"),
    ]


def test_every_page_renders_for_a_viewer(auth, client, data):
    auth.login("viewer")
    for path in reads(data):
        response = client.get(path)
        response.get_data()  # a streamed download holds its transaction until read
        assert response.status_code == 200, path
    page = client.get("/contacts").get_data(as_text=True)
    for label in ("Contacts", "Lists", "Segments", "Suppressions"):
        assert f">{label}</a>" in page
    assert ">Imports</a>" not in page  # organizers' menu entry


def test_anonymous_visitors_are_sent_to_sign_in(client, data):
    for path in reads(data) + ["/contacts/new", "/imports/new", "/segments/new"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]


def test_viewers_cannot_write(auth, client, data):
    auth.login("viewer")
    token = csrf_token(client, "/contacts")
    for path, _role in writes(data):
        response = client.post(path, data={"csrf_token": token, "name": "x", "reason": "x"})
        assert response.status_code == 403, path
    for path in ("/contacts/new", "/imports/new", "/segments/new",
                 f"/contacts/{data['contact']}/erase", f"/lists/{data['list']}/delete",
                 f"/suppressions/{data['suppression']}/remove", "/exports/1"):
        assert client.get(path).status_code == 403, path
    assert len(query(client.application, sa.select(Contact.id))) == 1


def test_organizers_cannot_do_admin_work(auth, client, data):
    auth.login("organizer")
    token = csrf_token(client, "/contacts")
    for path, role in writes(data):
        if role == "admin":
            response = client.post(path, data={"csrf_token": token, "reason": "because"})
            assert response.status_code == 403, path
    assert client.get("/suppressions/export.csv").status_code == 403


def test_a_post_without_the_csrf_token_is_refused(app, auth, client, data):
    auth.login("admin")
    response = client.post("/lists", data={"name": "No token"})
    assert response.status_code == 400
    response = client.post("/segments/preview", data={"field-0": "email", "op-0": "not_empty"})
    assert response.status_code == 400
    assert [r.name for r, in query(app, sa.select(ContactList))] == ["Volunteers"]


def test_contact_create_edit_and_erase(app, auth, client):
    list_id = make_list(app, "Donors")
    auth.login("organizer")
    assert "Add a contact" in client.get("/contacts/new").get_data(as_text=True)
    response = post(client, "/contacts/new", {
        "email": "Bo@Example.ORG", "phone": "(202) 555-0188", "first_name": "Bo",
        "tags": "donor, volunteer", "lists": [str(list_id)],
        "new_field_key": "shirt size", "new_field_value": "M"})
    assert response.status_code == 302
    contact_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert "Bo@example.org".lower() in page.lower() and "+12025550188" in page
    assert "#donor" in page and "#volunteer" in page and "Donors" in page
    assert "shirt size" in page and "America/New_York" in page

    response = post(client, f"/contacts/{contact_id}", {
        "email": "bo@example.org", "phone": "", "first_name": "Robert", "last_name": "Ng",
        "tags": "donor", "field_key": "shirt size", "field_value": "L"},
        follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Contact saved." in page and "Robert" in page and "+12025550188" not in page
    assert "#volunteer" not in page and ">L</dd>" in page
    assert query(app, sa.select(ListMember)) == []  # unticked

    confirm = client.get(f"/contacts/{contact_id}/erase").get_data(as_text=True)
    assert "cannot be undone" in confirm and "bo@example.org" in confirm
    response = post(client, f"/contacts/{contact_id}/erase", follow_redirects=True)
    assert "The contact was erased" in response.get_data(as_text=True)
    assert query(app, sa.select(Contact)) == []
    assert len(query(app, sa.select(Tombstone))) == 1
    assert client.get(f"/contacts/{contact_id}").status_code == 404
    again = post(client, "/contacts/new", {"email": "bo@example.org"})
    assert again.status_code == 422
    assert "erased on request" in again.get_data(as_text=True)


def test_contact_form_errors_appear_next_to_their_fields(app, auth, client):
    make_contact(app, email="taken@example.org")
    auth.login("organizer")
    response = post(client, "/contacts/new", {"email": "not-an-email", "first_name": "Cy",
                                              "timezone": "Mars/Olympus"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'id="email-error">invalid email', page)
    assert re.search(r'id="timezone-error">not an IANA time zone', page)
    assert 'value="Cy"' in page  # what was typed is kept
    response = post(client, "/contacts/new", {"email": "taken@example.org"})
    assert response.status_code == 422
    assert "already has this email" in response.get_data(as_text=True)
    assert len(query(app, sa.select(Contact))) == 1


def test_staff_record_and_revoke_consent_into_the_ledger(app, auth, client):
    contact_id = make_contact(app, email="di@example.org", phone="+12025550111")
    auth.login("organizer")
    path = f"/contacts/{contact_id}/consent"
    response = post(client, path, {"channel": "sms", "action": "grant", "evidence": ""},
                    follow_redirects=True)
    assert "Say how this person gave consent" in response.get_data(as_text=True)
    assert query(app, sa.select(ConsentEvent)) == []

    response = post(client, path, {"channel": "sms", "action": "grant",
                                   "evidence": "Signed the sheet at the rally"},
                    follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "SMS consent granted" in page
    assert "Signed the sheet at the rally" in page and "staff" in page
    response = post(client, path, {"channel": "sms", "action": "revoke"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "SMS consent revoked" in page
    history = page.split("Consent history", 1)[1]
    assert history.index("SMS: revoked") < history.index("SMS: granted")  # newest first
    events = query(app, sa.select(ConsentEvent.status, ConsentEvent.source,
                                  ConsentEvent.created_by_id).order_by(ConsentEvent.id))
    assert [(e.status, e.source) for e in events] == [("granted", "staff"), ("revoked", "staff")]
    assert events[0].created_by_id is not None
    again = post(client, path, {"channel": "sms", "action": "revoke"}, follow_redirects=True)
    assert "already revoked; nothing changed" in again.get_data(as_text=True)


def test_contact_data_is_escaped(app, auth, client):
    contact_id = make_contact(app, email="x@example.org", first_name="<script>alert(1)</script>",
                              fields={"note": '"><img src=x onerror=alert(2)>'})
    auth.login("viewer")
    for path in ("/contacts", f"/contacts/{contact_id}", "/contacts?q=script"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
    page = client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert "<img src=x" not in page


def test_contacts_search_filters_count_and_pages(app, auth, client):
    members = make_list(app, "Members")
    for i in range(55):
        make_contact(app, email=f"p{i:02d}@example.org", first_name=f"Person{i:02d}",
                     lists=[members] if i % 2 == 0 else [], tags=["odd"] if i % 2 else [])
    segment_id = make_segment(app, "Early", {"match": "all", "rules": [
        {"field": "first_name", "op": "starts_with", "value": "person0"}]})
    auth.login("viewer")
    page = client.get("/contacts").get_data(as_text=True)
    assert "55 contacts match." in page and "Person49" in page and "Person50" not in page
    next_link = re.search(r'href="([^"]+)" rel="next">Next page', page)
    assert next_link
    second = client.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Person50" in second and "Person54" in second and "Person00" not in second
    assert "rel=\"next\"" not in second and "First page" in second
    assert "28 contacts match this filter" in client.get(
        f"/contacts?list={members}").get_data(as_text=True)
    assert "27 contacts match this filter" in client.get(
        "/contacts?tag=odd").get_data(as_text=True)
    assert "10 contacts match this filter" in client.get(
        f"/contacts?segment={segment_id}").get_data(as_text=True)
    assert "1 contact matches this filter" in client.get(
        "/contacts?q=p07@").get_data(as_text=True)
    bad = client.get("/contacts?cursor=nonsense")
    assert bad.status_code == 400 and "Invalid cursor" in bad.get_data(as_text=True)


def test_a_filter_matching_very_many_is_counted_only_so_far(app, auth, client, monkeypatch):
    from outreach.contacts import service as contacts_service
    from outreach.contacts import views

    monkeypatch.setattr(views, "COUNT_LIMIT", 60)  # 1,000 in production
    monkeypatch.setattr(contacts_service, "ID_RANGE", 7)  # walk the ids in many ranges
    for i in range(70):
        make_contact(app, email=f"m{i:02d}@many.example.org", first_name=f"Many{i:02d}")
    make_contact(app, email="other@example.org", first_name="Other")
    auth.login("viewer")
    page = client.get("/contacts?q=many.example").get_data(as_text=True)
    assert "More than 60 contacts match this filter" in page
    assert "Many49" in page and "Many50" not in page  # the first page of the one scan
    next_link = re.search(r'href="([^"]+)" rel="next">Next page', page)
    second = client.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Many50" in second and "Many69" in second and "Other" not in second
    assert "More than 60 contacts match this filter" in second
    assert "71 contacts match." in client.get("/contacts").get_data(as_text=True)
    assert "1 contact matches this filter" in client.get(
        "/contacts?q=OTHER").get_data(as_text=True)  # names in any case


def test_contacts_page_shows_consent_and_suppression_badges(app, auth, client):
    make_contact(app, email="eve@example.org", phone="+12025550122")
    make_suppression(app, "email", "eve@example.org", "unsubscribed")
    auth.login("viewer")
    page = client.get("/contacts").get_data(as_text=True)
    assert "Email: none" in page and "SMS: none" in page
    assert "Email suppressed (unsubscribed)" in page


def test_lists_create_rename_and_delete(app, auth, client):
    auth.login("organizer")
    response = post(client, "/lists", {"name": "Phone bank", "description": "Callers"},
                    token_from="/lists", follow_redirects=True)
    assert "List “Phone bank” created." in response.get_data(as_text=True)
    list_id = query(app, sa.select(ContactList.id))[0][0]
    make_contact(app, email="m@example.org", lists=[list_id])
    page = client.get("/lists").get_data(as_text=True)
    assert f'href="/contacts?list={list_id}"' in page and "Callers" in page
    duplicate = post(client, "/lists", {"name": "Phone bank"}, token_from="/lists",
                     follow_redirects=True)
    assert "already exists" in duplicate.get_data(as_text=True)

    response = post(client, f"/lists/{list_id}/rename", {"name": "Callers 2026"},
                    token_from="/lists", follow_redirects=True)
    assert "List renamed to “Callers 2026”." in response.get_data(as_text=True)

    confirm = client.get(f"/lists/{list_id}/delete").get_data(as_text=True)
    assert "1 membership" in confirm and "contacts themselves" in confirm
    response = post(client, f"/lists/{list_id}/delete", token_from="/lists",
                    follow_redirects=True)
    assert "List “Callers 2026” deleted" in response.get_data(as_text=True)
    assert query(app, sa.select(ContactList)) == []
    assert len(query(app, sa.select(Contact))) == 1
    assert client.get(f"/lists/{list_id}/delete").status_code == 404


def test_export_button_exports_the_current_list(app, auth, client):
    list_id = make_list(app, "Export me")
    make_contact(app, email="in@example.org", lists=[list_id])
    make_contact(app, email="out@example.org")
    auth.login("organizer")
    page = client.get(f"/contacts?list={list_id}").get_data(as_text=True)
    assert "Export CSV" in page and "every contact of the list “Export me”" in page
    response = post(client, "/contacts/export", {"list": str(list_id)})
    assert response.status_code == 302
    export_path = response.headers["Location"]
    assert "refresh" in client.get(export_path).get_data(as_text=True)
    run_jobs(app)
    page = client.get(export_path).get_data(as_text=True)
    assert "Download CSV" in page and "refresh" not in page
    download = client.get(export_path + "/download")
    text = download.get_data(as_text=True)
    assert download.mimetype == "text/csv" and "attachment" in download.headers[
        "Content-Disposition"]
    assert "in@example.org" in text and "out@example.org" not in text


def test_unknown_records_are_404_pages(auth, client):
    auth.login("organizer")
    for path in ("/contacts/999", "/contacts/999/erase", "/lists/999/delete", "/segments/999",
                 "/imports/999", "/imports/999/mapping", "/imports/999/status.json",
                 "/exports/999"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert "No contact 999" in client.get("/contacts/999").get_data(as_text=True)
