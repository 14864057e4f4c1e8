"""What happened after the demo blast went out, played back through the real ingest paths.

The outbox has no provider to report back, so the demo plays SendGrid's part: it writes the
Event Webhook batches SendGrid would have posted (processed, deferred, delivered, bounces, opens
with Apple Mail Privacy Protection flagged, clicks, link-scanner clicks, spam reports) and hands
them to the same job the webhook queues (`ingest_sendgrid`), which classifies machine engagement,
moves statuses forward, suppresses bounced addresses and keeps the rollups. Unsubscribes go
through the RFC 8058 one-click path, and petition signatures through the action page's `submit`,
with the blast's token so they are attributed to it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from outreach import db
from outreach.actions import submit as actions
from outreach.actions.forms import Entry
from outreach.actions.models import ActionPage
from outreach.blasts.models import Message
from outreach.contacts.models import Contact
from outreach.tokens import make_token
from outreach.tracking import jobs, unsubscribe

HOUR = 3600
BATCH = 1000  # events per webhook POST, about what SendGrid batches
# Fictitious networks: TEST-NET ranges (RFC 5737) for people, Apple's 17/8 for its proxies.
PEOPLE_IPS = ("203.0.113.", "198.51.100.", "192.0.2.")
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36",
)
SCANNER = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"


@dataclass
class Story:
    """The events the demo writes, and who is to unsubscribe or sign afterwards."""

    events: list[dict[str, Any]] = field(default_factory=list)
    unsubscribers: list[int] = field(default_factory=list)  # message ids
    signers: list[int] = field(default_factory=list)  # message ids that clicked the page link


def tell(messages: list[Any], links: int, now: datetime, rng: random.Random) -> Story:
    """Each sent message's fate: about 96% delivered, 3% bounced, engagement over a day."""
    story = Story()
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    latest = int(now.timestamp()) - 60
    for m in messages:
        sent = int(m.sent_at.timestamp())
        token = make_token(m.id)

        def event(kind: str, at: float, m: Any = m, **detail: Any) -> None:
            story.events.append({
                "event": kind, "email": m.address, "timestamp": min(int(at), latest),
                "sg_event_id": f"demo-{m.id}-{kind}-{len(story.events)}",
                "sg_message_id": f"{m.provider_id}.demo", "outreach_message_id": str(m.id),
                **detail})

        event("processed", sent + 1)
        fate = rng.random()
        if fate < 0.02:
            event("bounce", sent + rng.uniform(3, 60), type="bounce", status="5.1.1",
                  reason="550 5.1.1 The email account that you tried to reach does not exist")
            continue
        if fate < 0.03:
            event("bounce", sent + rng.uniform(3, 60), type="blocked", status="5.7.1",
                  reason="550 5.7.1 Message rejected due to local policy")
            continue
        delivered = sent + rng.uniform(2, 30)
        if fate < 0.10:  # greylisted first, delivered on a later attempt
            event("deferred", delivered, attempt="1", response="451 4.7.1 Try again later")
            delivered += rng.uniform(300, 1800)
        event("delivered", delivered, response="250 2.0.0 OK")
        if rng.random() < 0.35:  # Apple Mail Privacy Protection fetches the pixel at once
            event("open", delivered + rng.uniform(1, 8), sg_machine_open=True,
                  ip=f"17.58.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                  useragent="Mozilla/5.0")
        elif rng.random() < 0.42:
            _human(story, event, rng, delivered, links, base, token, m.id)
        if rng.random() < 0.03:  # a corporate link scanner follows every link on arrival
            for position in range(links):
                event("click", delivered + rng.uniform(0.2, 1.5), useragent=SCANNER,
                      ip=f"198.51.100.{rng.randint(1, 254)}",
                      url=f"{base}/c/{token}/{position}")
        if rng.random() < 0.001:
            event("spamreport", delivered + rng.uniform(HOUR, 6 * HOUR))
        elif rng.random() < 0.008:
            story.unsubscribers.append(m.id)
    story.events.sort(key=lambda e: e["timestamp"])
    return story


def _human(story: Story, event: Any, rng: random.Random, delivered: float, links: int,
           base: str, token: str, message_id: int) -> None:
    """A person opens (maybe twice) hours later, and one in four of them clicks."""
    ip = rng.choice(PEOPLE_IPS) + str(rng.randint(1, 254))
    agent = rng.choice(BROWSERS)
    opened = delivered + min(rng.expovariate(1 / (3 * HOUR)), 22 * HOUR) + 60
    event("open", opened, ip=ip, useragent=agent)
    if rng.random() < 0.3:
        event("open", opened + rng.uniform(600, 4 * HOUR), ip=ip, useragent=agent)
    if rng.random() < 0.27:
        position = 0 if rng.random() < 0.75 or links < 2 else 1
        event("click", opened + rng.uniform(5, 120), ip=ip, useragent=agent,
              url=f"{base}/c/{token}/{position}")
        if position == 0:
            story.signers.append(message_id)


def post_webhooks(story: Story) -> int:
    """Ingest the events in SendGrid-sized batches through the webhook's job; return recorded."""
    recorded = 0
    for start in range(0, len(story.events), BATCH):
        body = json.dumps(story.events[start:start + BATCH])
        recorded += jobs.ingest_sendgrid(body)["recorded"]
    return recorded


def unsubscribe_some(message_ids: list[int], rng: random.Random) -> int:
    """One-click unsubscribes (List-Unsubscribe-Post), as a mail client sends them."""
    session = db.session()
    done = 0
    for message_id in message_ids:
        who = unsubscribe.recipient(session, make_token(message_id))
        if who is not None and not unsubscribe.is_unsubscribed(session, who):
            unsubscribe.unsubscribe(session, who, "one-click",
                                    rng.choice(PEOPLE_IPS) + str(rng.randint(1, 254)))
            done += 1
    return done


def sign_petition(page_id: int, message_ids: list[int], newcomers: list[dict[str, str]],
                  rng: random.Random) -> int:
    """Most readers who clicked through sign; friends they shared it with sign too."""
    session = db.session()
    page = session.get(ActionPage, page_id)
    assert page is not None
    rows = session.execute(sa.select(Message.id, Contact.email, Contact.first_name,
                                     Contact.last_name, Contact.postal_code)
                           .join(Contact, Contact.id == Message.contact_id)
                           .where(Message.id.in_(message_ids))).all()
    entries = [Entry(contact={"email": r.email, "first_name": r.first_name or "",
                              "last_name": r.last_name or "", "postal_code": r.postal_code or ""},
                     answers={"why": rng.choice(REASONS)} if rng.random() < 0.3 else {},
                     token=make_token(r.id), link_position=0)
               for r in rows if rng.random() < 0.6]
    entries += [Entry(contact=person, email_consent=True, source=rng.choice(SHARED_FROM))
                for person in newcomers]
    for entry in entries:
        actions.submit(session, page, entry, rng.choice(PEOPLE_IPS) + str(rng.randint(1, 254)),
                       rng.choice(BROWSERS))
    session.commit()
    return len(entries)


REASONS = ("My kids do their homework there.", "It's the only free internet in the neighborhood.",
           "Story time on Saturdays!", "Libraries are for everyone.")
SHARED_FROM = ("facebook", "whatsapp", "email-forward")

