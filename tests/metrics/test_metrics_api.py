"""The metrics API: a blast's figures equal what was sent and seen, human and machine apart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outreach.emulators.sendgrid import SendGridEmulator
from outreach.emulators.twilio import TwilioEmulator
from outreach.queue import make_worker
from tests.fixtures.app import make_token, run_jobs
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all
from tests.metrics import (
    EXPECTED,
    EXPECTED_LINKS,
    EXPECTED_OUTCOMES,
    P,
    api_get,
    engaged_email_blast,
    hit,
    message_tokens,
    twilio_form,
)
from tests.tracking import backdate, message, sent_sms_blast, twilio_emulator


@pytest.fixture
def emu() -> Iterator[SendGridEmulator]:
    """A running SendGrid emulator."""
    with SendGridEmulator() as emulator:
        yield emulator


@pytest.fixture
def sms_emu() -> Iterator[TwilioEmulator]:
    """A running Twilio emulator."""
    with twilio_emulator() as emulator:
        yield emulator


@pytest.fixture
def viewer(app) -> str:
    """An API token of a viewer."""
    return make_token(app, "viewer")


def test_figures_equal_what_was_sent_and_seen(app, client, emu, viewer):
    blast_id, _ = engaged_email_blast(app, client, emu)
    response = api_get(client, viewer, f"/blasts/{blast_id}/metrics")
    assert response.status_code == 200
    body = response.get_json()
    assert {key: body[key] for key in EXPECTED} == EXPECTED
    assert body["links"] == EXPECTED_LINKS
    assert body["status"] == "done" and body["channel"] == "email" and body["sms"] is None
    # the contract's names and shapes
    for key in ("sent", "delivered", "bounced", "failed", "unsubscribed", "spam_reports"):
        assert isinstance(body[key], int)
    for key in ("opens", "clicks"):
        assert set(body[key]) >= {"unique", "total", "machine"}
    assert all(set(link) >= {"url", "clicks", "unique"} for link in body["links"])


def test_replayed_webhooks_and_repeat_hits_do_not_inflate_unique_counts(app, client, emu,
                                                                         viewer):
    blast_id, tokens = engaged_email_blast(app, client, emu)
    hit(client, f"/o/{tokens[P[0]]}.gif")  # p0 opens a third time: total grows, unique not
    hit(client, f"/c/{tokens[P[1]]}/1")  # p1 clicks link 1 again
    run_jobs(app)
    body = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert body["opens"] == {"unique": 2, "total": 4, "machine": 2}
    assert body["clicks"] == {"unique": 2, "total": 5, "machine": 3}
    assert body["links"][1] == {**EXPECTED_LINKS[1], "clicks": 3}


def test_recipients_by_outcome_with_cursor_pages(app, client, emu, viewer):
    blast_id, _ = engaged_email_blast(app, client, emu)
    for outcome, addresses in EXPECTED_OUTCOMES.items():
        body = api_get(client, viewer,
                       f"/blasts/{blast_id}/metrics/recipients?outcome={outcome}").get_json()
        assert [r["address"] for r in body["data"]] == addresses, outcome
        assert body["next_cursor"] is None
    first = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients?limit=2").get_json()
    assert [r["address"] for r in first["data"]] == P[:2] and first["next_cursor"]
    row = first["data"][0]
    assert (row["opens"], row["clicks"], row["unsubscribed"], row["status"]) == (
        2, 3, False, "delivered")
    assert row["sent_at"].endswith("+00:00")
    seen = [r["address"] for r in first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients?limit=2"
                                       f"&cursor={cursor}").get_json()
        seen += [r["address"] for r in page["data"]]
        cursor = page["next_cursor"]
    assert seen == P
    bad = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients?outcome=lost")
    assert bad.status_code == 422 and "outcome" in bad.get_json()["error"]["details"]
    bad_cursor = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients?cursor=zz")
    assert bad_cursor.status_code == 422


@pytest.mark.parametrize("rare", [False, True])
def test_recipients_pages_of_rare_outcomes(app, client, emu, viewer, monkeypatch, rare):
    if rare:  # read every outcome held by under 5 of the 5 messages the "rare" way
        monkeypatch.setattr("outreach.metrics.recipients.SPARSE_MIN_TOTAL", 0)
        monkeypatch.setattr("outreach.metrics.recipients.SPARSE_SHARE", 1)
    blast_id, _ = engaged_email_blast(app, client, emu)
    for outcome, addresses in EXPECTED_OUTCOMES.items():
        seen, cursor = [], ""
        while True:
            page = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients?limit=1"
                                           f"&outcome={outcome}&cursor={cursor}").get_json()
            seen += [r["address"] for r in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == addresses, outcome


def test_figures_while_the_blast_is_sending_and_after(app, client, viewer):
    list_id = audience(app, 4)
    blast_id = launch_blast(app, email_template(app), [list_id])
    before = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert before["status"] == "preparing" and before["audience"] == 0
    make_worker(app, ["prepare"], simple=True).work(burst=True, logging_level="WARNING")
    during = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert during["status"] == "sending"
    assert (during["audience"], during["sent"], during["pending"]) == (4, 0, 4)
    assert during["click_rate"] is None and during["opens"] == {"unique": 0, "total": 0,
                                                                "machine": 0}
    send_all(app, blast_id)
    backdate(app, blast_id)
    token = message_tokens(app, blast_id)[P[0]]
    hit(client, f"/c/{token}/0")
    run_jobs(app)
    after = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert (after["audience"], after["sent"], after["pending"], after["delivered"]) == (4, 4, 0, 0)
    # no delivery events from the outbox: rates are over sent messages
    assert after["rate_base"] == "sent" and after["click_rate"] == 0.25
    assert after["clicks"] == {"unique": 1, "total": 1, "machine": 0}


def test_sms_segments_cost_and_stop_replies(app, client, sms_emu, viewer):
    app.config["SMS_SEGMENT_PRICE"] = 0.01
    blast_id, _ = sent_sms_blast(app, sms_emu)
    sid = message(app, address="+12125550000").provider_id
    assert twilio_form(client, app, sms_emu, "/webhooks/twilio/status", MessageSid=sid,
                       MessageStatus="delivered", From="+15005550006",
                       To="+12125550000").status_code == 200
    assert twilio_form(client, app, sms_emu, "/webhooks/twilio/inbound", From="+12125550001",
                       Body="STOP").status_code == 200
    assert twilio_form(client, app, sms_emu, "/webhooks/twilio/inbound", From="+12125550002",
                       Body="Who is this?").status_code == 200
    run_jobs(app)
    body = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert (body["sent"], body["delivered"], body["unsubscribed"]) == (3, 1, 1)
    assert body["sms"] == {"segments": 3, "segment_price": 0.01, "currency": "USD",
                           "cost": 0.03}
    assert body["rate_base"] == "delivered"
    unsubscribed = api_get(client, viewer, f"/blasts/{blast_id}/metrics/recipients"
                                           "?outcome=unsubscribed").get_json()["data"]
    assert [r["address"] for r in unsubscribed] == ["+12125550001"]


def test_default_segment_price(app, client, sms_emu, viewer):
    blast_id, _ = sent_sms_blast(app, sms_emu, n=2)
    body = api_get(client, viewer, f"/blasts/{blast_id}/metrics").get_json()
    assert body["sms"]["segment_price"] == 0.0079 and body["sms"]["cost"] == 0.0158


def test_overview(app, client, emu, viewer):
    blast_id, _ = engaged_email_blast(app, client, emu)
    body = api_get(client, viewer, "/metrics/overview?days=7").get_json()
    assert body["days"] == 7 and len(body["growth"]["days"]) == 7
    assert [b["id"] for b in body["recent"]] == [blast_id]
    recent = body["recent"][0]
    assert {k: recent[k] for k in ("sent", "delivered", "unsubscribed", "opens", "clicks")} == {
        k: EXPECTED.get(k) for k in ("sent", "delivered", "unsubscribed", "opens", "clicks")}
    totals = body["totals"]
    assert totals["blasts"] == 1 and totals["sent"] == 5 and totals["click_rate"] == 0.6667
    assert body["growth"]["contacts"][-1] == 5 and body["growth"]["list_joins"][-1] == 5
    # p1's spam report and p2's unsubscribe revoke consent; p3's hard bounce adds a suppression
    assert body["growth_totals"]["opt_outs"] == 2
    assert body["growth_totals"]["suppressions"] == 3
    assert api_get(client, viewer, "/metrics/overview").get_json()["days"] == 30
    for bad in ("0", "366", "x"):
        response = api_get(client, viewer, f"/metrics/overview?days={bad}")
        assert response.status_code == 422, bad


def test_access_and_errors(app, client, emu, viewer):
    blast_id, _ = engaged_email_blast(app, client, emu)
    for path in (f"/blasts/{blast_id}/metrics", f"/blasts/{blast_id}/metrics/recipients",
                 "/metrics/overview"):
        assert api_get(client, None, path).status_code == 401
        assert api_get(client, "not-a-token", path).status_code == 401
        assert api_get(client, viewer, path).status_code == 200
    missing = api_get(client, viewer, "/blasts/9999/metrics")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert api_get(client, viewer, "/blasts/9999/metrics/recipients").status_code == 404


def test_openapi_documents_the_metrics_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    schema = paths["/blasts/{blast_id}/metrics"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert set(schema["required"]) >= {"sent", "delivered", "bounced", "failed", "unsubscribed",
                                       "spam_reports", "opens", "clicks", "links"}
    assert "/blasts/{blast_id}/metrics/recipients" in paths and "/metrics/overview" in paths
