"""The send pipeline through the outbox: audience, exactly once, pause/resume/cancel, windows."""

from __future__ import annotations

import re

import sqlalchemy as sa

from outreach import db
from outreach.blasts import pipeline, service
from outreach.blasts.models import Link, Message
from outreach.channels.models import OutboxEmail, OutboxSms
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentStatus, Contact
from outreach.queue import enqueue
from outreach.tokens import read_token
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import (
    audience,
    blast_state,
    count,
    email_template,
    launch_blast,
    send_all,
    sms_template,
)


def _revoke(app, email, channel=Channel.EMAIL):
    with app.app_context(), db.transaction() as session:
        contact = session.scalar(sa.select(Contact).where(Contact.email == email))
        consent.record_consent(session, contact, channel, ConsentStatus.REVOKED, "test")


def test_email_blast_reaches_every_consenting_contact_once(app):
    list_id = audience(app, 6)
    _revoke(app, "p1@example.org")
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.EMAIL, "p2@example.org", "hard_bounce")
    template_id = email_template(app)
    blast_id = launch_blast(app, template_id, [list_id])
    state = send_all(app, blast_id)
    assert state["status"] == "done"
    assert state["counts"]["total"] == 4 and state["counts"]["sent"] == 4
    with app.app_context():
        emails = db.session().scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).all()
    assert sorted(e.to_email.split("<")[-1].rstrip(">") for e in emails) == [
        "p0@example.org", "p3@example.org", "p4@example.org", "p5@example.org"]
    first = emails[0]
    assert first.subject == "Person0, act now"
    assert "<p style=\"color: #333;\">Hi Person0,</p>" in first.html  # CSS inlined at save
    unsubscribe = first.headers["List-Unsubscribe"]
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = re.search(r"/u/([^>]+)>", unsubscribe).group(1)
    with app.app_context():
        message_id = read_token(token)
        assert db.session().get(Message, message_id).address == "p0@example.org"
    assert f"/u/{token}" in first.html and f"/u/{token}" in first.text  # visible footer
    assert f"/o/{token}.gif" in first.html
    assert f"/c/{token}/0" in first.html and f"/c/{token}/1" in first.html
    assert "act.example.org" not in first.html  # every link goes through tracking
    assert count(app, Link, Link.blast_id == blast_id) == 2


def test_a_duplicated_or_retried_batch_sends_nothing_twice(app):
    list_id = audience(app, 5)
    blast_id = launch_blast(app, email_template(app), [list_id])
    run_jobs(app)
    with app.app_context():
        first, last = pipeline.batch_ranges(blast_id)[0]
        for _ in range(3):
            enqueue("email", pipeline.send_batch, blast_id, first, last)
    run_jobs(app)
    assert count(app, OutboxEmail) == 5
    assert blast_state(app, blast_id)["counts"]["sent"] == 5


def test_audience_count_before_launch(app):
    list_id = audience(app, 4)
    _revoke(app, "p0@example.org")
    with app.app_context(), db.transaction() as session:
        blast = service.save_blast(session, {"name": "B", "template_id": email_template(app),
                                             "list_ids": [list_id]})
        assert service.preview_audience(session, blast) == 3


def test_pause_resume_and_cancel(app):
    list_id = audience(app, 3)
    template_id = email_template(app)
    blast_id = launch_blast(app, template_id, [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        with db.transaction() as session:
            service.pause(session, blast_id)
    run_jobs(app)  # the queued batches find the blast paused and send nothing
    assert count(app, OutboxEmail) == 0
    assert blast_state(app, blast_id)["status"] == "paused"
    with app.app_context():
        with db.transaction() as session:
            service.resume(session, blast_id)
        pipeline.reconcile()  # resume re-enqueues what is left
    state = send_all(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 3
    other = launch_blast(app, email_template(app, "Other"), [list_id], name="Second")
    with app.app_context():
        pipeline.prepare_blast(other)
        with db.transaction() as session:
            service.cancel(session, other)
    state = send_all(app, other)
    assert state["status"] == "canceled" and state["counts"]["canceled"] == 3
    assert count(app, OutboxEmail) == 3


def test_someone_who_opts_out_while_the_blast_sends_gets_nothing(app):
    list_id = audience(app, 4)
    blast_id = launch_blast(app, email_template(app), [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)  # messages written, batches queued
    _revoke(app, "p1@example.org")
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.EMAIL, "p2@example.org", "unsubscribed")
    state = send_all(app, blast_id)
    assert state["counts"]["sent"] == 2 and state["counts"]["canceled"] == 2
    assert state["status"] == "done"


def test_the_claim_cancels_rows_whose_consent_went_and_counts_them(app):
    list_id = audience(app, 4)
    blast_id = launch_blast(app, email_template(app), [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        first, last = pipeline.batch_ranges(blast_id)[0]
    _revoke(app, "p1@example.org")
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.EMAIL, "p2@example.org", "unsubscribed")
    with app.app_context():
        rows = pipeline.claim(blast_id, first, last, "email")
        assert sorted(r.address for r in rows) == ["p0@example.org", "p3@example.org"]
        assert rows.canceled == 2 and all(r.attempts == 1 for r in rows)
        assert pipeline.claim(blast_id, first, last, "email") == []  # nothing left to take
        found = db.session().execute(sa.select(Message.address, Message.status, Message.error,
                                               Message.attempts, Message.claimed_at)
                                     .where(Message.blast_id == blast_id)).all()
    by_address = {address: rest for address, *rest in found}
    for address in ("p1@example.org", "p2@example.org"):
        status, error, attempts, claimed_at = by_address[address]
        assert (status, error, attempts, claimed_at) == ("canceled", pipeline.OPTED_OUT, 0, None)
    assert by_address["p0@example.org"][0] == "sending"
    assert by_address["p0@example.org"][3] is not None


def test_sms_blast_through_the_outbox_with_stop_text(app):
    app.config.update(SMS_QUIET_START="00:00", SMS_QUIET_END="23:59", SMS_QUIET_END_FL_OK="23:59")
    list_id = audience(app, 3)
    blast_id = launch_blast(app, sms_template(app), [list_id])
    state = send_all(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 3
    with app.app_context():
        texts = db.session().scalars(sa.select(OutboxSms).order_by(OutboxSms.to_number)).all()
    assert [t.to_number for t in texts] == ["+12125550000", "+12125550001", "+12125550002"]
    assert texts[0].body == "Hi Person0! Call today.\nReply STOP to opt out"


def test_messages_wait_for_their_window(app):
    list_id = audience(app, 2)
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(hours=6))
    # Everyone in this audience is in New York: a window six hours from now, local time.
    from zoneinfo import ZoneInfo

    local = later.astimezone(ZoneInfo("America/New_York"))
    start = local.strftime("%H:%M")
    end = (local + timedelta(minutes=30)).strftime("%H:%M")
    if end < start:
        start, end = "00:00", "00:30"
    blast_id = launch_blast(app, email_template(app), [list_id],
                            window={"start": start, "end": end})
    state = send_all(app, blast_id)
    assert state["status"] == "sending" and state["counts"]["queued"] == 2
    assert count(app, OutboxEmail) == 0
    with app.app_context():
        waiting = db.session().scalars(sa.select(Message.not_before)).all()
    assert all(w is not None and w > datetime.now(UTC) for w in waiting)
