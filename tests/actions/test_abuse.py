"""Abuse and bad input: honeypot, rate limits, lengths, escaping, form tokens, origins."""

from __future__ import annotations

import sqlalchemy as sa

from outreach import db
from outreach.actions.models import Submission
from outreach.contacts.models import Contact
from tests.actions.helpers import hidden_fields, make_page, post


def _count(app, model) -> int:
    with app.app_context():
        return int(db.session().scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_a_filled_honeypot_drops_the_submission_but_shows_the_thank_you(app, client):
    make_page(app)
    response = post(client, "join-us", first_name="Bot", email="bot@example.org",
                    website="http://spam.example")
    assert response.status_code == 200
    assert "Thanks for joining!" in response.get_data(as_text=True)
    assert _count(app, Contact) == 0 and _count(app, Submission) == 0


def test_the_honeypot_is_hidden_from_people(app, client):
    make_page(app)
    page = client.get("/a/join-us").get_data(as_text=True)
    assert '<div class="hp-field" aria-hidden="true">' in page
    assert 'name="website" type="text" tabindex="-1" autocomplete="off"' in page


def test_per_ip_rate_limit(app, client):
    app.config["ACTION_RATE_LIMIT_IP"] = 2
    make_page(app)
    for n in range(2):
        assert post(client, "join-us", first_name="A", email=f"a{n}@example.org"
                    ).status_code == 200
    blocked = post(client, "join-us", first_name="A", email="a9@example.org", follow=False)
    assert blocked.status_code == 429
    assert "Too many submissions" in blocked.get_data(as_text=True)
    assert _count(app, Contact) == 2


def test_per_address_rate_limit(app, client):
    app.config["ACTION_RATE_LIMIT_ADDRESS"] = 1
    make_page(app)
    assert post(client, "join-us", first_name="A", email="same@example.org").status_code == 200
    again = post(client, "join-us", first_name="A", email="Same@Example.org", follow=False)
    assert again.status_code == 429
    assert post(client, "join-us", first_name="B", email="other@example.org"
                ).status_code == 200
    assert _count(app, Submission) == 2


def test_field_lengths_are_limited_with_form_errors(app, client):
    make_page(app)
    response = post(client, "join-us", first_name="x" * 201, email="ok@example.org",
                    follow=False)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Please use at most 200 characters." in body
    assert 'aria-invalid="true" aria-describedby="err-first_name"' in body
    bad_email = post(client, "join-us", first_name="A", email="not-an-email", follow=False)
    assert bad_email.status_code == 422
    assert "Please enter a valid email address." in bad_email.get_data(as_text=True)
    assert _count(app, Submission) == 0


def test_supporter_input_is_never_rendered_as_html(app, client):
    make_page(app)
    response = post(client, "join-us", first_name="<script>alert(1)</script>",
                    email="bad email", follow=False)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_forms_need_their_signed_token(app, client):
    make_page(app)
    fields = {"first_name": "A", "email": "a@example.org"}
    missing = client.post("/a/join-us", data=fields)
    assert missing.status_code == 400
    assert "This form expired" in missing.get_data(as_text=True)
    forged = client.post("/a/join-us", data={**fields, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert _count(app, Submission) == 0


def test_cross_site_posts_are_refused(app, client):
    make_page(app)
    data = {**hidden_fields(client, "/a/join-us"), "first_name": "A", "email": "a@example.org"}
    response = client.post("/a/join-us", data=data, headers={"Origin": "https://evil.example"})
    assert response.status_code == 400
    same = client.post("/a/join-us", data=data, headers={"Origin": "http://localhost"})
    assert same.status_code == 303


def test_a_changed_consent_text_asks_the_supporter_again(app, client):
    page_id = make_page(app)
    data = {**hidden_fields(client, "/a/join-us"), "first_name": "A", "email": "a@example.org",
            "email_consent": "1"}
    from outreach.actions.models import ActionPage

    with app.app_context(), db.transaction() as session:
        session.get(ActionPage, page_id).email_consent_text = "New wording"
    response = client.post("/a/join-us", data=data)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "consent wording on this page changed" in body and "New wording" in body
    assert 'value="a@example.org"' in body  # what they typed is kept
    assert _count(app, Submission) == 0
