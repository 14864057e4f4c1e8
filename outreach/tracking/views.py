"""Public tracking routes (pixel, clicks, unsubscribe) and the SendGrid and Twilio webhooks.

Paths: GET /o/<token>.gif, GET|HEAD /c/<token>/<position>, GET /c/<token>/h (honeypot),
GET|POST /u/<token>, POST /u/<token>/resubscribe, POST /webhooks/sendgrid,
POST /webhooks/twilio/status, POST /webhooks/twilio/inbound.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request
from flask_wtf.csrf import ValidationError as CsrfError
from flask_wtf.csrf import validate_csrf
from redis.exceptions import RedisError

from outreach import db
from outreach.auth import public
from outreach.blasts.models import Link, Message
from outreach.db import utcnow
from outreach.queue import enqueue
from outreach.tokens import read_token
from outreach.tracking import jobs, machine, sendgrid_events, twilio_events, unsubscribe
from outreach.tracking.buffer import push_hit
from outreach.tracking.models import NO_LINK

log = logging.getLogger(__name__)
bp = Blueprint("tracking", __name__)
# A 1x1 transparent GIF (43 bytes).
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
ONE_CLICK = "One-Click"


def init_app(app: Flask, csrf: Any) -> None:
    """Register the routes; webhooks and the unsubscribe POST check their own authenticity."""
    for view in (sendgrid_webhook, twilio_status, twilio_inbound, unsubscribe_post):
        csrf.exempt(view)
    app.register_blueprint(bp)


def _seconds_since(sent_at: Any) -> float | None:
    return (utcnow() - sent_at).total_seconds() if sent_at is not None else None


def _buffer(kind: str, message_id: int, position: int | None, reason: str | None) -> None:
    """Buffer a hit; a Redis outage loses the hit but never the page or the redirect."""
    try:
        push_hit(kind, message_id, link_position=position, machine_reason=reason,
                 ip=request.remote_addr, user_agent=request.user_agent.string,
                 method=request.method)
    except RedisError:
        log.exception("could not buffer a tracking hit")


def _sent_at(token: str) -> tuple[int, Any]:
    """The token's message id and sent_at, or a 404."""
    message_id = read_token(token)
    row = None if message_id is None else db.session().execute(
        sa.select(Message.id, Message.sent_at).where(Message.id == message_id)).first()
    if row is None:
        abort(404)
    return row.id, row.sent_at


@bp.get("/o/<token>.gif")
@public
def open_pixel(token: str) -> Any:
    """The open pixel: always the same GIF; records an open (machine when a proxy's)."""
    message_id, sent_at = _sent_at(token)
    reason = machine.classify_open(request.remote_addr, request.user_agent.string,
                                   _seconds_since(sent_at),
                                   current_app.config.get("MACHINE_OPEN_SECONDS", 2))
    _buffer("open", message_id, None, reason)
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


@bp.get("/c/<token>/<int:position>")
@public
def click(token: str, position: int) -> Any:
    """A tracked link: 302 to the URL stored for this blast and position, never another."""
    message_id = read_token(token)
    row = None if message_id is None else db.session().execute(
        sa.select(Link.url, Message.sent_at)
        .join(Link, sa.and_(Link.blast_id == Message.blast_id, Link.position == position))
        .where(Message.id == message_id)).first()
    if row is None or message_id is None:
        abort(404)
    reason = machine.classify_click(request.method, request.user_agent.string,
                                    _seconds_since(row.sent_at),
                                    current_app.config.get("MACHINE_CLICK_SECONDS", 2))
    _buffer("click", message_id, position, reason)
    response = redirect(_with_attribution(row.url, token, position), 302)
    response.headers.update(NO_STORE)
    return response


@bp.get("/c/<token>/h")
@public
def honeypot(token: str) -> Any:
    """The hidden link no person sees: whatever follows it is a machine."""
    message_id, _ = _sent_at(token)
    _buffer("click", message_id, NO_LINK, "honeypot")
    return Response("", mimetype="text/html", headers=NO_STORE)


