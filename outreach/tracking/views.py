"""Public tracking routes (pixel, clicks, unsubscribe) and the SendGrid and Twilio webhooks.

Paths: GET /o/<token>.gif, GET|HEAD /c/<token>/<position>, GET /c/<token>/h (honeypot),
GET|POST /u/<token>, POST /u/<token>/resubscribe, POST /webhooks/sendgrid,
POST /webhooks/twilio/status, POST /webhooks/twilio/inbound.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request
from flask_wtf.csrf import ValidationError as CsrfError
from flask_wtf.csrf import validate_csrf

from outreach import db
from outreach.auth import public
from outreach.blasts.models import Message
from outreach.observability import counters
from outreach.queue import enqueue
from outreach.tokens import read_token
from outreach.tracking import hits, jobs, machine, sendgrid_events, twilio_events, unsubscribe
from outreach.tracking.hits import NO_STORE, PIXEL
from outreach.tracking.models import NO_LINK

log = logging.getLogger(__name__)
bp = Blueprint("tracking", __name__)
ONE_CLICK = "One-Click"


def init_app(app: Flask, csrf: Any) -> None:
    """Register the routes; webhooks and the unsubscribe POST check their own authenticity."""
    for view in (sendgrid_webhook, twilio_status, twilio_inbound, unsubscribe_post):
        csrf.exempt(view)
    app.register_blueprint(bp)


def _buffer(kind: str, message_id: int, position: int | None, reason: str | None) -> None:
    """Buffer a hit; a Redis outage loses the hit but never the page or the redirect."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    hits.record_hit(app, kind, message_id, position, reason, request.remote_addr,
                    request.user_agent.string, request.method)


def _message_id(token: str) -> int:
    """The id of the token's message (which must exist), or a 404."""
    message_id = read_token(token)
    row = None if message_id is None else db.session().execute(
        sa.select(Message.id).where(Message.id == message_id)).first()
    if row is None:
        abort(404)
    return row.id


# /o/ and /c/<token>/<position> are answered by hits.HitLayer before Flask; these views are
# the same answers for an app without the layer, and the 404s the layer leaves to Flask.
@bp.get("/o/<token>.gif")
@public
def open_pixel(token: str) -> Any:
    """The open pixel: always the same GIF; records an open (machine when a proxy's)."""
    message_id = read_token(token)  # signed: trusted with no SQL (the flush drops unknown ids)
    if message_id is None:
        abort(404)
    reason = machine.classify_open(request.remote_addr, request.user_agent.string, None)
    _buffer("open", message_id, None, reason)
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


@bp.get("/c/<token>/<int:position>")
@public
def click(token: str, position: int) -> Any:
    """A tracked link: 302 to the URL stored for this blast and position, never another."""
    message_id = read_token(token)
    url = None if message_id is None else hits.click_url(
        hits.lookup_engine(current_app._get_current_object()),  # type: ignore[attr-defined]
        message_id, position)
    if url is None or message_id is None:
        abort(404)
    reason = machine.classify_click(request.method, request.user_agent.string, None)
    _buffer("click", message_id, position, reason)
    response = redirect(hits.with_attribution(url, token, position,
                                              current_app.config["PUBLIC_BASE_URL"]), 302)
    response.headers.update(NO_STORE)
    return response


@bp.get("/c/<token>/h")
@public
def honeypot(token: str) -> Any:
    """The hidden link no person sees: whatever follows it is a machine."""
    _buffer("click", _message_id(token), NO_LINK, "honeypot")
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
    counters.incr("webhook_events_total", len(events), provider="sendgrid", webhook="events")
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
    counters.incr("webhook_events_total", provider="twilio", webhook="status")
    enqueue("events", jobs.ingest_twilio_status, request.form.to_dict())
    return _twiml(None)


@bp.post("/webhooks/twilio/inbound")
@public
def twilio_inbound() -> Any:
    """An inbound text: keywords applied at once, the reply as TwiML."""
    _check_twilio()
    counters.incr("webhook_events_total", provider="twilio", webhook="inbound")
    return _twiml(twilio_events.handle_inbound(db.session(), request.form.to_dict()))
