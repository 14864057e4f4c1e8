"""Open pixel and click tracking: signed tokens, stored URLs only, machine hits, the buffer."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from outreach import db
from outreach.blasts.models import Message
from outreach.queue import get_queue, redis
from outreach.tokens import make_token
from outreach.tracking import buffer, machine
from outreach.tracking.buffer import HITS_KEY, flush_hits, write_hits
from outreach.tracking.models import Event
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import audience, email_template, launch_blast, send_all
from tests.tracking import contact, events, rollup_totals, sent_email_blast

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like "
           "Gecko) Version/17.4 Safari/605.1.15")
HOME_IP = {"REMOTE_ADDR": "203.0.113.9"}


def pending(app):
    """Hits waiting in the Redis buffer."""
    with app.app_context():
        return buffer.pending()


def hit(client, path, ua=BROWSER, ip=HOME_IP, method="get", **kwargs):
    """Request a tracking URL like a mail client would."""
    return getattr(client, method)(path, headers={"User-Agent": ua}, environ_base=ip, **kwargs)


def test_open_pixel_records_human_opens_once_flushed(app, client):
    blast_id, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    response = hit(client, f"/o/{token}.gif")
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert len(response.data) == 43 and response.data.startswith(b"GIF89a")
    assert "no-store" in response.headers["Cache-Control"]
    assert "Set-Cookie" not in response.headers
    assert events(app) == [] and pending(app) == 1  # buffered, not written per request
    hit(client, f"/o/{token}.gif")
    run_jobs(app)
    opens = events(app, Event.kind == "open")
    assert len(opens) == 2 and not any(e.machine for e in opens)
    assert opens[0].detail["ip"] == "203.0.113.9" and opens[0].blast_id == blast_id
    assert rollup_totals(app, blast_id) == {("open", -1, False): (2, 1)}
    assert contact(app, email="p0@example.org").last_opened_at is not None
    assert contact(app, email="p1@example.org").last_opened_at is None
    assert pending(app) == 0


def test_forged_or_unknown_tokens_get_404_and_record_nothing(app, client):
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with app.app_context():
        unknown = make_token(987654)  # signed by us, but no such message
        other_secret = make_token(1, secret="not-our-secret")
    for bad in (forged, unknown, other_secret, "x", "A" * 200):
        if bad != unknown:  # our signature: the pixel trusts it with no SQL (below)
            assert hit(client, f"/o/{bad}.gif").status_code == 404
        assert hit(client, f"/c/{bad}/0").status_code == 404
        assert hit(client, f"/c/{bad}/h").status_code == 404
    assert pending(app) == 0
    assert hit(client, f"/o/{unknown}.gif").data.startswith(b"GIF89a")
    run_jobs(app)  # the flush finds no such message and records nothing
    assert events(app) == [] and pending(app) == 0


def test_click_redirects_only_to_the_links_stored_url(app, client):
    blast_id, list_id, tokens = sent_email_blast(app)
    token = tokens["p1@example.org"]
    response = hit(client, f"/c/{token}/0?url=https://evil.example/")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://act.example.org/letter?x=1&y=2"
    assert "no-store" in response.headers["Cache-Control"]
    assert hit(client, f"/c/{token}/1").headers["Location"] == "https://act.example.org/call"
    assert hit(client, f"/c/{token}/2").status_code == 404  # no such link
    assert hit(client, f"/c/{token}/-1").status_code == 404
    # A second blast with a single link: position 1 exists only in the first blast.
    one_link = email_template(app, name="One link",
                              html='<p><a href="https://act.example.org/only">Act</a></p>')
    other = launch_blast(app, one_link, [list_id], name="Other")
    send_all(app, other)
    with app.app_context():
        mid = db.session().scalar(sa.select(Message.id).where(
            Message.blast_id == other, Message.address == "p1@example.org"))
        other_token = make_token(mid)
    assert hit(client, f"/c/{other_token}/0").headers["Location"] == (
        "https://act.example.org/only")
    assert hit(client, f"/c/{other_token}/1").status_code == 404
    run_jobs(app)
    clicks = events(app, Event.kind == "click")
    assert [(e.blast_id, e.link_position) for e in clicks] == [
        (blast_id, 0), (blast_id, 1), (other, 0)]


def test_human_and_machine_clicks(app, client):
    blast_id, _, tokens = sent_email_blast(app)
    a, b = tokens["p0@example.org"], tokens["p1@example.org"]
    hit(client, f"/c/{a}/0")  # a person
    hit(client, f"/c/{a}/0")  # the same person again: total 2, unique 1
    hit(client, f"/c/{a}/1")  # another link: unique for that link, same clicker
    assert hit(client, f"/c/{b}/0", method="head").status_code == 302  # a HEAD probe
    hit(client, f"/c/{b}/0", ua="Mozilla/5.0 (compatible; BingPreview/1.0b)")
    hit(client, f"/c/{b}/0", ua="python-requests/2.32")
    hit(client, f"/c/{b}/1", ua="")
    run_jobs(app)
    reasons = [(e.machine, e.detail.get("reason")) for e in events(app, Event.kind == "click")]
    assert reasons == [(False, None)] * 3 + [(True, "head")] + [(True, "scanner")] * 3
    assert rollup_totals(app, blast_id) == {
        ("click", 0, False): (2, 1), ("click", 1, False): (1, 1), ("clicker", -1, False): (1, 1),
        ("click", 0, True): (3, 0), ("click", 1, True): (1, 0)}
    assert contact(app, email="p0@example.org").last_clicked_at is not None
    assert contact(app, email="p1@example.org").last_clicked_at is None


def test_hits_right_after_sending_are_machine(app, client):
    list_id = audience(app, 2)
    blast_id, _, tokens = sent_email_blast(app, list_id=list_id, age=0)  # just sent
    token = tokens["p0@example.org"]
    hit(client, f"/o/{token}.gif")
    hit(client, f"/c/{token}/0")
    run_jobs(app)  # the flush applies the rule, with the thresholds configured then
    app.config.update(MACHINE_OPEN_SECONDS=0, MACHINE_CLICK_SECONDS=0)
    hit(client, f"/o/{token}.gif")
    hit(client, f"/c/{token}/0")
    run_jobs(app)
    assert [(e.kind, e.machine, e.detail.get("reason")) for e in events(app)] == [
        ("open", True, "too_soon"), ("click", True, "too_soon"),
        ("open", False, None), ("click", False, None)]
    assert rollup_totals(app, blast_id)[("open", -1, True)] == (1, 0)


def test_apple_privacy_proxy_opens_are_machine_but_gmail_proxy_opens_are_human(app, client):
    blast_id, _, tokens = sent_email_blast(app)
    token = tokens["p2@example.org"]
    hit(client, f"/o/{token}.gif", ua="Mozilla/5.0", ip={"REMOTE_ADDR": "17.58.101.7"})
    hit(client, f"/o/{token}.gif", ua="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                                       "(via ggpht.com GoogleImageProxy)",
        ip={"REMOTE_ADDR": "66.249.84.1"})
    run_jobs(app)
    assert [(e.machine, e.detail.get("reason")) for e in events(app)] == [
        (True, "apple_proxy"), (False, None)]
    assert rollup_totals(app, blast_id) == {("open", -1, True): (1, 0),
                                            ("open", -1, False): (1, 1)}


def test_honeypot_hits_are_machine_and_flag_clicks_from_the_same_ip(app, client):
    blast_id, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    response = hit(client, f"/c/{token}/h", ip={"REMOTE_ADDR": "198.51.100.4"})
    assert response.status_code == 200 and response.data == b""
    hit(client, f"/c/{token}/0", ip={"REMOTE_ADDR": "198.51.100.4"})  # the scanner again
    hit(client, f"/c/{token}/1")  # the person, from elsewhere
    run_jobs(app)
    assert [(e.link_position, e.machine, e.detail.get("reason")) for e in events(app)] == [
        (-1, True, "honeypot"), (0, True, "honeypot_ip"), (1, False, None)]
    assert rollup_totals(app, blast_id)[("click", -1, True)] == (1, 0)


def test_machine_rules():
    assert machine.is_apple_proxy("17.0.0.1") and not machine.is_apple_proxy("170.0.0.1")
    assert not machine.is_apple_proxy("not an ip") and not machine.is_apple_proxy(None)
    assert machine.classify_open("10.0.0.1", BROWSER, 3600) is None
    assert machine.classify_open("10.0.0.1", "Barracuda Sentinel", 3600) == "scanner"
    assert machine.classify_open("10.0.0.1", BROWSER, 0.5) == "too_soon"
    assert machine.classify_open("10.0.0.1", BROWSER, 0.5, threshold=0) is None
    assert machine.classify_click("GET", "Mozilla/5.0 HeadlessChrome/120", 60) == "scanner"
    assert machine.classify_click("GET", BROWSER, None) is None
    clicks = [{"m": 1, "ip": "a", "p": p, "t": 100.0 + p, "x": False, "r": None}
              for p in (0, 1, 2)]
    lone = {"m": 2, "ip": "a", "p": 0, "t": 100.0, "x": False, "r": None}
    slow = [{"m": 3, "ip": "b", "p": p, "t": 100.0 + 60 * p, "x": False, "r": None}
            for p in (0, 1, 2)]
    assert machine.flag_bursts([*clicks, lone, *slow]) == 3
    assert all(c["x"] and c["r"] == "burst" for c in clicks)
    assert not lone["x"] and not any(c["x"] for c in slow)


def test_a_burst_of_hits_is_buffered_then_written_exactly(app, client):
    blast_id, _, tokens = sent_email_blast(app, n=5)
    sent = {"open": 0, "click": 0, "machine": 0}
    addresses = sorted(tokens)
    for i in range(500):
        token = tokens[addresses[i % 5]]
        ua = "curl/8.5" if i % 7 == 0 else BROWSER
        if i % 3 == 0:
            hit(client, f"/o/{token}.gif", ua=ua)
            sent["open"] += 1
        else:
            hit(client, f"/c/{token}/{i % 2}", ua=ua)
            sent["click"] += 1
        sent["machine"] += ua != BROWSER
    assert pending(app) == 500
    with app.app_context():
        assert get_queue("events").count < 10  # at most about one flush job per second
    with app.app_context():
        assert flush_hits(batch_size=64) == 500
    run_jobs(app)  # the queued flush jobs find nothing left
    assert pending(app) == 0
    stored = events(app)
    assert len(stored) == 500 and sum(e.machine for e in stored) == sent["machine"]
    totals = rollup_totals(app, blast_id)
    assert sum(t for (k, _, _), (t, _) in totals.items() if k == "open") == sent["open"]
    assert sum(t for (k, _, _), (t, _) in totals.items() if k == "click") == sent["click"]
    assert sum(t for (k, _, m), (t, _) in totals.items() if m) == sent["machine"]
    assert totals[("open", -1, False)][1] == 5 and totals[("clicker", -1, False)] == (5, 5)
    assert totals[("click", 0, False)][1] == 5 and totals[("click", 1, False)][1] == 5


def test_a_batch_written_twice_counts_once(app, client):
    """A crash between commit and trim re-reads the batch: hit uuids make it harmless."""
    blast_id, _, tokens = sent_email_blast(app)
    with app.app_context():
        mid = db.session().scalar(sa.select(Message.id).where(Message.blast_id == blast_id)
                                  .order_by(Message.id).limit(1))
    raw = [json.dumps({"id": uuid.uuid4().hex, "k": "open", "m": mid, "p": None, "t": 1.7e9,
                       "x": False, "r": None, "ip": "203.0.113.1", "ua": BROWSER}).encode()
           for _ in range(3)] + [b"not json", json.dumps({"k": "open"}).encode()]
    with app.app_context():
        assert write_hits(raw) == 3
        assert write_hits(raw) == 0
        redis().rpush(HITS_KEY, *raw)
        assert flush_hits() == 5
    assert len(events(app)) == 3
    assert rollup_totals(app, blast_id) == {("open", -1, False): (3, 1)}
