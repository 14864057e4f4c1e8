"""The suppressions API: create (idempotent), list, lift (admin, with a reason), import."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts.models import Suppression, SuppressionRemoval
from tests.api.test_contacts_api import Tokens


@pytest.fixture
def auth_as(app) -> Tokens:
    return Tokens(app)


def suppress(client, headers, **body):
    return client.post("/api/v1/suppressions", headers=headers, json=body)


def test_create_is_normalized_and_idempotent(client, auth_as):
    org = auth_as("organizer")
    first = suppress(client, org, channel="email", address=" Gone@Example.ORG ",
                     reason="unsubscribed", note="Asked at the door")
    assert first.status_code == 201, first.json
    body = first.json
    assert set(body) >= {"channel", "address", "reason", "created_at"}
    assert (body["channel"], body["address"], body["reason"], body["note"]) == (
        "email", "gone@example.org", "unsubscribed", "Asked at the door")
    again = suppress(client, org, channel="email", address="gone@example.org",
                     reason="hard_bounce")
    assert again.status_code == 200
    assert again.json == body  # the first reason stays
    bad_reason = suppress(client, org, channel="email", address="gone@example.org",
                          reason="bored")
    assert bad_reason.status_code == 422 and "reason" in bad_reason.json["error"]["details"]

    sms = suppress(client, org, channel="sms", address="(202) 555-0143", reason="stop")
    assert sms.status_code == 201 and sms.json["address"] == "+12025550143"
    assert suppress(client, org, channel="sms", address="+1 202 555 0143").status_code == 200
    manual = suppress(client, org, channel="sms", address="2025550144")
    assert manual.json["reason"] == "manual"


@pytest.mark.parametrize("body,field", [
    ({"address": "a@example.org"}, "channel"),
    ({"channel": "fax", "address": "a@example.org"}, "channel"),
    ({"channel": "email"}, "address"),
    ({"channel": "email", "address": "not an email"}, "address"),
    ({"channel": "sms", "address": "a@example.org"}, "address"),
    ({"channel": "email", "address": "a@example.org", "reason": "bored"}, "reason"),
    ({"channel": "email", "address": 5}, "address"),
])
def test_invalid_suppression_is_422_naming_the_field(app, client, auth_as, body, field):
    response = suppress(client, auth_as("organizer"), **body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_list_filters_and_pagination(client, auth_as):
    org = auth_as("organizer")
    for i in range(5):
        suppress(client, org, channel="email", address=f"p{i}@example.org")
    suppress(client, org, channel="sms", address="2025550143", reason="stop")
    viewer = auth_as("viewer")
    first = client.get("/api/v1/suppressions?limit=4", headers=viewer).json
    second = client.get(f"/api/v1/suppressions?limit=4&cursor={first['next_cursor']}",
                        headers=viewer).json
    assert len(first["data"]) == 4 and len(second["data"]) == 2
    assert second["next_cursor"] is None
    assert len({s["id"] for s in first["data"] + second["data"]}) == 6

    sms = client.get("/api/v1/suppressions?channel=sms", headers=viewer).json["data"]
    assert [s["address"] for s in sms] == ["+12025550143"]
    found = client.get("/api/v1/suppressions?address=(202)%20555-0143", headers=viewer).json
    assert [s["reason"] for s in found["data"]] == ["stop"]
    found = client.get("/api/v1/suppressions?address=P3@EXAMPLE.org&channel=email",
                       headers=viewer).json
    assert [s["address"] for s in found["data"]] == ["p3@example.org"]
    assert client.get("/api/v1/suppressions?channel=fax",
                      headers=viewer).json["error"]["details"] == {
        "channel": "must be email or sms"}
    assert client.get("/api/v1/suppressions?limit=x", headers=viewer).status_code == 422
    assert client.get("/api/v1/suppressions?cursor=zz", headers=viewer).status_code == 422


def test_only_admins_lift_suppressions_with_a_reason(app, client, auth_as):
    org, admin = auth_as("organizer"), auth_as("admin")
    first = suppress(client, org, channel="email", address="a@example.org").json
    second = suppress(client, org, channel="email", address="b@example.org").json
    url = f"/api/v1/suppressions/{first['id']}"
    assert client.delete(url, headers=org, json={"reason": "x"}).status_code == 403
    assert client.delete(url, headers=auth_as("viewer"), json={"reason": "x"}).status_code == 403
    missing = client.delete(url, headers=admin)
    assert missing.status_code == 422 and "reason" in missing.json["error"]["details"]
    blank = client.delete(url, headers=admin, json={"reason": "  "})
    assert blank.status_code == 422
    assert client.delete(url, headers=admin,
                         json={"reason": "Typed in by mistake"}).status_code == 204
    assert client.delete(f"/api/v1/suppressions/{second['id']}?reason=Re-subscribed%20in%20writing",
                         headers=admin).status_code == 204
    assert client.delete(url, headers=admin, json={"reason": "again"}).status_code == 404
    with app.app_context():
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0
        removals = session.execute(sa.select(SuppressionRemoval.address,
                                             SuppressionRemoval.reason)
                                   .order_by(SuppressionRemoval.id)).all()
        assert removals == [("a@example.org", "Typed in by mistake"),
                            ("b@example.org", "Re-subscribed in writing")]


def import_file(client, headers, content: bytes, **form):
    return client.post("/api/v1/suppressions/import", headers=headers,
                       data={"file": (io.BytesIO(content), "s.csv"), **form})


def test_import_suppressions(app, client, auth_as):
    admin = auth_as("admin")
    suppress(client, admin, channel="email", address="already@example.org",
             reason="hard_bounce")
    content = ("\ufeffchannel;address;reason\n"
               "email;One@Example.org;unsubscribed\n"
               "sms;(202) 555-0143;stop\n"
               "email;already@example.org;spam_report\n"
               "email;one@example.org;\n"
               "fax;x@example.org;manual\n"
               "email;not-an-email;manual\n"
               "sms;2025550144;bored\n"
               "email;two@example.org;\n").encode()
    response = import_file(client, admin, content)
    assert response.status_code == 200, response.json
    report = response.json
    assert (report["rows_total"], report["added"], report["existing"], report["rejected"]) == (
        8, 3, 2, 3)
    assert [r["line"] for r in report["rejections"]] == [6, 7, 8]
    rows = client.get("/api/v1/suppressions?limit=10", headers=admin).json["data"]
    got = {(s["channel"], s["address"]): s["reason"] for s in rows}
    assert got == {("email", "already@example.org"): "hard_bounce",
                   ("email", "one@example.org"): "unsubscribed",
                   ("sms", "+12025550143"): "stop",
                   ("email", "two@example.org"): "imported"}


def test_import_with_channel_as_form_field(client, auth_as):
    admin = auth_as("admin")
    response = import_file(client, admin, b"Phone\n202-555-0150\n202 555 0151\nnope\n",
                           channel="sms", reason="landline")
    assert response.status_code == 200, response.json
    assert (response.json["added"], response.json["rejected"]) == (2, 1)
    rows = client.get("/api/v1/suppressions?channel=sms", headers=admin).json["data"]
    assert {(s["address"], s["reason"]) for s in rows} == {("+12025550150", "landline"),
                                                           ("+12025550151", "landline")}


@pytest.mark.parametrize("content,form,field", [
    (b"address\na@example.org\n", {}, "channel"),
    (b"channel,who\nemail,a@example.org\n", {}, "file"),
    (b"", {}, "file"),
    (b"PK\x03\x04" + b"\x00" * 50, {}, "file"),
    (b"address\na@example.org\n", {"channel": "fax"}, "channel"),
    (b"address\na@example.org\n", {"channel": "email", "reason": "bored"}, "reason"),
])
def test_bad_suppression_imports_are_422(app, client, auth_as, content, form, field):
    response = import_file(client, auth_as("admin"), content, **form)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_suppression_import_is_admin_only(client, auth_as):
    for role in ("organizer", "viewer"):
        response = import_file(client, auth_as(role), b"channel,address\nemail,a@example.org\n")
        assert response.status_code == 403


@pytest.mark.parametrize("method,path", [("get", "/api/v1/suppressions"),
                                         ("post", "/api/v1/suppressions"),
                                         ("delete", "/api/v1/suppressions/1"),
                                         ("post", "/api/v1/suppressions/import")])
def test_token_required(client, method, path):
    assert getattr(client, method)(path).status_code == 401


def test_viewer_cannot_suppress(client, auth_as):
    response = suppress(client, auth_as("viewer"), channel="email", address="a@example.org")
    assert response.status_code == 403
