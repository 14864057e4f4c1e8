"""GET /metrics: token checks, the exposition format, and figures after a real blast."""

from __future__ import annotations

import re

import pytest
from redis import Redis

from outreach.channels.ratelimit import RateLimiter
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.observability import counters
from outreach.queue import connection
from tests.fixtures.app import run_jobs
from tests.tracking import post_sendgrid, post_twilio, sent_email_blast, twilio_emulator

TOKEN = "scrape-token-0123456789abcdef"
SAMPLE = re.compile(r'^(outreach_[a-z_]+)(\{([a-z_]+="[^"\\\n]*",?)*\})? -?[0-9.e+]+$')


def scrape(client, token: str = TOKEN):
    """GET /metrics as Prometheus does, with a bearer token."""
    return client.get("/metrics", headers={"Authorization": f"Bearer {token}"})


def samples(text: str) -> dict[str, float]:
    """Series -> value, after checking every line is valid exposition format."""
    out: dict[str, float] = {}
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        match = SAMPLE.match(line)
        assert match, f"not an exposition line: {line!r}"
        assert match.group(1) in declared, f"{match.group(1)} has no HELP/TYPE before it"
        series, _, value = line.rpartition(" ")
        out[series] = float(value)
    return out


@pytest.fixture
def scraping(app):
    """The app with scraping enabled."""
    app.config["METRICS_TOKEN"] = TOKEN
    return app


def test_scraping_is_off_without_a_token_setting(app, client):
    assert scrape(client).status_code == 404
    # Without a bearer header /metrics is still the staff Metrics page (sign-in first).
    page = client.get("/metrics")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_wrong_or_missing_token_is_refused(scraping, client):
    assert scrape(client, "nope").status_code == 403
    assert scrape(client, TOKEN + "x").status_code == 403
    assert scrape(client, "").status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}
                      ).status_code == 302  # not a scrape: the staff page's login redirect
    response = scrape(client)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Set-Cookie" not in response.headers  # a scrape opens no session


def test_series_after_a_small_outbox_blast(scraping, client):
    blast_id, _, tokens = sent_email_blast(scraping, n=3)
    values = samples(scrape(client).get_data(as_text=True))
    assert values['outreach_messages{channel="email",status="sent"}'] == 3
    assert values['outreach_messages{channel="email",status="queued"}'] == 0
    assert values['outreach_messages{channel="sms",status="sent"}'] == 0
    assert values['outreach_messages_sent_total{channel="email"}'] == 3
    assert values['outreach_messages_failed_total{channel="email"}'] == 0
    assert values['outreach_messages_sent_total{channel="sms"}'] == 0
    assert values["outreach_tracking_hits_buffered_total"] == 0
    assert values['outreach_blasts{status="done"}'] == 1
    for queue in ("prepare", "email", "sms", "events", "default"):
        assert values[f'outreach_queue_jobs{{queue="{queue}"}}'] == 0
        assert values[f'outreach_queue_failed_jobs{{queue="{queue}"}}'] == 0
    assert values["outreach_workers"] == 0  # the burst worker has gone
    assert values["outreach_tracking_hits_pending"] == 0

    # Two opens: buffered at once, flushed by the events worker.
    for token in list(tokens.values())[:2]:
        assert client.get(f"/o/{token}.gif").status_code == 200
    values = samples(scrape(client).get_data(as_text=True))
    assert values["outreach_tracking_hits_buffered_total"] == 2
    assert values["outreach_tracking_hits_pending"] == 2
    assert values['outreach_queue_jobs{queue="events"}'] == 1
    run_jobs(scraping)
    values = samples(scrape(client).get_data(as_text=True))
    assert values["outreach_tracking_hits_flushed_total"] == 2
    assert values["outreach_tracking_hits_pending"] == 0


def test_webhook_events_are_counted_per_provider(scraping, client):
    sendgrid = SendGridEmulator()
    scraping.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = sendgrid.public_key_b64
    batch = [{"email": "a@example.org", "event": "delivered", "sg_event_id": f"e{i}",
              "timestamp": 1700000000} for i in range(3)]
    assert post_sendgrid(client, sendgrid, batch).status_code == 200
    assert post_sendgrid(client, sendgrid, batch, signature="forged").status_code == 403
    twilio = twilio_emulator()
    scraping.config["TWILIO_AUTH_TOKEN"] = twilio.auth_token
    status = {"MessageSid": "SM0000", "MessageStatus": "delivered",
              "AccountSid": twilio.account_sid}
    assert post_twilio(client, scraping, twilio, "/webhooks/twilio/status", status
                       ).status_code == 200
    values = samples(scrape(client).get_data(as_text=True))
    assert values['outreach_webhook_events_total{provider="sendgrid",webhook="events"}'] == 3
    assert values['outreach_webhook_events_total{provider="twilio",webhook="status"}'] == 1


def test_rate_limiter_waits_are_counted(scraping, client):
    limiter = RateLimiter(connection(scraping), "sms:+15550001111", 20)
    limiter.wait(1)  # the first slot is free
    limiter.wait(1)  # the second waits 1/20 s
    values = samples(scrape(client).get_data(as_text=True))
    assert values['outreach_ratelimit_waits_total{limiter="sms:+15550001111"}'] == 1
    seconds = values['outreach_ratelimit_wait_seconds_total{limiter="sms:+15550001111"}']
    assert 0.02 < seconds <= 0.05


def test_counting_never_raises_when_redis_is_down():
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    counters.incr("messages_sent_total", 5, client=dead, channel="email")
    counters.count_wait("sms:x", 0.5, client=dead)


def test_label_values_are_escaped(app):
    with app.app_context():
        counters.incr("webhook_events_total", provider='we"ird\\', webhook="a\nb")
        series = next(iter(counters.read_all(connection(app))))
    assert series == 'webhook_events_total{provider="we\\"ird\\\\",webhook="a\\nb"}'
