"""The template pages: create and edit (versions), errors by part and line, preview, send a test."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Blast
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.content.models import MessageTemplate, TemplateVersion
from tests.fixtures.app import csrf_token, run_jobs
from tests.fixtures.blasts import (
    EMAIL_HTML,
    audience,
    count,
    email_template,
    launch_blast,
    sms_template,
)
from tests.fixtures.contacts import contacts_by_email


def _post(client, path, data, form_page=None):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page or path), **data})


def _email_form(**overrides):
    return {"name": "Rally alert", "subject": "{{ first_name | default('Friend') }}, rally today",
            "html": EMAIL_HTML, "text": "", "from_name": "Rally HQ",
            "reply_to": "team@example.org", **overrides}


def _template(app, template_id):
    with app.app_context():
        session = db.session()
        row = session.get(MessageTemplate, template_id)
        versions = session.scalars(sa.select(TemplateVersion).where(
            TemplateVersion.template_id == template_id).order_by(TemplateVersion.version)).all()
        session.expunge_all()
        return row, versions


def _error(page: str, field: str) -> str:
    match = re.search(rf'<span class="field-error" id="{field}-error">([^<]*)</span>', page)
    assert match, f"no error shown for {field}"
    return match.group(1)


def test_organizer_creates_an_email_template_from_the_page(app, auth, client):
    auth.login("organizer")
    page = client.get("/templates/new?channel=email")
    assert page.status_code == 200
    assert 'name="subject"' in page.text and "Generated from the HTML when left empty" in page.text
    response = _post(client, "/templates/new", {"channel": "email", **_email_form()},
                     "/templates/new?channel=email")
    assert response.status_code == 302
    template_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    row, versions = _template(app, template_id)
    assert row.channel == "email" and row.version == 1 and len(versions) == 1
    assert versions[0].from_name == "Rally HQ" and versions[0].reply_to == "team@example.org"
    assert "Write the VP" in versions[0].text  # generated from the HTML
    listing = client.get("/templates").text
    assert "Rally alert" in listing and "v1" in listing and "Email" in listing


def test_sms_template_page_has_the_live_counter_and_the_stop_checkbox(app, auth, client):
    auth.login("organizer")
    page = client.get("/templates/new?channel=sms").text
    assert 'data-sms-counter="t-body-counter"' in page and 'id="t-body-counter"' in page
    assert "js/sms-counter.js" in page and "Reply STOP to opt out" in page
    assert 'name="subject"' not in page
    response = _post(client, "/templates/new",
                     {"channel": "sms", "name": "Call text", "body": "Hi {{ first_name }}!"},
                     "/templates/new?channel=sms")
    assert response.status_code == 302
    template_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    row, versions = _template(app, template_id)
    assert row.channel == "sms" and versions[0].body == "Hi {{ first_name }}!"
    assert versions[0].append_stop is False  # the box was left unchecked
    edit = client.get(f"/templates/{template_id}").text
    assert "GSM-7 · 1 segment · 20 characters" in edit  # the counter's text before any typing


@pytest.mark.parametrize(("override", "field", "expected"), [
    ({"html": "<p>Hello</p>\n<p>{{ frist_name }}</p>"}, "html",
     "line 2: unknown field &#39;frist_name&#39;"),
    ({"text": "Hi\n\n{% if first_name %}friend{% endif %}"}, "text",
     "line 3: blocks like {% ... %} are not supported"),
    ({"subject": ""}, "subject", "required"),
])
def test_page_shows_the_error_next_to_the_part(app, auth, client, override, field, expected):
    auth.login("organizer")
    response = _post(client, "/templates/new", {"channel": "email", **_email_form(**override)},
                     "/templates/new?channel=email")
    assert response.status_code == 422
    assert expected in _error(response.text, field)
    assert 'aria-invalid="true"' in response.text
    assert "Rally HQ" in response.text  # what was typed is kept
    assert count(app, MessageTemplate) == 0


def test_duplicate_name_is_shown_on_the_name_field(app, auth, client):
    email_template(app, name="Alert")
    auth.login("organizer")
    response = _post(client, "/templates/new",
                     {"channel": "email", **_email_form(name="Alert")},
                     "/templates/new?channel=email")
    assert response.status_code == 422
    assert "already exists" in _error(response.text, "name")


def test_editing_saves_version_2_and_a_launched_blast_keeps_version_1(app, auth, client):
    list_id = audience(app, 2)
    template_id = email_template(app)
    blast_id = launch_blast(app, template_id, [list_id])
    auth.login("organizer")
    page = client.get(f"/templates/{template_id}").text
    assert "Save as version 2" in page
    response = _post(client, f"/templates/{template_id}",
                     _email_form(name="Alert", subject="Version two"))
    assert response.status_code == 302
    row, versions = _template(app, template_id)
    assert row.version == 2 and [v.subject for v in versions] == [
        "{{ first_name }}, act now", "Version two"]
    with app.app_context():
        blast = db.session().get(Blast, blast_id)
        assert blast.template_version_id == versions[0].id
    listing = client.get(f"/templates/{template_id}/versions").text
    assert "v1" in listing and "v2" in listing and "current" in listing
    one = client.get(f"/templates/{template_id}/versions/1")
    assert one.status_code == 200 and "{{ first_name }}, act now" in one.text
    raw = client.get(f"/templates/{template_id}/versions/1/html")
    assert raw.headers["Content-Security-Policy"].startswith("sandbox")
    assert raw.text == versions[0].html
    assert client.get(f"/templates/{template_id}/versions/9").status_code == 404
    blast_page = client.get(f"/blasts/{blast_id}").text
    assert f"/templates/{template_id}/versions/1" in blast_page


def test_edit_errors_keep_the_version(app, auth, client):
    template_id = email_template(app)
    auth.login("organizer")
    response = _post(client, f"/templates/{template_id}",
                     _email_form(name="Alert", html="<p>{{ nope }}</p>"))
    assert response.status_code == 422
    assert "line 1: unknown field" in _error(response.text, "html")
    assert _template(app, template_id)[0].version == 1


def test_preview_renders_for_a_real_contact_found_by_email(app, auth, client):
    audience(app, 3)
    template_id = email_template(app)
    contact = contacts_by_email(app)["p1@example.org"]
    auth.login("viewer")
    default = client.get(f"/templates/{template_id}/preview").text
    assert "Alex, act now" in default and "sample contact" in default
    page = client.get(f"/templates/{template_id}/preview?email=p1@example")
    assert page.status_code == 200
    assert "Person1, act now" in page.text and "p1@example.org" in page.text
    assert f"/preview/html?contact_id={contact.id}" in page.text
    assert "Send a test" not in page.text  # viewers cannot send
    frame = client.get(f"/templates/{template_id}/preview/html?contact_id={contact.id}")
    assert frame.headers["Content-Security-Policy"].startswith("sandbox")
    assert "Hi Person1," in frame.text and "/u/preview" in frame.text
    assert "/c/" not in frame.text and "/o/" not in frame.text  # untracked
    several = client.get(f"/templates/{template_id}/preview?email=example.org").text
    assert "p0@example.org" in several and "p2@example.org" in several
    assert client.get(f"/templates/{template_id}/preview?contact_id=999999").status_code == 404


def test_sms_preview_shows_the_body_and_its_segments(app, auth, client):
    audience(app, 1)
    template_id = sms_template(app)
    contact = contacts_by_email(app)["p0@example.org"]
    auth.login("viewer")
    page = client.get(f"/templates/{template_id}/preview?contact_id={contact.id}").text
    assert "Hi Person0! Call today.\nReply STOP to opt out" in page
    assert "GSM-7 · 1 segment" in page


def test_send_a_test_puts_a_test_email_in_the_outbox(app, auth, client):
    audience(app, 2)
    template_id = email_template(app)
    contact = contacts_by_email(app)["p1@example.org"]
    auth.login("organizer")
    preview = f"/templates/{template_id}/preview?contact_id={contact.id}"
    response = _post(client, f"/templates/{template_id}/test",
                     {"to": "me@example.org", "contact_id": str(contact.id)}, preview)
    assert response.status_code == 302
    assert "Test queued" in client.get(response.headers["Location"]).text
    run_jobs(app)
    with app.app_context():
        emails = db.session().scalars(sa.select(OutboxEmail)).all()
    assert len(emails) == 1
    assert emails[0].to_email == "me@example.org"
    assert emails[0].subject == "[TEST] Person1, act now"
    assert "Hi Person1," in emails[0].html and emails[0].headers["X-Outreach-Test"] == "1"


def test_send_a_test_refuses_a_bad_address(app, auth, client):
    template_id = email_template(app)
    auth.login("organizer")
    response = _post(client, f"/templates/{template_id}/test", {"to": "not an address"},
                     f"/templates/{template_id}/preview")
    page = client.get(response.headers["Location"]).text
    assert "Invalid email address" in page


def test_send_a_test_text(app, auth, client):
    template_id = sms_template(app)
    auth.login("organizer")
    _post(client, f"/templates/{template_id}/test", {"to": "(212) 555-0199"},
          f"/templates/{template_id}/preview")
    run_jobs(app)
    with app.app_context():
        texts = db.session().scalars(sa.select(OutboxSms)).all()
    assert [(t.to_number, t.body) for t in texts] == [
        ("+12125550199", "Hi Alex! Call today.\nReply STOP to opt out")]


def test_viewer_reads_but_every_write_is_refused(app, auth, client):
    template_id = email_template(app)
    auth.login("viewer")
    assert client.get("/templates").status_code == 200
    page = client.get(f"/templates/{template_id}")
    assert page.status_code == 200
    assert '<fieldset class="plain stack-fields" disabled>' in page.text
    assert "Save as version" not in page.text
    token = csrf_token(client, "/templates")
    assert client.get("/templates/new").status_code == 403
    for path, data in [("/templates/new", {"channel": "email", **_email_form()}),
                       (f"/templates/{template_id}", _email_form(name="Alert")),
                       (f"/templates/{template_id}/test", {"to": "me@example.org"})]:
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403
    assert _template(app, template_id)[0].version == 1


def test_signed_out_visitors_are_sent_to_login(client):
    response = client.get("/templates")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_nav_links_to_templates_and_blasts(auth, client):
    auth.login("viewer")
    page = client.get("/").text
    assert 'href="/templates"' in page and 'href="/blasts"' in page
