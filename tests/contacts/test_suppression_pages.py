"""The suppression pages: search, add (organizers), remove, import and export (admins)."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from outreach.contacts.models import Suppression, SuppressionRemoval
from tests.contacts.test_pages import make_suppression, post, query
from tests.fixtures.app import csrf_token


def test_organizers_add_and_everyone_searches(app, auth, client):
    make_suppression(app, "sms", "+12025550199", "stop")
    auth.login("organizer")
    response = post(client, "/suppressions", {"channel": "email", "address": " Zed@Example.ORG ",
                                              "reason": "manual", "note": "asked by phone"},
                    token_from="/suppressions", follow_redirects=True)
    assert "zed@example.org is suppressed for email." in response.get_data(as_text=True)
    again = post(client, "/suppressions", {"channel": "email", "address": "zed@example.org",
                                           "reason": "spam_report"},
                 token_from="/suppressions", follow_redirects=True)
    assert "was already suppressed (manual)" in again.get_data(as_text=True)
    bad = post(client, "/suppressions", {"channel": "sms", "address": "12"},
               token_from="/suppressions", follow_redirects=True)
    assert "Invalid address" in bad.get_data(as_text=True)
    assert len(query(app, sa.select(Suppression))) == 2

    auth.logout()
    auth.login("viewer")
    page = client.get("/suppressions").get_data(as_text=True)
    assert "zed@example.org" in page and "+12025550199" in page and "asked by phone" in page
    assert "Suppress an address" not in page and "Remove…" not in page
    page = client.get("/suppressions?q=ZED").get_data(as_text=True)
    assert "zed@example.org" in page and "+12025550199" not in page
    page = client.get("/suppressions?q=(202) 555-0199").get_data(as_text=True)
    assert "+12025550199" in page and "zed@example.org" not in page
    page = client.get("/suppressions?channel=sms").get_data(as_text=True)
    assert "+12025550199" in page and "zed@example.org" not in page


def test_only_admins_remove_and_they_must_say_why(app, auth, client):
    suppression_id = make_suppression(app, "email", "lift@example.org", "unsubscribed")
    path = f"/suppressions/{suppression_id}/remove"
    auth.login("organizer")
    assert client.get(path).status_code == 403
    assert post(client, path, {"reason": "asked"}).status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/suppressions").get_data(as_text=True)
    assert f'href="{path}"' in page
    confirm = client.get(path).get_data(as_text=True)
    assert "lift@example.org" in confirm and "Why is it removed?" in confirm
    response = post(client, path, {"reason": "  "}, token_from=path)
    assert response.status_code == 422 and "A reason is required" in response.get_data(
        as_text=True)
    assert len(query(app, sa.select(Suppression))) == 1
    response = post(client, path, {"reason": "Resubscribed in writing"}, token_from=path,
                    follow_redirects=True)
    assert "Suppression of lift@example.org removed" in response.get_data(as_text=True)
    assert query(app, sa.select(Suppression)) == []
    removal = query(app, sa.select(SuppressionRemoval))[0][0]
    assert (removal.address, removal.original_reason, removal.reason) == (
        "lift@example.org", "unsubscribed", "Resubscribed in writing")
    assert removal.removed_by_id is not None
    assert client.get(path).status_code == 404


def _import(client, content: bytes, **fields):
    data = {"csrf_token": csrf_token(client, "/suppressions"), "reason": "imported", **fields,
            "file": (io.BytesIO(content), "suppressions.csv")}
    return client.post("/suppressions/import", data=data, content_type="multipart/form-data")


def test_admins_import_suppressions_in_bulk(app, auth, client):
    make_suppression(app, "email", "old@example.org", "hard_bounce")
    auth.login("admin")
    content = (b"channel,address,reason\n"
               b"email,new@example.org,unsubscribed\n"
               b"email,OLD@example.org,spam_report\n"
               b"sms,(202) 555-0142,stop\n"
               b"sms,12,stop\n"
               b"fax,someone,manual\n"
               b"email,new@example.org,\n"
               b"email,other@example.org,\n")
    response = _import(client, content)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>3</strong><span>added</span>" in page
    assert "<strong>2</strong><span>already suppressed</span>" in page
    assert "<strong>2</strong><span>rejected</span>" in page
    assert "unknown channel &#39;fax&#39;" in page
    rows = {(s.channel, s.address): s.reason for s, in query(app, sa.select(Suppression))}
    assert rows == {("email", "old@example.org"): "hard_bounce",
                    ("email", "new@example.org"): "unsubscribed",
                    ("sms", "+12025550142"): "stop",
                    ("email", "other@example.org"): "imported"}

    response = _import(client, b"phone\n202-555-0177\n", channel="sms", reason="landline")
    assert "<strong>1</strong><span>added</span>" in response.get_data(as_text=True)
    assert ("sms", "+12025550177") in {(s.channel, s.address)
                                       for s, in query(app, sa.select(Suppression))}
    response = _import(client, b"address\nx@example.org\n", channel="")
    assert response.status_code == 302
    assert "choose a channel" in client.get("/suppressions").get_data(as_text=True)
    response = _import(client, b"%PDF-1.7 binary", channel="email")
    assert response.status_code == 302
    assert "looks like a PDF document" in client.get("/suppressions").get_data(as_text=True)
    assert len(query(app, sa.select(Suppression))) == 5


def test_organizers_cannot_import_or_export_suppressions(app, auth, client):
    auth.login("organizer")
    assert _import(client, b"channel,address\nemail,a@example.org\n").status_code == 403
    assert client.get("/suppressions/export.csv").status_code == 403
    assert query(app, sa.select(Suppression)) == []


def test_admins_export_suppressions(app, auth, client):
    make_suppression(app, "email", "=cmd@example.org", "manual")
    make_suppression(app, "sms", "+12025550166", "stop")
    auth.login("admin")
    response = client.get("/suppressions/export.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["channel", "address", "reason", "note", "created_at"]
    assert [r[:3] for r in rows[1:]] == [["email", "'=cmd@example.org", "manual"],
                                         ["sms", "+12025550166", "stop"]]
    sms_only = client.get("/suppressions/export.csv?channel=sms").get_data(as_text=True)
    assert "cmd@example.org" not in sms_only and "+12025550166" in sms_only


def test_a_streamed_download_gives_its_connection_back(app, auth, client):
    """The body of a streamed CSV runs after the request's teardown: the session it reads with
    is closed when the stream ends, not left idle in a transaction until garbage collection
    (its locks on the tables blocked others meanwhile)."""
    import gc

    make_suppression(app, "email", "one@example.org", "manual")
    auth.login("admin")
    pool = app.extensions["db_engine"].pool
    gc.disable()  # only the stream's end may give the connection back, not a collection
    try:
        for path in ("/suppressions/export.csv", "/suppressions/export.csv?channel=email"):
            assert "one@example.org" in client.get(path).get_data(as_text=True)
            assert pool.checkedout() == 0, path
    finally:
        gc.enable()
