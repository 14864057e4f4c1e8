"""Webhook storms: the same SendGrid events posted twice, shuffled, concurrently, must leave
exactly what one ordered delivery leaves (issue #7).

Two identical sent blasts to two disjoint sets of contacts get the same event stories. The
"ordered" blast's events are ingested once, oldest first, batch after batch. The "storm"
blast's events are posted twice over real HTTP, each copy shuffled and cut into signed
batches of 1,000, from several threads at once, then ingested by several real RQ worker
processes at once. Statuses, errors, delivery times, engagement dates, consents,
suppressions, events and rollups must match contact for contact. Each story has events out
of order in time (delivered before processed, opens before delivered, a bounce after
delivered), so a status that moved back or a unique counted twice shows up as a difference.

Size: OUTREACH_STORM_EVENTS events per copy (default 10,000: 20 batches posted and ingested
concurrently, enough to prove the point under `make test`; the issue's 100,000 with
OUTREACH_STORM_EVENTS=100000).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import urllib.request
from collections import Counter
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from outreach import db
from outreach.blasts.models import Blast, Link, Message
from outreach.contacts.models import ConsentEvent, Contact, Suppression
from outreach.db import utcnow
from outreach.emulators.sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridEmulator
from outreach.queue import get_queue, make_worker
from outreach.tracking import jobs
from outreach.tracking.models import Event, Rollup
from tests.fixtures.blasts import email_template
from tests.tracking import serve

EVENTS = int(os.environ.get("OUTREACH_STORM_EVENTS", "10000"))
BATCH = 1000
WORKERS = 3
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def seed_blast(app: Flask, prefix: str, count: int) -> tuple[int, list[int]]:
    """A sent email blast to `count` new consenting contacts; (blast id, message ids)."""
    template_id = email_template(app, name=f"Storm {prefix}")
    sent = utcnow() - timedelta(hours=6)
    with app.app_context(), db.transaction() as session:
        blast_id = session.execute(sa.insert(Blast.__table__).values(
            name=f"storm {prefix}", channel="email", template_id=template_id, status="done",
            total=count).returning(Blast.__table__.c.id)).scalar_one()
        session.execute(sa.insert(Link.__table__), [
            {"blast_id": blast_id, "position": p, "url": f"https://example.org/{p}"}
            for p in range(2)])
        session.execute(sa.insert(Contact.__table__), [
            {"email": f"{prefix}{i}@example.org", "email_consent": "granted"}
            for i in range(count)])
        ids = dict(session.execute(sa.select(Contact.email, Contact.id)
                                   .where(Contact.email.like(f"{prefix}%"))).all())
        session.execute(sa.insert(Message.__table__), [
            {"blast_id": blast_id, "contact_id": ids[f"{prefix}{i}@example.org"],
             "address": f"{prefix}{i}@example.org", "status": "sent", "sent_at": sent,
             "provider_id": f"{prefix}x{i}"} for i in range(count)])
        messages = list(session.scalars(sa.select(Message.id).where(Message.blast_id == blast_id)
                                        .order_by(Message.id)))
    return blast_id, messages


def stories(count: int, seed: int = 7) -> list[tuple[int, int, str, dict[str, Any]]]:
    """(message index, seconds after the start, kind, extra) for at least count events."""
    rng = random.Random(seed)
    out: list[tuple[int, int, str, dict[str, Any]]] = []
    i = 0
    while len(out) < count:
        t = rng.randrange(0, 3 * 3600)  # over three hours: rollups per hour differ
        out.append((i, t + 5, "processed", {}))  # after "delivered" half the time
        roll = rng.random()
        if roll < 0.03:
            out.append((i, t, "dropped", {"reason": "Bounced Address", "status": "5.0.0"}))
        elif roll < 0.08:
            blocked = roll < 0.05
            out.append((i, t + 30, "bounce", {
                "type": "blocked" if blocked else "bounce", "status": "5.1.1",
                "reason": "550 5.1.1 no such user"}))
        else:
            out.append((i, t + rng.choice((0, 20)), "delivered", {"response": "250 OK"}))
            if rng.random() < 0.05:  # an asynchronous bounce after delivery
                out.append((i, t + 4000, "bounce", {"type": "bounce", "status": "5.1.1",
                                                    "reason": "550 mailbox gone"}))
            for k in range(rng.choice((0, 0, 1, 2, 3))):
                out.append((i, t + rng.randrange(-10, 7200), "open", {
                    "useragent": UA, "ip": "203.0.113.9",
                    "sg_machine_open": k == 0 and rng.random() < 0.2}))
            for _ in range(rng.choice((0, 0, 0, 1, 2))):
                position = rng.randrange(2)
                out.append((i, t + rng.randrange(60, 7200), "click", {
                    "useragent": UA, "ip": "203.0.113.9",
                    "url": f"https://t.example.org/c/tok{i}/{position}"}))
            if rng.random() < 0.01:
                out.append((i, t + 7300, rng.choice(("unsubscribe", "spamreport",
                                                      "group_unsubscribe")), {}))
        i += 1
    return out[:count]


def events_for(story: list[tuple[int, int, str, dict[str, Any]]], prefix: str,
               messages: list[int], start: int) -> list[dict[str, Any]]:
    """The SendGrid events of the stories for one blast's messages."""
    return [{"email": f"{prefix}{i}@example.org", "timestamp": start + t, "event": kind,
             "sg_event_id": f"{prefix}-{n}", "sg_message_id": f"{prefix}x{i}.filter.0",
             "outreach_message_id": str(messages[i]), **extra}
            for n, (i, t, kind, extra) in enumerate(story)]


