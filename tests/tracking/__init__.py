"""Helpers for tracking tests: sent blasts with real tokens, signed webhook posts, read-backs."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from outreach import db
from outreach.blasts.models import Message
from outreach.channels.models import OutboxEmail
from outreach.contacts.models import Contact, Suppression
from outreach.db import utcnow
from outreach.emulators.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridEmulator
from outreach.emulators.twilio import TwilioEmulator
from outreach.tracking.models import Event, Rollup
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all, sms_template

TOKEN_RE = re.compile(r"/u/([A-Za-z0-9_-]+)>")
TWILIO_SID, TWILIO_TOKEN = "AC" + "1" * 32, "twilio-test-auth-token"
SERVICE_SID = "MG" + "2" * 32


def forget_compiled_templates() -> None:
    """Empty sending's per-process compile caches: ids restart in each test's clean database."""
    from outreach.blasts import sending

    sending._compiled_email.cache_clear()
    sending._compiled_sms.cache_clear()


def backdate(app: Flask, blast_id: int, seconds: int = 3600) -> None:
    """Pretend the blast went out a while ago (so hits are not "too soon" machine ones)."""
    with app.app_context(), db.transaction() as session:
        when = utcnow() - timedelta(seconds=seconds)
        session.execute(sa.update(Message).where(Message.blast_id == blast_id)
                        .values(sent_at=when))


def sent_email_blast(app: Flask, n: int = 3, list_id: int | None = None,
                     age: int = 3600) -> tuple[int, int, dict[str, str]]:
    """Send an email blast through the outbox; return (blast, list, {address: token})."""
    forget_compiled_templates()
    list_id = list_id or audience(app, n)
    blast_id = launch_blast(app, email_template(app), [list_id])
    state = send_all(app, blast_id)
    assert state["counts"]["sent"] >= 1, state
    if age:
        backdate(app, blast_id, age)
    return blast_id, list_id, outbox_tokens(app)


def outbox_tokens(app: Flask) -> dict[str, str]:
    """The latest unsubscribe token per address, read from the outbox's stored headers."""
    with app.app_context():
        rows = db.session().scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).all()
    tokens = {}
    for row in rows:
        address = row.to_email.split("<")[-1].rstrip(">")
        match = TOKEN_RE.search(row.headers["List-Unsubscribe"])
        assert match
        tokens[address] = match.group(1)
    return tokens


def events(app: Flask, *where: Any) -> list[Event]:
    """Stored events matching conditions, oldest first (detached)."""
    with app.app_context():
        session = db.session()
        rows = session.scalars(sa.select(Event).where(*where).order_by(Event.id)).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def rollup_totals(app: Flask, blast_id: int) -> dict[tuple[str, int, bool], tuple[int, int]]:
    """{(kind, link_position, machine): (total, unique)} summed over hours."""
    with app.app_context():
        rows = db.session().execute(
            sa.select(Rollup.kind, Rollup.link_position, Rollup.machine,
                      sa.func.sum(Rollup.total), sa.func.sum(Rollup.unique_count))
            .where(Rollup.blast_id == blast_id)
            .group_by(Rollup.kind, Rollup.link_position, Rollup.machine)).all()
    return {(k, p, bool(m)): (int(t), int(u)) for k, p, m, t, u in rows}


def message(app: Flask, **where: Any) -> Message:
    """One message (detached)."""
    with app.app_context():
        session = db.session()
        row = session.scalars(sa.select(Message).filter_by(**where)).one()
        session.expunge(row)
        return row


def contact(app: Flask, **where: Any) -> Contact:
    """One contact (detached)."""
    with app.app_context():
        session = db.session()
        row = session.scalars(sa.select(Contact).filter_by(**where)).one()
        session.expunge(row)
        return row


def suppression(app: Flask, channel: str, address: str) -> str | None:
    """The suppression reason of an address, if any."""
    with app.app_context():
        return db.session().scalar(sa.select(Suppression.reason).where(
            Suppression.channel == channel, Suppression.address == address))


def use_sendgrid(app: Flask, emu: SendGridEmulator) -> None:
    """Send email through the (started) SendGrid emulator and trust its webhook key."""
    app.config.update(EMAIL_BACKEND="sendgrid", SENDGRID_API_KEY=emu.api_key,
                      SENDGRID_API_HOST=emu.url, SENDGRID_WEBHOOK_PUBLIC_KEY=emu.public_key_b64)
    app.extensions.pop("email_channel", None)


def post_sendgrid(client: FlaskClient, emu: SendGridEmulator, payload: Any,
                  signature: str | None = None) -> Any:
    """POST a batch (events list, or raw bytes) signed by the emulator, as SendGrid does."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signed, timestamp = emu.sign(body)
    return client.post("/webhooks/sendgrid", data=body, content_type="application/json",
                       headers={SIGNATURE_HEADER: signature or signed,
                                TIMESTAMP_HEADER: timestamp})


def use_twilio(app: Flask, emu: TwilioEmulator) -> None:
    """Send SMS through the (started) Twilio emulator; send at any hour."""
    app.config.update(SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID=emu.account_sid,
                      TWILIO_AUTH_TOKEN=emu.auth_token, TWILIO_API_BASE=emu.url,
                      TWILIO_MESSAGING_SERVICE_SID=emu.messaging_service_sid,
                      SMS_QUIET_START="00:00", SMS_QUIET_END="23:59",
                      SMS_QUIET_END_FL_OK="23:59")
    app.extensions.pop("sms_channel", None)


def twilio_emulator() -> TwilioEmulator:
    """A Twilio emulator with the test account (not started)."""
    return TwilioEmulator(TWILIO_SID, TWILIO_TOKEN, messaging_service_sid=SERVICE_SID)


def post_twilio(client: FlaskClient, app: Flask, emu: TwilioEmulator, path: str,
                params: dict[str, str], signature: str | None = None) -> Any:
    """POST a form to one of our Twilio webhooks, signed for our public URL like Twilio."""
    url = app.config["PUBLIC_BASE_URL"].rstrip("/") + path
    return client.post(path, data=params, headers={
        "X-Twilio-Signature": signature or emu.signature(url, params)})


def sent_sms_blast(app: Flask, emu: TwilioEmulator, n: int = 3,
                   list_id: int | None = None) -> tuple[int, int]:
    """Send an SMS blast through the Twilio emulator; return (blast, list)."""
    use_twilio(app, emu)
    forget_compiled_templates()
    list_id = list_id or audience(app, n)
    blast_id = launch_blast(app, sms_template(app), [list_id])
    state = send_all(app, blast_id)
    assert state["counts"]["sent"] >= 1, state
    return blast_id, list_id


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve the app over real HTTP on a free port; PUBLIC_BASE_URL points at it meanwhile."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    previous = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.config["PUBLIC_BASE_URL"] = previous
