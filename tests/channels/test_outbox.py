"""The outbox adapters store what would have been sent, and the Outbox page shows it."""

from __future__ import annotations

import sqlalchemy as sa

from outreach import db
from outreach.channels import email_channel, sms_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, Sms
from outreach.channels.models import OutboxEmail, OutboxSms
from tests.fixtures.app import csrf_token, run_jobs


def _batch() -> EmailBatch:
    return EmailBatch(
        from_email="team@example.org", from_name="The Team", subject="Hello -first-",
        html="<p>Dear -first-, <a href='-link-'>act now</a></p>", text="Dear -first-, -link-",
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        recipients=[
            EmailRecipient("ana@example.org", "Ana", {"-first-": "Ana", "-link-": "https://x/1"},
                           {"List-Unsubscribe": "<https://x/u/aaa>"}),
            EmailRecipient("bo@example.org", "", {"-first-": "Bo", "-link-": "https://x/2"},
                           {"List-Unsubscribe": "<https://x/u/bbb>"}),
        ])


def test_outbox_email_stores_each_personalized_message(app):
    with app.app_context():
        results = email_channel().send_batch(_batch())
        rows = db.session().scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).all()
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert [r.provider_id for r in results] == [row.provider_id for row in rows]
    assert rows[0].subject == "Hello Ana" and rows[1].subject == "Hello Bo"
    assert rows[0].to_email == "Ana <ana@example.org>"
    assert rows[0].from_email == "The Team <team@example.org>"
    assert "https://x/2" in rows[1].html and rows[1].text == "Dear Bo, https://x/2"
    assert rows[1].headers == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                               "List-Unsubscribe": "<https://x/u/bbb>"}


def test_outbox_sms_stores_the_text_with_its_segments(app):
    with app.app_context():
        result = sms_channel().send(Sms(to="+12025550123", body="Hi 👋 " * 25, from_number="+1555"))
        row = db.session().scalars(sa.select(OutboxSms)).one()
    assert result.outcome is Outcome.ACCEPTED and result.provider_id == row.provider_id
    assert row.to_number == "+12025550123" and row.segments == result.segments == 3


def test_outbox_page_shows_email_html_text_and_headers(app, auth, client):
    with app.app_context():
        email_channel().send_batch(_batch())
        sms_channel().send(Sms(to="+12025550123", body="Reply STOP to opt out"))
        email_id = db.session().scalars(sa.select(OutboxEmail.id)).first()
    auth.login("viewer")
    index = client.get("/outbox/").get_data(as_text=True)
    assert "Hello Ana" in index and "Reply STOP to opt out" in index and "+12025550123" in index
    page = client.get(f"/outbox/emails/{email_id}").get_data(as_text=True)
    assert "List-Unsubscribe" in page and "&lt;https://x/u/aaa&gt;" in page
    assert "Dear Ana, https://x/1" in page
    assert f"/outbox/emails/{email_id}/html" in page
    frame = client.get(f"/outbox/emails/{email_id}/html")
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    assert "<p>Dear Ana, <a href='https://x/1'>act now</a></p>" in frame.get_data(as_text=True)


def test_outbox_page_escapes_stored_content(app, auth, client):
    with app.app_context():
        sms_channel().send(Sms(to="+12025550123", body="<script>alert(1)</script>"))
    auth.login("viewer")
    page = client.get("/outbox/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_test_message_form_queues_a_job_that_a_worker_sends(app, auth, client):
    auth.login("organizer")
    token = csrf_token(client, "/outbox/")
    response = client.post("/outbox/test", data={"channel": "email", "to": "me@example.org",
                                                 "subject": "Check", "body": "It works",
                                                 "csrf_token": token}, follow_redirects=True)
    assert b"Test message queued" in response.data
    run_jobs(app, fork=True)  # a real forking RQ worker runs the job in the app context
    page = client.get("/outbox/").get_data(as_text=True)
    assert "me@example.org" in page and "Check" in page


def test_viewer_cannot_send_test_messages(auth, client):
    auth.login("viewer")
    token = csrf_token(client, "/outbox/")
    response = client.post("/outbox/test", data={"channel": "email", "to": "me@example.org",
                                                 "body": "x", "csrf_token": token})
    assert response.status_code == 403
