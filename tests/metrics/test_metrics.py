"""Metrics pages and queries: figures, chart data, links, recipients, CSV, overview, replies."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Blast, Message
from outreach.contacts.models import Contact, Suppression
from outreach.db import utcnow
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.metrics import recipients as recipients_service
from outreach.metrics import service
from outreach.tracking.models import Rollup
from tests.fixtures.blasts import audience
from tests.metrics import EXPECTED, EXPECTED_OUTCOMES, P, engaged_email_blast, twilio_form
from tests.tracking import sent_email_blast, twilio_emulator, use_twilio

FIGURE_RE = re.compile(r'data-figure="(\w+)">([\d,]+)<')
ISLAND_RE = re.compile(r'<script type="application/json" id="([\w-]+)">(.*?)</script>', re.S)
RECIPIENT_RE = re.compile(r'<td data-label="Recipient">(?:<a [^>]*>)?([^<]+)<')


@pytest.fixture
def emu() -> Iterator[SendGridEmulator]:
    """A running SendGrid emulator."""
    with SendGridEmulator() as emulator:
        yield emulator


def figures_on(html: str) -> dict[str, int]:
    """{figure key: number} of the page's figure cards."""
    return {key: int(value.replace(",", "")) for key, value in FIGURE_RE.findall(html)}


def islands(html: str) -> dict[str, dict]:
    """The page's JSON data islands by id."""
    return {key: json.loads(text) for key, text in ISLAND_RE.findall(html)}


def shown_recipients(html: str) -> list[str]:
    """The addresses in the recipients table."""
    return [address.strip() for address in RECIPIENT_RE.findall(html)]


def csv_rows(response) -> list[dict[str, str]]:
    """A CSV download's rows as dicts."""
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_blast_page_shows_the_figures_chart_and_links(app, client, auth, emu):
    blast_id, _ = engaged_email_blast(app, client, emu)
    auth.login("viewer")
    page = client.get(f"/blasts/{blast_id}/metrics")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert figures_on(html) == {k: EXPECTED[k] for k in (
        "audience", "sent", "delivered", "bounced", "failed", "unknown", "unsubscribed",
        "spam_reports")}
    assert "1 hard · 1 soft" in html
    assert 'id="click-rate">66.7%<' in html and 'id="click-to-open-rate">100.0%<' in html
    chart = islands(html)["timeline-data"]
    sums = {d["key"]: sum(d["data"]) for d in chart["datasets"]}
    assert sums == {"opens_human": 3, "opens_machine": 2, "clicks_human": 4,
                    "clicks_machine": 3}
    assert len(chart["labels"]) == len(chart["datasets"][0]["data"]) >= 1
    assert "vendor/chart.js/chart.umd.js" in html and "js/metrics-charts.js" in html
    assert "https://act.example.org/call" in html and "honeypot" in html
    assert shown_recipients(html) == P
    assert f'href="/blasts/{blast_id}/metrics/recipients.csv"' in html
    nav = client.get("/").get_data(as_text=True)
    assert 'href="/metrics"' in nav and 'href="/replies"' in nav


def test_pages_need_a_signed_in_viewer(app, client, auth):
    list_id = audience(app, 1)
    blast_id, _, _ = sent_email_blast(app, list_id=list_id)
    paths = (f"/blasts/{blast_id}/metrics", f"/blasts/{blast_id}/metrics/recipients.csv",
             "/metrics", "/replies")
    for path in paths:
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    auth.login("viewer")
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert client.get("/blasts/9999/metrics").status_code == 404
    assert client.get("/blasts/9999/metrics/recipients.csv").status_code == 404


def test_recipients_filter_and_pages(app, client, auth, emu, monkeypatch):
    blast_id, _ = engaged_email_blast(app, client, emu)
    auth.login("viewer")
    for outcome, addresses in EXPECTED_OUTCOMES.items():
        html = client.get(f"/blasts/{blast_id}/metrics?outcome={outcome}").get_data(
            as_text=True)
        assert shown_recipients(html) == addresses, outcome
        if outcome:
            assert f'<option value="{outcome}" selected>' in html
            assert f"recipients.csv?outcome={outcome}" in html
    monkeypatch.setattr("outreach.metrics.views.PAGE_SIZE", 2)  # the app imported it
    html = client.get(f"/blasts/{blast_id}/metrics").get_data(as_text=True)
    assert shown_recipients(html) == P[:2]
    seen, pages = list(P[:2]), 1
    while (match := re.search(r'href="([^"]+after=\d+)#recipients" rel="next"', html)):
        html = client.get(match.group(1).replace("&amp;", "&")).get_data(as_text=True)
        seen += shown_recipients(html)
        pages += 1
    assert seen == P and pages == 3
    assert client.get(f"/blasts/{blast_id}/metrics?outcome=nope").status_code == 400


