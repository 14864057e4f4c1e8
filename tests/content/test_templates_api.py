"""The templates API: contract fields, 422s naming the part and line, versions, preview, test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.channels.models import OutboxEmail
from tests.fixtures.app import make_token, run_jobs
from tests.fixtures.blasts import EMAIL_HTML, audience, blast_state, launch_blast
from tests.fixtures.contacts import contacts_by_email

CONTRACT = {"id", "name", "channel", "subject", "html", "text", "body", "version"}


@pytest.fixture
def api(app, client):
    """Call the API as an organizer (or another role with `as_role`)."""
    tokens: dict[str, str] = {}

    def call(method, path, json=None, role="organizer"):
        if role not in tokens:
            tokens[role] = make_token(app, role)
        return client.open(f"/api/v1{path}", method=method, json=json,
                           headers={"Authorization": f"Bearer {tokens[role]}"})

    return call


def _email(**extra):
    return {"name": "Alert", "channel": "email", "subject": "{{ first_name }}, act now",
            "html": EMAIL_HTML, **extra}


def test_create_email_and_sms_templates(api):
    email = api("POST", "/templates", _email(from_name="HQ", reply_to="hq@example.org"))
    assert email.status_code == 201
    body = email.json
    assert CONTRACT <= set(body)
    assert body["channel"] == "email" and body["version"] == 1
    assert body["subject"] == "{{ first_name }}, act now" and "Write the VP" in body["text"]
    assert body["from_name"] == "HQ" and body["reply_to"] == "hq@example.org"
    sms = api("POST", "/templates", {"name": "Text", "channel": "sms",
                                     "body": "Hi {{ first_name }}", "append_stop": False})
    assert sms.status_code == 201
    assert sms.json["body"] == "Hi {{ first_name }}" and sms.json["append_stop"] is False
    assert api("GET", f"/templates/{body['id']}", role="viewer").json == body
    listing = api("GET", "/templates", role="viewer").json
    assert [t["name"] for t in listing["data"]] == ["Text", "Alert"]
    assert listing["next_cursor"] is None
    assert [t["name"] for t in api("GET", "/templates?channel=sms").json["data"]] == ["Text"]


def test_templates_are_listed_a_page_at_a_time(api):
    for n in range(3):
        api("POST", "/templates", _email(name=f"T{n}"))
    first = api("GET", "/templates?limit=2").json
    assert [t["name"] for t in first["data"]] == ["T2", "T1"] and first["next_cursor"]
    second = api("GET", f"/templates?limit=2&cursor={first['next_cursor']}").json
    assert [t["name"] for t in second["data"]] == ["T0"] and second["next_cursor"] is None
    assert api("GET", "/templates?limit=0").status_code == 422
    assert api("GET", "/templates?cursor=junk").status_code == 422


@pytest.mark.parametrize(("body", "field", "expected"), [
    (_email(html="<p>Hi</p>\n\n<p>{{ frist_name }}</p>"), "html", "line 3: unknown field"),
    (_email(subject="{% if first_name %}Hi{% endif %}"), "subject", "line 1: blocks like"),
    (_email(subject=""), "subject", "required"),
    (_email(subject=5), "subject", "must be a string"),
    ({"name": "Text", "channel": "sms", "body": ""}, "body", "required"),
    ({"name": "Text", "channel": "sms", "body": "Hi", "append_stop": "no"}, "append_stop",
     "true or false"),
    ({"name": "Text", "channel": "fax", "body": "Hi"}, "channel", "email or sms"),
    (_email(name=""), "name", "required"),
])
def test_invalid_templates_get_422_naming_the_field(api, body, field, expected):
    response = api("POST", "/templates", body)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid" and expected in error["details"][field]


def test_a_duplicate_name_is_a_conflict(api):
    api("POST", "/templates", _email())
    assert api("POST", "/templates", _email()).status_code == 409


def test_put_and_patch_save_new_versions_and_a_launched_blast_keeps_its_version(app, api):
    list_id = audience(app, 2)
    created = api("POST", "/templates", _email()).json
    v1 = created["version_id"]
    blast_id = launch_blast(app, created["id"], [list_id])
    patched = api("PATCH", f"/templates/{created['id']}", {"subject": "Second"})
    assert patched.status_code == 200
    assert patched.json["version"] == 2 and patched.json["subject"] == "Second"
    assert patched.json["html"] == created["html"]  # left out: kept
    put = api("PUT", f"/templates/{created['id']}", {"subject": "Third", "text": "Plain"})
    assert put.status_code == 200 and put.json["version"] == 3 and put.json["text"] == "Plain"
    assert blast_state(app, blast_id)["template_version_id"] == v1
    versions = api("GET", f"/templates/{created['id']}/versions", role="viewer").json
    assert [v["version"] for v in versions["data"]] == [3, 2, 1]
    assert versions["data"][2]["subject"] == "{{ first_name }}, act now"
    one = api("GET", f"/templates/{created['id']}/versions/2").json
    assert one["subject"] == "Second"
    assert api("GET", f"/templates/{created['id']}/versions/7").status_code == 404
    bad = api("PATCH", f"/templates/{created['id']}", {"html": "{{ first_name }"})
    assert bad.status_code == 422 and "line 1" in bad.json["error"]["details"]["html"]
    other = api("PATCH", f"/templates/{created['id']}", {"channel": "sms"})
    assert other.status_code == 422 and "channel" in other.json["error"]["details"]
    assert api("PATCH", "/templates/999999", {"subject": "x"}).status_code == 404


def test_delete_is_refused_while_a_blast_uses_the_template(app, api):
    list_id = audience(app, 1)
    used = api("POST", "/templates", _email()).json
    launch_blast(app, used["id"], [list_id])
    response = api("DELETE", f"/templates/{used['id']}")
    assert response.status_code == 409 and "blast" in response.json["error"]["message"]
    free = api("POST", "/templates", _email(name="Unused")).json
    api("PATCH", f"/templates/{free['id']}", {"subject": "v2"})
    assert api("DELETE", f"/templates/{free['id']}").status_code == 204
    assert api("GET", f"/templates/{free['id']}").status_code == 404


def test_preview_renders_for_a_real_contact(app, api):
    audience(app, 2)
    contact = contacts_by_email(app)["p1@example.org"]
    email = api("POST", "/templates", _email()).json
    preview = api("POST", f"/templates/{email['id']}/preview", {"contact_id": contact.id},
                  role="viewer")
    assert preview.status_code == 200
    assert preview.json["subject"] == "Person1, act now"
    assert "Hi Person1," in preview.json["html"]
    assert "https://act.example.org/call" in preview.json["html"]  # untracked link
    sample = api("POST", f"/templates/{email['id']}/preview")
    assert sample.status_code == 200 and sample.json["subject"] == "Alex, act now"
    sms = api("POST", "/templates", {"name": "Text", "channel": "sms",
                                     "body": "Hi {{ first_name }} 👋"}).json
    text = api("POST", f"/templates/{sms['id']}/preview", {"contact_id": contact.id}).json
    assert text["body"] == "Hi Person1 👋\nReply STOP to opt out"
    assert text["encoding"] == "UCS-2" and text["segments"] == 1
    missing = api("POST", f"/templates/{email['id']}/preview", {"contact_id": 999999})
    assert missing.status_code == 422 and "contact_id" in missing.json["error"]["details"]
    assert api("POST", "/templates/999999/preview", {}).status_code == 404


def test_send_a_test_through_the_api(app, api):
    audience(app, 1)
    contact = contacts_by_email(app)["p0@example.org"]
    email = api("POST", "/templates", _email()).json
    response = api("POST", f"/templates/{email['id']}/test",
                   {"to": "Me@Example.org", "contact_id": contact.id})
    assert response.status_code == 202 and response.json["job_id"]
    assert api("POST", f"/templates/{email['id']}/test", {"to": "nope"}).status_code == 422
    run_jobs(app)
    with app.app_context():
        sent = db.session().scalars(sa.select(OutboxEmail)).all()
    assert [(e.to_email, e.subject) for e in sent] == [("Me@example.org",
                                                        "[TEST] Person0, act now")]


def test_roles_and_tokens(app, api, client):
    email = api("POST", "/templates", _email()).json
    path = f"/templates/{email['id']}"
    for method, target, body in [("POST", "/templates", _email(name="Other")),
                                 ("PUT", path, {"subject": "x"}),
                                 ("PATCH", path, {"subject": "x"}),
                                 ("DELETE", path, None),
                                 ("POST", f"{path}/test", {"to": "me@example.org"})]:
        assert api(method, target, body, role="viewer").status_code == 403, (method, target)
    assert api("GET", path, role="viewer").status_code == 200
    assert client.get("/api/v1/templates").status_code == 401
    assert client.post("/api/v1/templates", json=_email()).status_code == 401


def test_every_template_and_blast_route_is_documented(app, client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/v1/templates", "/api/v1/blasts")):
            continue
        path = rule.rule.removeprefix("/api/v1")
        for kind in ("int:", "string:"):
            path = path.replace(f"<{kind}", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths.get(path, {}), f"{method} {path} undocumented"
