"""Unsubscribe links: a page that changes nothing on GET, RFC 8058 one-click, resubscribe."""

from __future__ import annotations

import re

import sqlalchemy as sa

from outreach import db
from outreach.channels.models import OutboxEmail
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentEvent, SuppressionRemoval
from outreach.tokens import make_token
from outreach.tracking.models import Event
from tests.fixtures.blasts import count, email_template, launch_blast, send_all
from tests.tracking import contact, events, rollup_totals, sent_email_blast, suppression

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ONE_CLICK = "List-Unsubscribe=One-Click"


def page_csrf(client, token):
    """Open the unsubscribe page and return the CSRF token of its form."""
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    return CSRF_RE.search(page.get_data(as_text=True)).group(1)


def still_subscribed(app, email):
    """True when the contact has email consent and no suppression."""
    return (contact(app, email=email).email_consent == "granted"
            and suppression(app, "email", email) is None)


def test_the_page_shows_a_masked_address_and_changes_nothing(app, client):
    _, _, tokens = sent_email_blast(app)
    page = client.get(f"/u/{tokens['p0@example.org']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "p•@example.org" in html and "p0@example.org" not in html
    assert 'method="post"' in html and 'name="csrf_token"' in html and ">Unsubscribe<" in html
    assert "Sign out" not in html and "Outbox" not in html  # the public layout, no staff nav
    client.head(f"/u/{tokens['p0@example.org']}")
    assert still_subscribed(app, "p0@example.org") and events(app) == []


def test_one_click_post_unsubscribes_without_cookies_or_redirect(app):
    blast_id, _, tokens = sent_email_blast(app)
    token = tokens["p1@example.org"]
    mail_client = app.test_client(use_cookies=False)
    for _ in range(2):  # idempotent: a repeated POST changes nothing more
        response = mail_client.post(f"/u/{token}", data=ONE_CLICK,
                                    content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200 and response.mimetype == "text/plain"
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
        assert "unsubscribed" in response.get_data(as_text=True)
    person = contact(app, email="p1@example.org")
    assert person.email_consent == "revoked"
    assert suppression(app, "email", "p1@example.org") == "unsubscribed"
    with app.app_context():
        ledger = consent.history(db.session(), person.id)
    assert ledger[0].source == "unsubscribe" and ledger[0].evidence["method"] == "one-click"
    assert ledger[0].evidence["blast_id"] == blast_id
    assert len(events(app, Event.kind == "unsubscribe")) == 1
    assert rollup_totals(app, blast_id) == {("unsubscribe", -1, False): (1, 1)}
    assert still_subscribed(app, "p0@example.org")


def test_one_click_as_multipart_form_data(app):
    _, _, tokens = sent_email_blast(app)
    response = app.test_client(use_cookies=False).post(
        f"/u/{tokens['p2@example.org']}", data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data")
    assert response.status_code == 200
    assert suppression(app, "email", "p2@example.org") == "unsubscribed"


def test_the_page_form_needs_its_csrf_token(app, client):
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    csrf = page_csrf(client, token)
    assert client.post(f"/u/{token}", data={}).status_code == 400
    assert client.post(f"/u/{token}", data={"csrf_token": "forged"}).status_code == 400
    assert client.post(f"/u/{token}", data="List-Unsubscribe=Something-Else",
                       content_type="application/x-www-form-urlencoded").status_code == 400
    assert still_subscribed(app, "p0@example.org") and events(app) == []
    response = client.post(f"/u/{token}", data={"csrf_token": csrf})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "You are unsubscribed" in html
    assert ">Resubscribe<" in html
    assert suppression(app, "email", "p0@example.org") == "unsubscribed"
    with app.app_context():
        entry = consent.history(db.session(), contact(app, email="p0@example.org").id)[0]
    assert entry.status == "revoked" and entry.evidence["method"] == "page"
    again = client.get(f"/u/{token}").get_data(as_text=True)  # the page now says so
    assert "You are unsubscribed" in again and ">Unsubscribe<" not in again


def test_forged_tokens_change_nothing(app):
    _, _, tokens = sent_email_blast(app)
    with app.app_context():
        unknown = make_token(424242)
    client = app.test_client(use_cookies=False)
    for bad in (tokens["p0@example.org"][:-1] + "x", unknown, "nope"):
        assert client.get(f"/u/{bad}").status_code == 404
        assert client.post(f"/u/{bad}", data=ONE_CLICK,
                           content_type="application/x-www-form-urlencoded").status_code == 404
    assert all(still_subscribed(app, f"p{i}@example.org") for i in range(3))


def test_resubscribe_lifts_only_an_unsubscribe(app, client):
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    client.post(f"/u/{token}", data={"csrf_token": page_csrf(client, token)})
    csrf = page_csrf(client, token)
    assert client.post(f"/u/{token}/resubscribe").status_code == 400  # CSRF-checked
    response = client.post(f"/u/{token}/resubscribe", data={"csrf_token": csrf})
    assert response.status_code == 200 and "You are subscribed" in response.get_data(as_text=True)
    assert still_subscribed(app, "p0@example.org")
    with app.app_context():
        session = db.session()
        removal = session.scalars(sa.select(SuppressionRemoval)).one()
        grant = session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert removal.reason == "resubscribed by the supporter"
    assert removal.original_reason == "unsubscribed" and removal.address == "p0@example.org"
    assert grant.status == "granted" and grant.source == "form" and grant.evidence["ip"]
    # A hard bounce is not lifted by a click.
    other = tokens["p1@example.org"]
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.EMAIL, "p1@example.org", "hard_bounce")
    response = client.post(f"/u/{other}/resubscribe", data={"csrf_token": page_csrf(client, other)})
    assert "could not resubscribe" in response.get_data(as_text=True)
    assert suppression(app, "email", "p1@example.org") == "hard_bounce"


def test_after_unsubscribing_the_next_blast_skips_the_person(app):
    _, list_id, tokens = sent_email_blast(app)
    app.test_client(use_cookies=False).post(f"/u/{tokens['p2@example.org']}", data=ONE_CLICK,
                                            content_type="application/x-www-form-urlencoded")
    before = count(app, OutboxEmail)
    state = send_all(app, launch_blast(app, email_template(app, name="Again"), [list_id]))
    assert state["counts"]["total"] == 2
    assert count(app, OutboxEmail) == before + 2
    assert count(app, OutboxEmail, OutboxEmail.to_email.contains("p2@example.org")) == 1