def test_csv_export(app, client, auth, emu):
    blast_id, _ = engaged_email_blast(app, client, emu)
    with app.app_context(), db.transaction() as session:
        session.execute(sa.update(Contact).where(Contact.email == P[0])
                        .values(first_name="=HYPERLINK(\"http://evil\")"))
    auth.login("viewer")
    response = client.get(f"/blasts/{blast_id}/metrics/recipients.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="blast-{blast_id}-recipients.csv"')
    rows = csv_rows(response)
    assert [r["address"] for r in rows] == P
    assert list(rows[0]) == list(recipients_service.CSV_COLUMNS)
    first = rows[0]
    assert first["first_name"] == "'=HYPERLINK(\"http://evil\")"  # not a formula
    assert (first["status"], first["opens"], first["clicks"], first["unsubscribed"]) == (
        "delivered", "2", "3", "0")
    assert rows[2]["unsubscribed"] == "1" and rows[3]["status"] == "bounced"
    assert "550 5.1.1" in rows[3]["error"]
    for outcome, addresses in EXPECTED_OUTCOMES.items():
        response = client.get(f"/blasts/{blast_id}/metrics/recipients.csv?outcome={outcome}")
        assert [r["address"] for r in csv_rows(response)] == addresses, outcome
    assert client.get(f"/blasts/{blast_id}/metrics/recipients.csv?outcome=x").status_code == 400


def test_csv_stream_never_holds_a_transaction_open(app, client, auth, monkeypatch):
    if app.extensions["db_engine"].dialect.name != "postgresql":
        pytest.skip("checks PostgreSQL's pg_stat_activity")
    list_id = audience(app, 5)
    blast_id, _, _ = sent_email_blast(app, list_id=list_id)
    auth.login("viewer")
    monkeypatch.setattr(recipients_service, "CSV_CHUNK", 2)
    response = client.get(f"/blasts/{blast_id}/metrics/recipients.csv", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"message_id,")
    assert next(chunks).count(b"\r\n") == 2  # the first chunk, mid-stream
    engine = sa.create_engine(app.config["DATABASE_URL"])
    with engine.connect() as conn:
        idle = conn.scalar(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))
    engine.dispose()
    assert idle == 0
    rest = b"".join(chunks)
    assert rest.count(b"\r\n") == 3
    response.close()


def test_hard_bounces_come_from_suppressions_too(app):
    list_id = audience(app, 3)
    blast_id, _, _ = sent_email_blast(app, list_id=list_id)
    with app.app_context(), db.transaction() as session:
        session.execute(sa.update(Message).where(Message.blast_id == blast_id,
                                                 Message.address.in_(P[:2]))
                        .values(status="bounced"))
        session.add(Suppression(channel="email", address=P[0], reason="hard_bounce"))
        session.add(Suppression(channel="sms", address=P[1], reason="hard_bounce"))  # other
    with app.app_context():
        session = db.session()
        metrics = service.blast_metrics(session, session.get(Blast, blast_id))
    assert metrics["bounced"] == 2 and metrics["bounces"] == {"hard": 1, "soft": 1}
    assert metrics["sent"] == 3


def test_long_timelines_are_drawn_per_day(app):
    list_id = audience(app, 1)
    blast_id, _, _ = sent_email_blast(app, list_id=list_id)
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=20)
    with app.app_context(), db.transaction() as session:
        session.execute(sa.update(Blast).where(Blast.id == blast_id).values(launched_at=start))
        for offset, kind, machine, total in ((0, "open", False, 2), (1, "open", True, 5),
                                             (24 * 20, "click", False, 3)):
            session.add(Rollup(blast_id=blast_id, link_position=-1 if kind == "open" else 0,
                               hour=start + timedelta(hours=offset), kind=kind,
                               machine=machine, total=total, unique_count=0))
    with app.app_context():
        session = db.session()
        chart = service.timeline(session, session.get(Blast, blast_id))
    assert chart["unit"] == "day" and len(chart["labels"]) == 21
    assert chart["opens_human"][0] == 2 and chart["opens_machine"][0] == 5
    assert chart["clicks_human"][-1] == 3 and sum(chart["clicks_human"]) == 3