def post(url: str, emu: SendGridEmulator, batch: list[dict[str, Any]]) -> int:
    """POST one signed batch; the HTTP status."""
    body = json.dumps(batch).encode()
    signature, timestamp = emu.sign(body)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: signature,
        TIMESTAMP_HEADER: timestamp})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def _work(app: Flask) -> None:
    """A worker process: drain the events queue, then exit."""
    make_worker(app, ["events"], simple=True).work(burst=True, logging_level="WARNING")


def outcome(app: Flask, blast_id: int, prefix: str) -> dict[str, Any]:
    """Everything the events changed, keyed by message index so two blasts compare."""
    index = len(prefix)
    with app.app_context():
        session = db.session()
        messages = {m.address[index:]: (m.status, m.error, m.error_code, m.delivered_at)
                    for m in session.scalars(sa.select(Message)
                                             .where(Message.blast_id == blast_id))}
        contacts = {c.email[index:]: (c.email_consent, c.last_opened_at, c.last_clicked_at)
                    for c in session.scalars(sa.select(Contact)
                                             .where(Contact.email.like(f"{prefix}%")))}
        ledger = Counter(e.split("@")[0][index:] for e in session.scalars(
            sa.select(Contact.email).join(ConsentEvent, ConsentEvent.contact_id == Contact.id)
            .where(Contact.email.like(f"{prefix}%"))))
        suppressed = {s.address[index:]: s.reason for s in session.scalars(
            sa.select(Suppression).where(Suppression.address.like(f"{prefix}%")))}
        events = Counter((e.kind, e.machine, e.link_position) for e in session.scalars(
            sa.select(Event).where(Event.blast_id == blast_id)))
        hourly = {(r.kind, r.link_position, r.hour, r.machine): r.total
                  for r in session.scalars(sa.select(Rollup).where(Rollup.blast_id == blast_id))}
        unique = Counter()
        for r in session.scalars(sa.select(Rollup).where(Rollup.blast_id == blast_id)):
            unique[(r.kind, r.link_position, r.machine)] += r.unique_count
    return {"messages": messages, "contacts": contacts, "ledger": ledger,
            "suppressed": suppressed, "events": events, "hourly totals": hourly,
            "unique": +unique}


def test_storm_of_shuffled_duplicates_equals_one_ordered_delivery(app):
    emu = SendGridEmulator()
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = emu.public_key_b64
    story = stories(EVENTS)
    count = max(i for i, _, _, _ in story) + 1
    ordered_id, ordered_messages = seed_blast(app, "o", count)
    storm_id, storm_messages = seed_blast(app, "s", count)
    start = int((utcnow() - timedelta(hours=5)).timestamp())

    # One ordered delivery, oldest first, batch after batch.
    ordered = sorted(events_for(story, "o", ordered_messages, start),
                     key=lambda e: (e["timestamp"], e["sg_event_id"]))
    with app.app_context():
        for part in range(0, len(ordered), BATCH):
            jobs.ingest_sendgrid(json.dumps(ordered[part:part + BATCH]))

    # The storm: two shuffled copies, interleaved, posted by four threads at once ...
    storm = events_for(story, "s", storm_messages, start)
    batches = []
    for seed in (1, 2):
        copy = storm[:]
        random.Random(seed).shuffle(copy)
        batches.append([copy[p:p + BATCH] for p in range(0, len(copy), BATCH)])
    queue = [b for pair in zip(*batches, strict=True) for b in pair]
    statuses: list[int] = []
    with serve(app) as base:
        def sender() -> None:
            while queue:
                try:
                    batch = queue.pop()
                except IndexError:
                    return
                statuses.append(post(f"{base}/webhooks/sendgrid", emu, batch))

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 2 * len(batches[0])
    # ... then ingested by several worker processes at once.
    app.extensions["db_engine"].dispose()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_work, args=(app,)) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=900)
    assert [w.exitcode for w in workers] == [0] * WORKERS
    with app.app_context():
        assert get_queue("events").count == 0
        assert get_queue("events").failed_job_registry.count == 0

    expected, got = outcome(app, ordered_id, "o"), outcome(app, storm_id, "s")
    assert sum(expected["events"].values()) == len(story)
    for part in expected:
        if part != "suppressed":
            assert got[part] == expected[part], part
    # The same addresses are suppressed; one with two causes (a late bounce, then an
    # unsubscribe) keeps the reason that arrived first, as a suppression always does.
    assert set(got["suppressed"]) == set(expected["suppressed"])
    causes = Counter(f"{i}@example.org" for i, _, kind, extra in story
                     if kind in ("dropped", "unsubscribe", "spamreport", "group_unsubscribe")
                     or (kind == "bounce" and extra["type"] == "bounce"))
    assert {a: r for a, r in got["suppressed"].items() if causes[a] == 1} == {
        a: r for a, r in expected["suppressed"].items() if causes[a] == 1}
    # What the stories say, out of order or not: a late bounce wins, nothing moves back.
    final = {}
    for i, _, kind, _extra in sorted(story, key=lambda s: s[1]):
        target = {"delivered": "delivered", "dropped": "failed", "bounce": "bounced"}.get(kind)
        if target and final.get(i) not in ("bounced", "failed"):
            final[i] = target
    assert Counter(s for s, *_ in got["messages"].values()) == Counter(
        {**Counter(final.values()), "sent": count - len(final)})
    assert got["unique"][("delivered", -1, False)] == len(
        {i for i, _, kind, _ in story if kind == "delivered"})
