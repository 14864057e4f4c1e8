"""Sign-up pages end to end: contact, list, consent evidence, autoresponses, double opt-in."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa

from outreach import db
from outreach.actions.models import Submission
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentStatus, Contact, ListMember, Suppression
from outreach.content.service import save_template
from outreach.tokens import read_token
from tests.actions.helpers import (
    EMAIL_CONSENT,
    SMS_CONSENT,
    consent_events,
    contact,
    emails_to,
    make_page,
    post,
    texts_to,
)
from tests.fixtures.app import run_jobs
from tests.fixtures.contacts import make_contact


def _templates(app) -> tuple[int, int]:
    with app.app_context(), db.transaction() as session:
        email = save_template(session, {"channel": "email", "name": "Welcome",
                                        "subject": "Welcome, {{ first_name }}",
                                        "html": "<p>Hi {{ first_name }} & friends</p>"}).id
        sms = save_template(session, {"channel": "sms", "name": "Welcome SMS",
                                      "body": "Hi {{ first_name }}, thanks!"}).id
    return email, sms


def _list(app, name: str = "Supporters") -> int:
    from outreach.contacts.service import create_list

    with app.app_context(), db.transaction() as session:
        return create_list(session, name).id


def test_signup_creates_contact_with_exact_consent_evidence_and_autoresponds(app, client):
    list_id = _list(app)
    email_tpl, sms_tpl = _templates(app)
    make_page(app, list_id=list_id, autoresponse_email_template_id=email_tpl,
              autoresponse_sms_template_id=sms_tpl)
    before = datetime.now().astimezone()
    response = post(client, "join-us", first_name="Ana", email="Ana@Example.ORG",
                    phone="(212) 555-0100", email_consent="1", sms_consent="1")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Thanks for joining!" in page
    person = contact(app, "ana@example.org")
    assert person is not None and person.first_name == "Ana" and person.phone == "+12125550100"
    assert person.email_consent == "granted" and person.sms_consent == "granted"
    # Share links carry the supporter's own referral code.
    code = re.search(r"/a/join-us\?ref=([\w-]+)", page)
    assert code
    with app.app_context():
        assert read_token(code.group(1), purpose="referral") == person.id
    events = consent_events(app, person.id)
    assert [(e.channel, e.status, e.source) for e in events] == [
        ("email", "granted", "form"), ("sms", "granted", "form")]
    for event, text in zip(events, (EMAIL_CONSENT, SMS_CONSENT), strict=True):
        assert set(event.evidence) == {"text", "page", "ip", "time"}
        assert event.evidence["text"] == text
        assert event.evidence["page"] == "join-us"
        assert event.evidence["ip"] == "127.0.0.1"
        assert datetime.fromisoformat(event.evidence["time"]) >= before
    with app.app_context():
        assert db.session().get(ListMember, (list_id, person.id)) is not None
    run_jobs(app)
    [welcome] = emails_to(app, "ana@example.org")
    assert welcome.subject == "Welcome, Ana"
    assert "Hi Ana &amp; friends" in welcome.html
    [text] = texts_to(app, "+12125550100")
    assert text.body.startswith("Hi Ana, thanks!")
    run_jobs(app)  # a repeated job sends nothing more
    assert len(emails_to(app, "ana@example.org")) == 1


def test_unchecked_boxes_record_no_consent_and_send_no_autoresponse(app, client):
    email_tpl, _ = _templates(app)
    make_page(app, autoresponse_email_template_id=email_tpl)
    post(client, "join-us", first_name="Bo", email="bo@example.org")
    person = contact(app, "bo@example.org")
    assert person is not None and person.email_consent == "none"
    assert consent_events(app, person.id) == []
    run_jobs(app)
    assert emails_to(app, "bo@example.org") == []


def test_revoked_consent_is_not_granted_back_and_suppression_stays(app, client):
    email_tpl, _ = _templates(app)
    make_page(app, autoresponse_email_template_id=email_tpl)
    cid = make_contact(app, email="gone@example.org", first_name="Gone")
    with app.app_context(), db.transaction() as session:
        row = session.get(Contact, cid)
        consent.revoke_and_suppress(session, row, Channel.EMAIL, "unsubscribed", "unsubscribe")
    response = post(client, "join-us", first_name="Gone", email="gone@example.org",
                    email_consent="1")
    assert response.status_code == 200
    person = contact(app, "gone@example.org")
    assert person is not None and person.email_consent == ConsentStatus.REVOKED.value
    assert [e.status for e in consent_events(app, cid)] == ["revoked"]
    with app.app_context():
        assert db.session().scalar(sa.select(Suppression.reason).where(
            Suppression.address == "gone@example.org")) == "unsubscribed"
    run_jobs(app)
    assert emails_to(app, "gone@example.org") == []


def test_existing_contact_is_found_and_only_blanks_are_filled(app, client):
    make_page(app)
    cid = make_contact(app, email="kim@example.org", first_name="Kim")
    post(client, "join-us", first_name="Mallory", email="KIM@example.org",
         postal_code="10001")
    person = contact(app, "kim@example.org")
    assert person is not None and person.id == cid
    assert person.first_name == "Kim"  # a public form never rewrites details
    assert person.postal_code == "10001"
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(Contact)) == 1


def test_double_opt_in_grants_email_consent_only_when_the_link_is_confirmed(app, client):
    email_tpl, _ = _templates(app)
    make_page(app, double_opt_in=True, autoresponse_email_template_id=email_tpl)
    response = post(client, "join-us", first_name="Dee", email="dee@example.org",
                    email_consent="1")
    assert "confirm your subscription" in response.get_data(as_text=True)
    person = contact(app, "dee@example.org")
    assert person is not None and person.email_consent == "none"
    assert consent_events(app, person.id) == []
    run_jobs(app)
    [optin] = emails_to(app, "dee@example.org")  # no autoresponse before confirmation
    link = re.search(r"https?://[^/\s]+(/a/join-us/confirm/[\w.\-]+)", optin.text)
    assert link, optin.text
    assert EMAIL_CONSENT in optin.text
    page = client.get(link.group(1))
    assert page.status_code == 200 and "Yes, send me emails" in page.get_data(as_text=True)
    assert contact(app, "dee@example.org").email_consent == "none"  # a GET grants nothing
    done = client.post(link.group(1))
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    [event] = consent_events(app, person.id)
    assert event.status == "granted" and event.source == "form"
    assert event.evidence["text"] == EMAIL_CONSENT
    assert event.evidence["page"] == "join-us" and event.evidence["ip"] == "127.0.0.1"
    assert event.evidence["double_opt_in"] is True and event.evidence["confirmed_at"]
    run_jobs(app)
    assert [e.subject for e in emails_to(app, "dee@example.org")][1:] == ["Welcome, Dee"]
    client.post(link.group(1))  # confirming twice records nothing more
    assert len(consent_events(app, person.id)) == 1
    assert client.get(link.group(1)[:-3] + "xyz").status_code == 404


def test_double_opt_in_never_mails_a_revoked_address(app, client):
    make_page(app, double_opt_in=True)
    cid = make_contact(app, email="no@example.org")
    with app.app_context(), db.transaction() as session:
        consent.revoke_and_suppress(session, session.get(Contact, cid), Channel.EMAIL,
                                    "unsubscribed", "unsubscribe")
    post(client, "join-us", first_name="No", email="no@example.org", email_consent="1")
    run_jobs(app)
    assert emails_to(app, "no@example.org") == []


def test_sms_consent_needs_a_phone_and_custom_answers_are_kept(app, client):
    make_page(app, fields={"first_name": {"mode": "required"}, "email": {"mode": "required"},
                           "questions": [{"key": "why", "label": "Why do you care?",
                                          "required": True}]})
    response = post(client, "join-us", first_name="Lu", email="lu@example.org",
                    sms_consent="1", follow=False)
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)
    post(client, "join-us", first_name="Lu", email="lu@example.org", sms_consent="1",
         q_why="Clean rivers")
    person = contact(app, "lu@example.org")
    assert person is not None and person.sms_consent == "none"
    assert person.fields == {"why": "Clean rivers"}
    with app.app_context():
        row = db.session().scalar(sa.select(Submission))
        assert row is not None and row.data["answers"] == {"why": "Clean rivers"}
