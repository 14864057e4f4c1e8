"""SendGrid's signed Event Webhook: authenticity, idempotency, forward-only status, opt-outs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Message
from outreach.contacts.models import ConsentEvent
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.queue import get_queue
from outreach.tracking.models import Event
from outreach.tracking.service import references_checked_once
from tests.fixtures.app import run_jobs
from tests.tracking import (
    contact,
    events,
    message,
    post_sendgrid,
    rollup_totals,
    sent_email_blast,
    serve,
    suppression,
    use_sendgrid,
)


@pytest.fixture
def emu() -> Iterator[SendGridEmulator]:
    """A running SendGrid emulator."""
    with SendGridEmulator() as emulator:
        yield emulator


@pytest.fixture
def blast(app, emu) -> int:
    """An email blast to p0..p2 sent through the SendGrid emulator."""
    use_sendgrid(app, emu)
    blast_id, _, _ = sent_email_blast(app)
    assert len(emu.recipients) == 3
    return blast_id


def statuses(app, blast_id):
    """{address: status} of the blast's messages."""
    with app.app_context():
        rows = db.session().execute(sa.select(Message.address, Message.status)
                                    .where(Message.blast_id == blast_id))
        return dict(rows.all())


def queued_jobs(app):
    """Jobs waiting on the events queue."""
    with app.app_context():
        return get_queue("events").count


def test_signed_batches_over_real_http_are_ingested(app, emu, blast):
    with serve(app) as base:
        assert emu.post_events(f"{base}/webhooks/sendgrid", emu.build_events("delivered")) == 200
    assert statuses(app, blast) == dict.fromkeys(statuses(app, blast), "sent")  # queued only
    run_jobs(app)
    assert set(statuses(app, blast).values()) == {"delivered"}
    assert message(app, address="p0@example.org").delivered_at is not None
    assert rollup_totals(app, blast) == {("delivered", -1, False): (3, 3)}