def test_overview_page(app, client, auth, emu):
    engaged_email_blast(app, client, emu)
    auth.login("viewer")
    html = client.get("/metrics?days=7").get_data(as_text=True)
    assert "Test blast" in html and "The last 7 days" in html
    assert 'aria-current="true">7 days<' in html
    assert "66.7%" in html and "60.0%" in html and "20.0%" in html
    growth = islands(html)["growth-data"]
    assert len(growth["labels"]) == 7
    assert {d["key"]: sum(d["data"]) for d in growth["datasets"]} == {
        "contacts": 5, "list_joins": 5, "opt_outs": 2, "suppressions": 3}
    assert client.get("/metrics?days=abc").status_code == 200  # falls back to 30 days


def test_replies_page(app, client, auth):
    audience(app, 2)
    with twilio_emulator() as emu:
        use_twilio(app, emu)
        for phone, body in (("+12125550000", "Hello, can I volunteer?"),
                            ("+12125550001", "HELP"), ("+12125559999", "stop")):
            assert twilio_form(client, app, emu, "/webhooks/twilio/inbound", From=phone,
                               Body=body).status_code == 200
    with app.app_context():
        contact_id = db.session().scalar(sa.select(Contact.id).where(
            Contact.phone == "+12125550000"))
    auth.login("viewer")
    html = client.get("/replies").get_data(as_text=True)
    table = html[html.index("<tbody>"):]
    assert table.index("+12125559999") < table.index(">HELP<") < table.index("can I volunteer")
    assert f'href="/contacts/{contact_id}"' in html and "(no contact)" in html
    only = client.get("/replies?kind=replies").get_data(as_text=True)
    assert "can I volunteer" in only and "+12125559999" not in only
    stops = client.get("/replies?kind=stop").get_data(as_text=True)
    assert "+12125559999" in stops and "can I volunteer" not in stops


def test_derived_status_counts_agree_with_a_full_count(app, client, emu):
    import json
    import time

    from outreach import slow_counts
    from outreach.metrics import counts
    from outreach.queue import redis

    blast_id, _ = engaged_email_blast(app, client, emu)  # 3 delivered, 2 bounced of 5
    with app.app_context():
        session = db.session()
        blast = session.get(Blast, blast_id)
        full = counts._count(session, [blast_id])[blast_id]
        assert full["delivered"] == 3 and full["total"] == 5
        for delivered_events in (3, 0):  # derive "delivered", then "sent", from the total
            fast = counts.status_counts(session, [blast], {blast_id: delivered_events})
            assert {k: fast[blast_id][k] for k in full} == full
        blast.total = 1  # fewer than the other statuses add up to: every status is counted
        fast = counts.status_counts(session, [blast], {blast_id: 3})
        assert {k: fast[blast_id][k] for k in full} == full
        blast.total, blast.status = 5, "sending"  # the largest is guessed from the last count
        key = slow_counts.PREFIX + f"blast:{blast_id}:sending"
        for largest in (None, "queued", "bounced", "delivered"):  # no hint, wrong, right
            if largest:
                redis().set(key, json.dumps({"value": {largest: 5}, "until": time.time() - 1}))
            fast = counts.status_counts(session, [blast], {})
            assert {k: fast[blast_id][k] for k in full} == full, largest
        session.rollback()


def test_sms_blast_page_shows_segments_and_cost(app, client, auth):
    from tests.tracking import sent_sms_blast

    app.config["SMS_SEGMENT_PRICE"] = "0.05"  # as an environment variable would give it
    with twilio_emulator() as emu:
        blast_id, _ = sent_sms_blast(app, emu)
    auth.login("viewer")
    html = client.get(f"/blasts/{blast_id}/metrics").get_data(as_text=True)
    assert 'id="sms-segments">3<' in html and 'id="sms-cost">0.15 USD<' in html
    assert 'id="row-opens"' not in html and 'data-figure="spam_reports"' not in html
    assert figures_on(html)["sent"] == 3 and "No clicks yet." in html


def test_hard_bounces_from_events_or_suppressions(app, client, emu):
    from outreach.metrics.bounces import count_hard_bounces, hard_bounces

    blast_id, _ = engaged_email_blast(app, client, emu)  # p3 bounced, p4 blocked
    with app.app_context():
        session = db.session()
        blast = session.get(Blast, blast_id)
        assert count_hard_bounces(session, blast) == hard_bounces(session, blast, 2) == 1
        # an admin lifts p3's suppression: SendGrid's type "bounce" still makes it hard
        session.execute(sa.delete(Suppression).where(Suppression.address == P[3]))
        assert count_hard_bounces(session, blast) == 1
        # p4 was only blocked, but staff suppress it as a hard bounce
        session.add(Suppression(channel="email", address=P[4], reason="hard_bounce"))
        session.flush()
        assert count_hard_bounces(session, blast) == 2
        assert hard_bounces(session, blast, 2) == 1  # memoized for this bounced count
        session.rollback()
