"""No secret reaches a log line: settings, passwords, API and metrics tokens, signatures."""

from __future__ import annotations

import io
import logging

import pytest

from outreach.observability import logs
from outreach.queue import connection
from tests.fixtures.app import build_app, csrf_token, make_token
from tests.fixtures.services import clean_database

SENDGRID_KEY = "SG.abcdefghijklmnop1234.QRSTUVWXYZabcdef5678ghij"
TWILIO_TOKEN = "twilio-auth-token-0f9e8d7c6b5a"
METRICS = "metrics-token-5a4b3c2d1e"
SECRET = "app-secret-key-that-must-stay-put"
PASSWORD = "hunter2-but-longer-and-wrong"
SIGNATURE = "c2lnbmF0dXJlLXRoYXQtaXMtZm9yZ2Vk"


@pytest.fixture(params=["json", "text"])
def logged(request, database_url, redis_url, tmp_path):
    """An app with secrets configured, and everything logged at DEBUG in that format."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    app = build_app(database_url, redis_url, tmp_path / "instance", SECRET_KEY=SECRET,
                    SENDGRID_API_KEY=SENDGRID_KEY, TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
                    METRICS_TOKEN=METRICS, SENDGRID_WEBHOOK_PUBLIC_KEY="MFkwEwYHKoZIzj0CAQY",
                    LOG_FORMAT=request.param)
    clean_database(app.extensions["db_engine"])
    connection(app).flushdb()
    stream = io.StringIO()
    root.addHandler(logs.make_handler(request.param, stream))
    root.setLevel(logging.DEBUG)
    yield app, stream
    for handler in list(root.handlers):  # ours, and the stderr one LOG_FORMAT=json installed
        if getattr(handler, logs.HANDLER_MARK, False) and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    app.extensions["db_engine"].dispose()


def test_secrets_never_reach_the_log(logged):
    app, stream = logged
    client = app.test_client()
    api_token = make_token(app, "viewer")
    log = logging.getLogger("outreach.test")
    # What careless code might log: the whole configuration, headers, a form, a DSN, an error.
    log.info("configuration: %s", dict(app.config))
    log.debug("headers: %s", {"Authorization": f"Bearer {api_token}",
                              "X-Twilio-Signature": SIGNATURE})
    log.info("form: password=%s&email=a@example.org", PASSWORD)
    log.info("connecting to redis://:redis-pass-123@cache:6379/0 and %s", SENDGRID_KEY)
    try:
        raise RuntimeError(f"provider said no to key {SENDGRID_KEY} (token {TWILIO_TOKEN})")
    except RuntimeError:
        log.exception("send failed")
    log.info("extra fields too", extra={"api_key": SENDGRID_KEY})
    # And real requests that carry secrets.
    client.post("/login", data={"email": "x@example.org", "password": PASSWORD,
                                "csrf_token": csrf_token(client)})
    client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {api_token}x"})
    client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {api_token}"})
    client.get("/metrics", headers={"Authorization": "Bearer wrong-metrics-token"})
    client.post("/webhooks/twilio/status", data={"MessageSid": "SM1"},
                headers={"X-Twilio-Signature": SIGNATURE})
    client.post("/webhooks/sendgrid", data=b"[]", content_type="application/json",
                headers={"X-Twilio-Email-Event-Webhook-Signature": SIGNATURE,
                         "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000"})
    output = stream.getvalue()
    assert "configuration:" in output and "send failed" in output and "Traceback" in output
    for secret in (SECRET, SENDGRID_KEY, TWILIO_TOKEN, METRICS, PASSWORD, SIGNATURE, api_token,
                   "redis-pass-123", "wrong-metrics-token"):
        assert secret not in output, f"{secret[:6]}... was logged"
    assert logs.REDACTED in output


@pytest.mark.parametrize("text, kept", [
    ("GET /o/abc.gif 200", "GET /o/abc.gif 200"),
    ("blast 12: 3 messages to retry in 30 s", "blast 12: 3 messages to retry in 30 s"),
    ("basic validation failed for the bearer of bad news", None),
])
def test_redaction_leaves_ordinary_lines_alone(text, kept):
    assert logs.redact(text) == (kept or text)