def test_forged_or_missing_signatures_are_refused(app, client, emu, blast):
    body = json.dumps(emu.build_events("bounce")).encode()
    impostor = SendGridEmulator()
    forged, _ = impostor.sign(body)
    assert post_sendgrid(client, emu, body, signature=forged).status_code == 403
    assert post_sendgrid(client, emu, body, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert post_sendgrid(client, emu, body, signature="%%%").status_code == 403
    assert client.post("/webhooks/sendgrid", data=body,
                       content_type="application/json").status_code == 403
    signed, timestamp = emu.sign(body)
    tampered = body.replace(b"bounce", b"delivered", 1)
    assert client.post("/webhooks/sendgrid", data=tampered, content_type="application/json",
                       headers={"X-Twilio-Email-Event-Webhook-Signature": signed,
                                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
                       ).status_code == 403
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = None
    assert post_sendgrid(client, emu, body).status_code == 403
    assert queued_jobs(app) == 0
    run_jobs(app)
    assert set(statuses(app, blast).values()) == {"sent"} and events(app) == []
    assert suppression(app, "email", "p0@example.org") is None


def test_malformed_or_oversized_bodies(app, client, emu, blast):
    assert post_sendgrid(client, emu, b"[{not json").status_code == 400
    assert post_sendgrid(client, emu, b"\xff\xfe").status_code in (400, 403)
    assert post_sendgrid(client, emu, {"event": "delivered"}).status_code == 400
    huge = json.dumps([{"event": "deferred", "pad": "x" * (5 * 1024 * 1024)}]).encode()
    assert post_sendgrid(client, emu, huge).status_code == 413
    assert queued_jobs(app) == 0


def test_replayed_batches_count_once(app, client, emu, blast):
    batch = emu.build_events("delivered") + emu.build_events("open", ["p0@example.org"])
    for _ in range(3):
        assert post_sendgrid(client, emu, batch).status_code == 200
    run_jobs(app)
    assert len(events(app)) == 4
    assert rollup_totals(app, blast) == {("delivered", -1, False): (3, 3),
                                         ("open", -1, False): (1, 1)}


def test_status_only_moves_forward(app, client, emu, blast):
    post_sendgrid(client, emu, emu.build_events("delivered", ["p0@example.org"]))
    post_sendgrid(client, emu, emu.build_events("bounce", ["p1@example.org"]))
    run_jobs(app)
    late = (emu.build_events("processed") + emu.build_events("deferred")
            + emu.build_events("delivered", ["p1@example.org"]))
    post_sendgrid(client, emu, late)
    run_jobs(app)
    assert statuses(app, blast) == {"p0@example.org": "delivered", "p1@example.org": "bounced",
                                    "p2@example.org": "sent"}
    kinds = [e.kind for e in events(app)]
    assert kinds.count("deferred") == 3 and kinds.count("processed") == 3


def test_bounces_suppress_but_blocks_do_not(app, client, emu, blast):
    post_sendgrid(client, emu, emu.build_events("bounce", ["p0@example.org"])
                  + emu.build_events("bounce", ["p1@example.org"], type="blocked")
                  + emu.build_events("dropped", ["p2@example.org"]))
    run_jobs(app)
    assert statuses(app, blast) == {"p0@example.org": "bounced", "p1@example.org": "bounced",
                                    "p2@example.org": "failed"}
    assert suppression(app, "email", "p0@example.org") == "hard_bounce"
    assert suppression(app, "email", "p1@example.org") is None
    assert suppression(app, "email", "p2@example.org") == "invalid"  # "Bounced Address"
    bounced = message(app, address="p0@example.org")
    assert bounced.error_code == "5.1.1" and "does not exist" in bounced.error


def test_spam_reports_and_unsubscribes_revoke_and_suppress(app, client, emu, blast):
    post_sendgrid(client, emu, emu.build_events("spamreport", ["p0@example.org"])
                  + emu.build_events("group_unsubscribe", ["p1@example.org"]))
    run_jobs(app)
    assert suppression(app, "email", "p0@example.org") == "spam_report"
    assert suppression(app, "email", "p1@example.org") == "unsubscribed"
    assert contact(app, email="p0@example.org").email_consent == "revoked"
    assert contact(app, email="p1@example.org").email_consent == "revoked"
    assert contact(app, email="p2@example.org").email_consent == "granted"
    with app.app_context():
        entry = db.session().scalars(sa.select(ConsentEvent).where(
            ConsentEvent.status == "revoked").order_by(ConsentEvent.id)).first()
    assert entry.source == "provider" and entry.evidence["event"] == "spamreport"


def test_opt_outs_of_one_batch_revoke_once_and_suppress_both_addresses(app, client, emu,
                                                                       blast):
    """Several opt-outs of a contact in one batch: one ledger entry (the earliest's
    evidence) and the first reason; a contact whose email changed since the send has both
    addresses suppressed; one already revoked gets no new entry; an opt-out's reason wins over
    a bounce of the same batch (as the ORM path does on SQLite)."""
    from outreach.contacts.models import Contact

    with app.app_context():
        session = db.session()
        moved = session.scalars(sa.select(Contact).filter_by(email="p1@example.org")).one()
        moved.email = "p1-new@example.org"
        gone = session.scalars(sa.select(Contact).filter_by(email="p2@example.org")).one()
        gone.email_consent = "revoked"
        session.commit()
    [late] = emu.build_events("unsubscribe", ["p0@example.org"])
    [early] = emu.build_events("spamreport", ["p0@example.org"])
    late["timestamp"] += 60  # listed first, happened last
    post_sendgrid(client, emu, [late, early]
                  + emu.build_events("group_unsubscribe", ["p1@example.org"])
                  + emu.build_events("bounce", ["p2@example.org"])
                  + emu.build_events("unsubscribe", ["p2@example.org"]))
    run_jobs(app)
    assert suppression(app, "email", "p0@example.org") == "spam_report"
    assert suppression(app, "email", "p1@example.org") == "unsubscribed"
    assert suppression(app, "email", "p1-new@example.org") == "unsubscribed"
    assert suppression(app, "email", "p2@example.org") == "unsubscribed"
    assert contact(app, email="p1-new@example.org").email_consent == "revoked"
    with app.app_context():
        ledger = db.session().execute(sa.select(ConsentEvent.contact_id, ConsentEvent.evidence)
                                      .where(ConsentEvent.status == "revoked",
                                             ConsentEvent.source == "provider")).all()
    p0 = contact(app, email="p0@example.org").id
    assert sorted(cid for cid, _ in ledger) == sorted(
        [p0, contact(app, email="p1-new@example.org").id])
    assert [e["event"] for cid, e in ledger if cid == p0] == ["spamreport"]
    assert all(e["sg_event_id"] and e["message_id"] for _, e in ledger)


def test_unknown_types_and_messages_are_ignored(app, client, emu, blast):
    stranger = {"email": "nobody@example.org", "event": "delivered", "sg_event_id": "e1",
                "timestamp": 1700000000, "outreach_message_id": "999999"}
    no_ids = {"email": "p0@example.org", "event": "bounce", "sg_event_id": "e2",
              "timestamp": 1700000000}
    wrong_person = {**emu.build_events("spamreport", ["p0@example.org"])[0],
                    "email": "p1@example.org"}
    odd = [{"email": "p0@example.org", "event": "telepathy", "sg_event_id": "e3"}, "junk", 7]
    assert post_sendgrid(client, emu, [stranger, no_ids, wrong_person, *odd]).status_code == 200
    assert post_sendgrid(client, emu, []).status_code == 200
    run_jobs(app)
    assert events(app) == [] and set(statuses(app, blast).values()) == {"sent"}
    assert suppression(app, "email", "p0@example.org") is None


def test_events_without_custom_args_match_by_message_id_and_email(app, client, emu, blast):
    batch = emu.build_events("delivered", ["p2@example.org"])
    for event in batch:
        del event["outreach_message_id"]
    post_sendgrid(client, emu, batch)
    run_jobs(app)
    assert statuses(app, blast)["p2@example.org"] == "delivered"


def test_engagement_events_and_machine_opens(app, client, emu, blast):
    post_sendgrid(client, emu, emu.build_events("open", ["p0@example.org"], sg_machine_open=True)
                  + emu.build_events("open", ["p1@example.org"])
                  + emu.build_events("click", ["p1@example.org"]))
    run_jobs(app)
    stored = events(app)
    assert [(e.kind, e.machine, e.link_position) for e in stored] == [
        ("open", True, None), ("open", False, None), ("click", False, 0)]
    assert stored[0].detail["machine_reason"] == "sg_machine_open"
    assert contact(app, email="p0@example.org").last_opened_at is None
    assert contact(app, email="p1@example.org").last_opened_at is not None
    assert contact(app, email="p1@example.org").last_clicked_at is not None
    totals = rollup_totals(app, blast)
    assert totals[("open", -1, True)] == (1, 0) and totals[("open", -1, False)] == (1, 1)
    assert totals[("click", 0, False)] == (1, 1)
    assert len(events(app, Event.machine.is_(True))) == 1


def _on_postgres(app) -> None:
    with app.app_context():
        if db.session().get_bind().dialect.name != "postgresql":
            pytest.skip("per-row foreign key triggers are a PostgreSQL matter")


def test_a_batch_checks_its_references_once_on_postgresql(app, client, emu, blast):
    """As the superuser the tests run as, a batch locks its blasts and contacts set-based and
    writes without the per-row key triggers, with the same rows as before."""
    _on_postgres(app)
    with app.app_context():
        session = db.session()
        person = contact(app, email="p0@example.org")
        sent = message(app, address="p0@example.org")
        records = [{"blast_id": blast, "contact_id": person.id},
                   {"blast_id": blast, "contact_id": 987654}]  # erased meanwhile
        assert references_checked_once(session, records)
        assert session.scalar(sa.text("SHOW session_replication_role")) == "replica"
        assert [r["contact_id"] for r in records] == [person.id, None]
        session.rollback()
        assert session.scalar(sa.text("SHOW session_replication_role")) == "origin"
        # A blast that is gone: the per-row checks stay on, so they refuse what refers to it.
        assert not references_checked_once(session, [{"blast_id": 424242, "contact_id": None}])
        assert session.scalar(sa.text("SHOW session_replication_role")) == "origin"
        session.rollback()
    post_sendgrid(client, emu, emu.build_events("open", ["p0@example.org"]))
    run_jobs(app)
    assert [(e.message_id, e.blast_id, e.contact_id) for e in events(app)] == \
        [(sent.id, blast, person.id)]


def test_a_contact_erased_while_its_batch_is_read_loses_its_reference(app, client, emu, blast,
                                                                      monkeypatch):
    """Erased between the batch's message lookup and its writes: the event is kept without
    the contact (as the erasure's SET NULL would have left it), and nothing is refused."""
    _on_postgres(app)
    from outreach.contacts.service import erase_contact
    from outreach.tracking import sendgrid_events

    person = contact(app, email="p0@example.org")
    looked_up = sendgrid_events._find_messages

    def erase_after_lookup(session, batch):
        found = looked_up(session, batch)
        engine = app.extensions["db_engine"]
        with sa.orm.Session(engine) as other:  # another transaction, committed at once
            erase_contact(other, person.id)
            other.commit()
        return found

    monkeypatch.setattr(sendgrid_events, "_find_messages", erase_after_lookup)
    post_sendgrid(client, emu, emu.build_events("spamreport", ["p0@example.org"]))
    run_jobs(app)
    stored = events(app)
    assert [(e.kind, e.contact_id) for e in stored] == [("spamreport", None)]
    assert suppression(app, "email", "p0@example.org") == "spam_report"
