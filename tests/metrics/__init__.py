"""Helpers for metrics tests: a blast with known deliveries, bounces, opens, clicks, opt-outs."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from outreach import db
from outreach.blasts.models import Message
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.emulators.twilio import TwilioEmulator
from outreach.tokens import make_token
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import audience
from tests.tracking import post_sendgrid, post_twilio, sent_email_blast, use_sendgrid

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like "
           "Gecko) Version/17.4 Safari/605.1.15")
HOME_IP = {"REMOTE_ADDR": "203.0.113.9"}
APPLE_IP = {"REMOTE_ADDR": "17.58.101.7"}
SCANNER = "Mozilla/5.0 (compatible; BingPreview/1.0b)"
OUR_NUMBER = "+15005550006"
P = [f"p{i}@example.org" for i in range(5)]

# What engaged_email_blast does, as the API must report it.
EXPECTED = {
    "audience": 5, "sent": 5, "delivered": 3, "bounced": 2, "failed": 0, "unknown": 0,
    "unsubscribed": 1, "spam_reports": 1,
    "opens": {"unique": 2, "total": 3, "machine": 2},
    "clicks": {"unique": 2, "total": 4, "machine": 3},
    "bounces": {"hard": 1, "soft": 1}, "honeypot_clicks": 1,
    "rate_base": "delivered", "open_rate": 0.6667, "click_rate": 0.6667,
    "click_to_open_rate": 1.0, "delivery_rate": 0.6, "unsubscribe_rate": 0.2,
}
EXPECTED_LINKS = [
    {"position": 0, "url": "https://act.example.org/letter?x=1&y=2", "clicks": 2, "unique": 1,
     "machine": 1},
    {"position": 1, "url": "https://act.example.org/call", "clicks": 2, "unique": 2,
     "machine": 1},
]
# Recipients per outcome filter in the same scenario.
EXPECTED_OUTCOMES = {
    "": P, "sent": P, "delivered": P[:3], "bounced": P[3:], "failed": [], "unknown": [],
    "opened": P[:2], "clicked": P[:2], "unsubscribed": [P[2]],
}


def hit(client: FlaskClient, path: str, ua: str = BROWSER, ip: dict[str, str] = HOME_IP,
        method: str = "get") -> Any:
    """Request a tracking URL like a mail client would."""
    return getattr(client, method)(path, headers={"User-Agent": ua}, environ_base=ip)


def message_tokens(app: Flask, blast_id: int) -> dict[str, str]:
    """{address: signed token} of the blast's messages (as their links carry them)."""
    with app.app_context():
        rows = db.session().execute(sa.select(Message.address, Message.id)
                                    .where(Message.blast_id == blast_id)).all()
        return {address: make_token(mid) for address, mid in rows}


def engaged_email_blast(app: Flask, client: FlaskClient, emu: SendGridEmulator
                        ) -> tuple[int, dict[str, str]]:
    """An email blast to p0..p4 through the SendGrid emulator, with EXPECTED's engagement.

    SendGrid: p0-p2 delivered, p3 bounced (hard), p4 blocked (soft), a machine open of p1
    (sg_machine_open) and a spam report by p1. Our tracking: p0 opens twice and p1 once (human),
    p2 opens through Apple's proxy (machine); p0 clicks link 0 twice and link 1 once, p1
    clicks link 1 (human); p1's link 0 gets a HEAD probe and link 1 a scanner (machine); p2's
    honeypot link is followed (machine); p2 unsubscribes by RFC 8058 one-click.
    """
    use_sendgrid(app, emu)
    list_id = audience(app, 5)
    blast_id, _, _ = sent_email_blast(app, list_id=list_id)
    tokens = message_tokens(app, blast_id)
    batch = (emu.build_events("delivered", P[:3]) + emu.build_events("bounce", [P[3]])
             + emu.build_events("bounce", [P[4]], type="blocked")
             + emu.build_events("open", [P[1]], sg_machine_open=True)
             + emu.build_events("spamreport", [P[1]]))
    assert post_sendgrid(client, emu, batch).status_code == 200
    t0, t1, t2 = tokens[P[0]], tokens[P[1]], tokens[P[2]]
    for path in (f"/o/{t0}.gif", f"/o/{t0}.gif", f"/o/{t1}.gif", f"/c/{t0}/0", f"/c/{t0}/0",
                 f"/c/{t0}/1", f"/c/{t1}/1"):
        assert hit(client, path).status_code in (200, 302)
    assert hit(client, f"/o/{t2}.gif", ua="Mozilla/5.0", ip=APPLE_IP).status_code == 200
    assert hit(client, f"/c/{t1}/0", method="head").status_code == 302
    assert hit(client, f"/c/{t1}/1", ua=SCANNER).status_code == 302
    assert hit(client, f"/c/{t2}/h").status_code == 200
    one_click = app.test_client(use_cookies=False).post(
        f"/u/{t2}", data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 200
    run_jobs(app)
    return blast_id, tokens


def api_get(client: FlaskClient, token: str | None, path: str) -> Any:
    """GET an API path with a bearer token (or none)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1{path}", headers=headers)


def twilio_form(client: FlaskClient, app: Flask, emu: TwilioEmulator, path: str,
                **params: str) -> Any:
    """POST a signed Twilio webhook form (status callback or inbound text)."""
    sid = params.pop("MessageSid", None) or "SM" + uuid.uuid4().hex
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": emu.account_sid,
            "MessagingServiceSid": emu.messaging_service_sid, "To": OUR_NUMBER, **params}
    return post_twilio(client, app, emu, path, form)
