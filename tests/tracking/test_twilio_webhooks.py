"""Twilio's signed webhooks: status callbacks (forward only) and inbound keywords."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Message
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentEvent, ContactList, SuppressionRemoval
from outreach.emulators.twilio import TwilioEmulator
from outreach.tracking.models import Event, InboundSms
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import count, launch_blast, send_all, sms_template
from tests.tracking import (
    contact,
    events,
    message,
    post_twilio,
    rollup_totals,
    sent_sms_blast,
    serve,
    suppression,
    twilio_emulator,
)

PHONE = "+12125550000"  # p0's number
OUR_NUMBER = "+15005550006"
STOP_REPLY = "You are unsubscribed and will get no more messages. Reply START to resubscribe."


@pytest.fixture
def emu() -> Iterator[TwilioEmulator]:
    """A running Twilio emulator."""
    with twilio_emulator() as emulator:
        yield emulator


@pytest.fixture
def blast(app, emu) -> int:
    """An SMS blast to p0..p2 sent through the Twilio emulator."""
    blast_id, _ = sent_sms_blast(app, emu)
    assert len(emu.messages) == 3
    return blast_id


def callback(client, app, emu, sid, status, error_code=None, signature=None):
    """POST a status callback as Twilio would for this message."""
    params = {"MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
              "AccountSid": emu.account_sid, "ApiVersion": "2010-04-01", "From": OUR_NUMBER,
              "To": PHONE, "MessagingServiceSid": emu.messaging_service_sid}
    if error_code:
        params["ErrorCode"] = str(error_code)
    return post_twilio(client, app, emu, "/webhooks/twilio/status", params, signature)


def inbound(client, app, emu, body, phone=PHONE, opt_out_type=None, sid=None):
    """POST an inbound text as Twilio would."""
    sid = sid or "SM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": emu.account_sid, "From": phone,
              "To": OUR_NUMBER, "Body": body, "NumMedia": "0",
              "MessagingServiceSid": emu.messaging_service_sid}
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return post_twilio(client, app, emu, "/webhooks/twilio/inbound", params)


def sid_of(app, address):
    """Twilio's sid of the blast message to an address."""
    return message(app, address=address).provider_id


def sms_state(app, phone=PHONE):
    """(consent, suppression reason) of a number."""
    return contact(app, phone=phone).sms_consent, suppression(app, "sms", phone)


def test_callbacks_over_real_http_move_messages_forward(app, emu):
    with serve(app):
        blast_id, _ = sent_sms_blast(app, emu)  # status_callback points at the live server
        for record in emu.messages:
            assert record["status_callback"].endswith("/webhooks/twilio/status")
            assert emu.deliver(record["sid"]) == 200
    run_jobs(app)
    assert count(app, Message, Message.blast_id == blast_id, Message.status == "delivered") == 3
    assert rollup_totals(app, blast_id) == {("delivered", -1, False): (3, 3)}


def test_bad_signatures_are_refused(app, client, emu, blast):
    sid = sid_of(app, PHONE)
    assert callback(client, app, emu, sid, "delivered", signature="AAAA").status_code == 403
    other = TwilioEmulator(emu.account_sid, "another-token")
    params = {"MessageSid": sid, "MessageStatus": "delivered"}
    url = app.config["PUBLIC_BASE_URL"] + "/webhooks/twilio/status"
    assert client.post("/webhooks/twilio/status", data=params, headers={
        "X-Twilio-Signature": other.signature(url, params)}).status_code == 403
    assert client.post("/webhooks/twilio/status", data=params).status_code == 403
    wrong_url = emu.signature("https://elsewhere.example/webhooks/twilio/status", params)
    assert client.post("/webhooks/twilio/status", data=params,
                       headers={"X-Twilio-Signature": wrong_url}).status_code == 403
    assert client.post("/webhooks/twilio/inbound", data={"From": PHONE, "Body": "STOP"},
                       headers={"X-Twilio-Signature": "AAAA"}).status_code == 403
    run_jobs(app)
    assert events(app) == [] and sms_state(app) == ("granted", None)


def test_signed_query_strings_are_part_of_the_url(app, client, emu, blast):
    params = {"MessageSid": sid_of(app, PHONE), "MessageStatus": "delivered"}
    url = app.config["PUBLIC_BASE_URL"] + "/webhooks/twilio/status?attempt=2"
    assert client.post("/webhooks/twilio/status?attempt=2", data=params, headers={
        "X-Twilio-Signature": emu.signature(url, params)}).status_code == 200


def test_status_moves_forward_only_and_counts_once(app, client, emu, blast):
    sid = sid_of(app, PHONE)
    for status in ("delivered", "sent", "queued", "delivered", "sending"):
        assert callback(client, app, emu, sid, status).status_code == 200
    unknown = callback(client, app, emu, "SM" + "0" * 32, "delivered")
    assert unknown.status_code == 200 and unknown.mimetype == "text/xml"
    run_jobs(app)
    assert message(app, address=PHONE).status == "delivered"
    assert [e.kind for e in events(app)] == ["delivered", "sent", "queued", "sending"]
    assert rollup_totals(app, blast)[("delivered", -1, False)] == (1, 1)


