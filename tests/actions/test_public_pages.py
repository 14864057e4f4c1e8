"""Public pages: framing allowed only for action pages, any script and direction, no JS."""

from __future__ import annotations

import re

import sqlalchemy as sa

from outreach import db
from outreach.contacts.models import Contact
from tests.actions.helpers import hidden_fields, make_page, post

ARABIC_TITLE = "اكتب إلى نائب الرئيس"
ARABIC_NAME = "فاطمة"


def _frame_ancestors(response) -> str:
    match = re.search(r"frame-ancestors ([^;]+)", response.headers["Content-Security-Policy"])
    assert match, response.headers["Content-Security-Policy"]
    return match.group(1).strip()


def test_action_pages_may_be_framed_by_other_sites(app, client):
    make_page(app)
    form = client.get("/a/join-us?embed=1")
    assert _frame_ancestors(form) == "*"
    assert "X-Frame-Options" not in form.headers
    assert form.headers["X-Content-Type-Options"] == "nosniff"  # the app's other headers stay
    body = form.get_data(as_text=True)
    assert 'class="action-public action-embedded"' in body
    assert '<input type="hidden" name="embed" value="1">' in body
    data = {**hidden_fields(client, "/a/join-us?embed=1"), "first_name": "A",
            "email": "a@example.org"}
    redirect = client.post("/a/join-us", data=data)
    assert redirect.status_code == 303 and "embed=1" in redirect.headers["Location"]
    assert "X-Frame-Options" not in redirect.headers
    thanks = client.get(redirect.headers["Location"])
    assert _frame_ancestors(thanks) == "*" and "X-Frame-Options" not in thanks.headers


def test_other_pages_stay_unframeable(app, client, auth):
    make_page(app)
    for response in (client.get("/login"), client.get("/a/nope")):
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert _frame_ancestors(response) == "'self'"
    auth.login("viewer")
    staff = client.get("/actions")
    assert staff.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert _frame_ancestors(staff) == "'self'"


def test_framing_can_be_limited_to_the_organizations_sites(app, client):
    app.config["ACTION_FRAME_ANCESTORS"] = "https://www.example.org"
    make_page(app)
    assert _frame_ancestors(client.get("/a/join-us")) == "https://www.example.org"


def test_a_right_to_left_page_in_arabic(app, client):
    make_page(app, slug="vp-ar", title=ARABIC_TITLE, language="ar",
              intro="نريد أنهاراً نظيفة", email_consent_text="نعم، راسلوني")
    response = client.get("/a/vp-ar")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    body = response.get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in body
    assert f"<h1>{ARABIC_TITLE}</h1>" in body and "نعم، راسلوني" in body
    done = post(client, "vp-ar", first_name=ARABIC_NAME, email="f@example.org",
                email_consent="1")
    assert done.status_code == 200 and '<html lang="ar" dir="rtl">' in done.get_data(
        as_text=True)
    with app.app_context():
        person = db.session().scalar(sa.select(Contact))
        assert person is not None and person.first_name == ARABIC_NAME


def test_left_to_right_languages_and_scripts(app, client):
    make_page(app, slug="pt", title="Participe", language="pt-BR")
    make_page(app, slug="az", title="Qoşul", language="az-Arab")
    assert '<html lang="pt-BR" dir="ltr">' in client.get("/a/pt").get_data(as_text=True)
    assert '<html lang="az-Arab" dir="rtl">' in client.get("/a/az").get_data(as_text=True)


def test_the_page_works_without_javascript_on_a_phone(app, client):
    make_page(app, kind="petition", petition_goal=100)
    body = client.get("/a/join-us").get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    assert re.search(r'<form method="post" action="/a/join-us"', body)
    assert '<button type="submit" class="primary">Sign the petition</button>' in body
    # Every visible input has a label tied to it.
    for input_id in re.findall(r'<input id="([^"]+)"', body):
        assert f'<label for="{input_id}">' in body, input_id
    assert "<strong data-count>0</strong>" in body  # the count is there before any script
    assert "<script>" not in body  # no inline script (the CSP forbids it anyway)
    done = post(client, "join-us", first_name="A", email="a@example.org")
    assert done.status_code == 200 and "Thank you!" in done.get_data(as_text=True)


def test_a_redirect_replaces_the_thank_you_page(app, client):
    make_page(app, redirect_url="https://www.example.org/thanks")
    form = client.get("/a/join-us")
    assert "form-action 'self' https://www.example.org" in form.headers[
        "Content-Security-Policy"]
    response = post(client, "join-us", follow=False, first_name="A", email="a@example.org")
    assert response.status_code == 303
    assert response.headers["Location"] == "https://www.example.org/thanks"