def _recipient(token: str) -> unsubscribe.Recipient:
    who = unsubscribe.recipient(db.session(), token)
    if who is None:
        abort(404)
    return who


@bp.get("/u/<token>")
@public
def unsubscribe_page(token: str) -> Any:
    """The unsubscribe page: the address and a confirm button (a GET changes nothing)."""
    who = _recipient(token)
    state = "done" if unsubscribe.is_unsubscribed(db.session(), who) else "confirm"
    return render_template("tracking/unsubscribe.html", who=who, token=token, state=state)


@bp.post("/u/<token>")
@public
def unsubscribe_post(token: str) -> Any:
    """RFC 8058 one-click (no cookies, no CSRF token) or the page's CSRF-checked form."""
    who = _recipient(token)
    if request.form.get("List-Unsubscribe") == ONE_CLICK:
        unsubscribe.unsubscribe(db.session(), who, "one-click", request.remote_addr)
        return Response("You are unsubscribed.\n", mimetype="text/plain")
    try:
        validate_csrf(request.form.get("csrf_token"))
    except CsrfError:
        abort(400, description="The form expired or was not sent from our page. "
                               "Please reload the page and try again.")
    unsubscribe.unsubscribe(db.session(), who, "page", request.remote_addr)
    return render_template("tracking/unsubscribe.html", who=who, token=token, state="done")


@bp.post("/u/<token>/resubscribe")
@public
def resubscribe(token: str) -> Any:
    """Undo an unsubscribe from the same page (CSRF-checked by the app)."""
    who = _recipient(token)
    done = unsubscribe.resubscribe(db.session(), who, request.remote_addr)
    return render_template("tracking/unsubscribe.html", who=who, token=token,
                           state="resubscribed" if done else "blocked")


@bp.post("/webhooks/sendgrid")
@public
def sendgrid_webhook() -> Any:
    """SendGrid's signed Event Webhook: verify the raw body, queue it, answer at once."""
    request.max_content_length = sendgrid_events.MAX_BODY_BYTES  # larger bodies: 413
    body = request.get_data(cache=True)
    if not sendgrid_events.verify(
            body, request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
            request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp")):
        abort(403)
    try:
        text = body.decode("utf-8")
        events = json.loads(text)
    except ValueError:
        abort(400, description="The body is not JSON.")
    if not isinstance(events, list):
        abort(400, description="The body must be a JSON array of events.")
    enqueue("events", jobs.ingest_sendgrid, text)
    return Response("", status=200)


def _twilio_url() -> str:
    """The URL Twilio signed: our public origin plus the path and query it called."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.full_path.rstrip("?")


def _twiml(reply: str | None) -> Response:
    body = f"<Response><Message>{escape(reply)}</Message></Response>" if reply else "<Response/>"
    return Response('<?xml version="1.0" encoding="UTF-8"?>' + body, mimetype="text/xml")


def _check_twilio() -> None:
    if not twilio_events.verify(_twilio_url(), request.form,
                                request.headers.get("X-Twilio-Signature")):
        abort(403)


@bp.post("/webhooks/twilio/status")
@public
def twilio_status() -> Any:
    """Twilio's signed delivery status callback: queued for the events worker."""
    _check_twilio()
    enqueue("events", jobs.ingest_twilio_status, request.form.to_dict())
    return _twiml(None)


@bp.post("/webhooks/twilio/inbound")
@public
def twilio_inbound() -> Any:
    """An inbound text: keywords applied at once, the reply as TwiML."""
    _check_twilio()
    return _twiml(twilio_events.handle_inbound(db.session(), request.form.to_dict()))


def _with_attribution(url: str, token: str, position: int) -> str:
    """Our own action pages learn which blast, message and link brought the supporter."""
    base, parts = urlsplit(current_app.config["PUBLIC_BASE_URL"]), urlsplit(url)
    if ((parts.scheme, parts.netloc) != (base.scheme, base.netloc)
            or not parts.path.startswith("/a/")):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("t", "l")]
    return urlunsplit(parts._replace(query=urlencode([*query, ("t", token),
                                                      ("l", str(position))])))