def test_failures_suppress_by_error_code(app, client, emu, blast):
    landline, blocked, gone = PHONE, "+12125550001", "+12125550002"
    callback(client, app, emu, sid_of(app, landline), "undelivered", 30006)
    callback(client, app, emu, sid_of(app, blocked), "failed", 30007)
    callback(client, app, emu, sid_of(app, gone), "undelivered", 30003)
    run_jobs(app)
    assert message(app, address=landline).status == "failed"
    assert message(app, address=landline).error_code == "30006"
    assert suppression(app, "sms", landline) == "landline"
    assert message(app, address=blocked).status == "failed"
    assert suppression(app, "sms", blocked) is None
    assert suppression(app, "sms", gone) == "unreachable"


@pytest.mark.parametrize("body", ["STOP", "stop", "  Stop. ", "unsubscribe!", "Quit", "END",
                                  "optout", "StopAll", "revoke", "cancel"])
def test_stop_keywords_revoke_and_suppress(app, client, emu, blast, body):
    response = inbound(client, app, emu, body)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert f"<Message>{STOP_REPLY}</Message>" in response.get_data(as_text=True)
    assert sms_state(app) == ("revoked", "stop")
    with app.app_context():
        entry = consent.history(db.session(), contact(app, phone=PHONE).id)[0]
    assert entry.source == "keyword" and entry.evidence["keyword"] == body.strip()
    assert rollup_totals(app, blast)[("unsubscribe", -1, False)] == (1, 1)


def test_stop_please_is_not_a_keyword(app, client, emu, blast):
    response = inbound(client, app, emu, "stop please")
    assert response.get_data(as_text=True).endswith("<Response/>")
    assert sms_state(app) == ("granted", None)
    with app.app_context():
        stored = db.session().scalars(sa.select(InboundSms)).one()
    assert stored.body == "stop please" and stored.keyword is None
    assert stored.contact_id == contact(app, phone=PHONE).id


def test_after_stop_the_next_sms_blast_skips_the_number(app, client, emu, blast):
    inbound(client, app, emu, "STOP")
    list_id = contact_list(app)
    state = send_all(app, launch_blast(app, sms_template(app, name="Again"), [list_id]))
    assert state["counts"]["total"] == 2
    assert [m["to"] for m in emu.messages].count(PHONE) == 1


def contact_list(app):
    """The audience list's id."""
    with app.app_context():
        return db.session().scalar(sa.select(ContactList.id))


def test_advanced_opt_out_gets_an_empty_reply_but_still_counts(app, client, emu, blast):
    response = inbound(client, app, emu, "Stop", opt_out_type="STOP")
    assert response.get_data(as_text=True).endswith("<Response/>")
    assert sms_state(app) == ("revoked", "stop")


def test_start_restores_only_after_stop(app, client, emu, blast):
    assert inbound(client, app, emu, "START").get_data(as_text=True).endswith("<Response/>")
    assert sms_state(app) == ("granted", None)
    inbound(client, app, emu, "STOP")
    response = inbound(client, app, emu, "yes")
    assert "resubscribed" in response.get_data(as_text=True)
    assert sms_state(app) == ("granted", None)
    with app.app_context():
        session = db.session()
        removal = session.scalars(sa.select(SuppressionRemoval)).one()
        grant = session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert removal.reason == "START keyword" and removal.original_reason == "stop"
    assert grant.status == "granted" and grant.source == "keyword"
    # A landline suppression is never lifted by START.
    other = "+12125550001"
    with app.app_context(), db.transaction() as session:
        consent.suppress(session, Channel.SMS, other, "landline")
    inbound(client, app, emu, "UNSTOP", phone=other)
    assert suppression(app, "sms", other) == "landline"


def test_stop_from_an_unknown_number_still_suppresses_it(app, client, emu, blast):
    inbound(client, app, emu, "STOP", phone="+12125559999")
    assert suppression(app, "sms", "+12125559999") == "stop"


def test_help_and_other_replies(app, client, emu, blast):
    help_reply = inbound(client, app, emu, "Help").get_data(as_text=True)
    assert "<Message>Reply STOP to opt out. Msg&amp;data rates may apply.</Message>" in help_reply
    sid = "SM" + uuid.uuid4().hex
    for _ in range(2):  # a retried webhook is stored once
        reply = inbound(client, app, emu, "Count me in for Saturday!", sid=sid)
        assert reply.status_code == 200 and reply.get_data(as_text=True).endswith("<Response/>")
    with app.app_context():
        rows = db.session().scalars(sa.select(InboundSms).order_by(InboundSms.id)).all()
    assert [(r.keyword, r.body) for r in rows] == [
        ("help", "Help"), (None, "Count me in for Saturday!")]
    assert sms_state(app) == ("granted", None) and events(app, Event.kind == "unsubscribe") == []
