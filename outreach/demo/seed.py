"""Seeding the demo: supporters, templates, an action page and one finished email blast.

Everything goes through the real services (the import, the template and blast services, the
send pipeline on an RQ worker with the outbox channel, the webhook and unsubscribe paths), so
the pages show data that is consistent the way production data is: statuses, rollups,
suppressions and the consent ledger agree with each other.
"""

from __future__ import annotations

import io
import random
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from outreach import db
from outreach.accounts.models import User
from outreach.actions.models import ActionPage
from outreach.actions.service import save_page
from outreach.blasts import pipeline
from outreach.blasts import service as blasts
from outreach.blasts.models import Blast, Message, MessageStatus
from outreach.channels.models import OutboxEmail
from outreach.contacts.imports import create_import, run_import
from outreach.contacts.models import ConsentEvent, Contact, ContactList, Import, ListMember
from outreach.content.models import MessageTemplate, TemplateVersion
from outreach.content.service import save_template
from outreach.db import utcnow
from outreach.demo import engagement
from outreach.demo.people import supporters_csv
from outreach.exceptions import Conflict
from outreach.queue import make_worker

DEMO_LIST = "Demo: Riverside supporters"
DEMO_SLUG = "save-riverside-library"
DEMO_BLAST = "Library vote: sign the petition"
DEMO_SIZE = 2000
SENT_AGO = timedelta(hours=26)  # the blast went out yesterday: a day of engagement to show
IMPORTED_AGO = timedelta(days=3)


class DemoRefused(Conflict):
    """The database holds someone's data: the demo will not mix fictitious people into it."""


@dataclass
class DemoSummary:
    """What the seed created, for the terminal and the tests."""

    contacts: int
    list_id: int
    blast_id: int
    page_slug: str
    sent: int
    events: int
    unsubscribed: int
    signatures: int


def demo_present(session: Any) -> bool:
    """True when the demo was seeded before (its list exists)."""
    found = session.scalar(sa.select(ContactList.id).where(ContactList.name == DEMO_LIST))
    return found is not None


def demo_blast_id(session: Any) -> int | None:
    """The demo blast's id, when the demo is there."""
    if not demo_present(session):
        return None
    return session.scalar(sa.select(Blast.id).where(Blast.name == DEMO_BLAST).order_by(Blast.id))


def has_data(session: Any) -> bool:
    """True when there are contacts, templates, blasts or action pages (staff users don't count)."""
    return any(session.scalar(sa.select(sa.func.count()).select_from(model))
               for model in (Contact, MessageTemplate, Blast, ActionPage))


def seed_demo(app: Flask, size: int | None = None, seed: int = 2026, force: bool = False,
              production_ok: bool = False) -> DemoSummary | None:
    """Seed the demo once; None when it is there already. Refuses other data unless forced.

    `production_ok` is for `outreach dev`, which is asked for explicitly even when a
    DATABASE_URL makes the environment default to production.
    """
    rng = random.Random(seed)
    size = size or DEMO_SIZE
    with app.app_context():
        session = db.session()
        if demo_present(session):
            return None
        if not force and has_data(session):
            raise DemoRefused("The database already holds contacts, templates, blasts or "
                              "action pages; the demo only seeds an empty one (--force to add "
                              "it anyway).")
        if not (force or production_ok) and app.config.get("OUTREACH_ENV") == "production":
            raise DemoRefused("OUTREACH_ENV is production: fictitious supporters with consent "
                              "would be messaged by real blasts (set OUTREACH_ENV=development, "
                              "or --force to seed anyway).")
        actor = session.scalar(sa.select(User.id).where(User.role == "admin").order_by(User.id))
        list_id, contacts = _import_supporters(session, size, rng, actor)
        page_id = _action_page(session, list_id, actor)
        email_id, _ = _templates(session, app, actor)
        blast_id = _send_blast(app, session, email_id, list_id, actor)
        _backdate(session, blast_id)
        messages = session.execute(sa.select(
            Message.id, Message.address, Message.sent_at, Message.provider_id)
            .where(Message.blast_id == blast_id, Message.status == MessageStatus.SENT.value)
            .order_by(Message.id)).all()
        story = engagement.tell(list(messages), links=2, now=utcnow(), rng=rng)
        recorded = engagement.post_webhooks(story)
        unsubscribed = engagement.unsubscribe_some(story.unsubscribers, rng)
        newcomers = [{"email": f"friend{i}@example.com", "first_name": rng.choice(FRIENDS),
                      "postal_code": "10027"} for i in range(max(1, size // 50))]
        signatures = engagement.sign_petition(page_id, story.signers, newcomers, rng)
        return DemoSummary(contacts, list_id, blast_id, DEMO_SLUG, len(messages), recorded,
                           unsubscribed, signatures)


FRIENDS = ["Alex", "Bea", "Carmen", "Dev", "Eli", "Femi", "Gus", "Hana"]


def _import_supporters(session: Any, size: int, rng: random.Random,
                       actor: int | None) -> tuple[int, int]:
    """The sign-up sheet, imported with email and SMS consent as an organizer would."""
    imp = create_import(session, io.BytesIO(supporters_csv(size, rng)), "riverside-signups.csv",
                        DEMO_LIST, "add", "email,sms",
                        "Demo: paper sign-up sheet at the Riverside rally (fictitious people)",
                        actor_id=actor)
    session.commit()
    run_import(imp.id)
    session.expire_all()
    done = session.get(Import, imp.id)
    assert done is not None and done.status == "done", getattr(done, "error", None)
    return int(done.list_id or 0), int(done.created)


def _action_page(session: Any, list_id: int, actor: int | None) -> int:
    """A published petition that adds signers to the demo list."""
    page = save_page(session, {
        "slug": DEMO_SLUG, "kind": "petition", "title": "Keep Riverside Library open on Sundays",
        "intro": "The city plans to close our library on Sundays. Sign to tell the council that "
                 "families, students and job seekers need it open seven days a week.",
        "button_text": "Sign the petition", "petition_goal": 500, "published": True,
        "list_id": list_id,
        "thank_you_text": "Thank you! Now ask two neighbors to sign.", "share_step": True,
        "email_consent_text": "Email me about the library campaign. Unsubscribe at any time.",
        "fields": {"questions": [{"key": "why", "label": "Why does the library matter to you?",
                                  "required": False}]},
    }, actor_id=actor)
    session.commit()
    return page.id


EMAIL_HTML = """<html><head><style>
  body { font-family: Georgia, serif; color: #222; } .cta { background: #0b6e4f; color: #fff;
  padding: 12px 20px; text-decoration: none; border-radius: 4px; }
</style></head><body>
<p>Hi {{ first_name | default("neighbor") }},</p>
<p>The city council votes on Thursday to close Riverside Library on Sundays. For many of us in
{{ fields.neighborhood | default("Riverside") }} it is the only quiet place to study, print a
résumé or get online.</p>
<p><a class="cta" href="{{BASE}}/a/{{SLUG}}">Sign the petition</a></p>
<p>Can you come to the hearing? <a href="https://www.example.org/hearing">Thursday, 6 p.m.,
City Hall, room 2</a>.</p>
<p>Thank you,<br>The Riverside Library Friends</p>
</body></html>"""
SMS_BODY = ("{{ first_name | default('Hi') }}, the council votes Thursday on closing Riverside "
            "Library on Sundays. Sign: {{BASE}}/a/{{SLUG}}")


def _templates(session: Any, app: Flask, actor: int | None) -> tuple[int, int]:
    """The email the blast sends, and a text message ready for the next one."""
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")

    def fill(text: str) -> str:
        return text.replace("{{BASE}}", base).replace("{{SLUG}}", DEMO_SLUG)

    email = save_template(session, {
        "channel": "email", "name": "Library vote: sign the petition",
        "subject": ("{{ first_name | default('Neighbor') }}, our library closes Sundays "
                    "unless we act"),
        "html": fill(EMAIL_HTML), "from_name": "Riverside Library Friends"}, actor_id=actor)
    sms = save_template(session, {"channel": "sms", "name": "Library vote: text reminder",
                                  "body": fill(SMS_BODY)}, actor_id=actor)
    session.commit()
    return email.id, sms.id


def _send_blast(app: Flask, session: Any, template_id: int, list_id: int,
                actor: int | None) -> int:
    """Launch as the page does, then run the pipeline's jobs on an in-process RQ worker."""
    blast = blasts.save_blast(session, {"name": DEMO_BLAST,
                                        "template_id": template_id, "list_ids": [list_id]},
                              actor_id=actor)
    blast = blasts.launch(session, blast.id)
    session.commit()
    pipeline.start_blast(blast)
    # RQ installs its own SIGINT/SIGTERM handlers; `outreach dev` needs Ctrl-C back afterwards.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        make_worker(app, ["prepare", "email"], simple=True).work(
            burst=True, logging_level="WARNING")
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    session.expire_all()
    return blast.id


def _backdate(session: Any, blast_id: int) -> None:
    """Move the import back three days and the send back a day, all timestamps together.

    The demo happens in a minute, but a timeline of engagement needs hours: shifting every
    timestamp of the import and the send by the same amount keeps them consistent.
    """
    shifts = [
        (Import, ("created_at", "started_at", "finished_at"), None, IMPORTED_AGO),
        (Contact, ("created_at", "updated_at"), None, IMPORTED_AGO),
        (ContactList, ("created_at",), None, IMPORTED_AGO),
        (ListMember, ("created_at",), None, IMPORTED_AGO),
        (ConsentEvent, ("created_at",), None, IMPORTED_AGO),
        (MessageTemplate, ("created_at", "updated_at"), None, SENT_AGO + timedelta(hours=2)),
        (TemplateVersion, ("created_at",), None, SENT_AGO + timedelta(hours=2)),
        (Blast, ("created_at", "launched_at", "finished_at"), Blast.id == blast_id, SENT_AGO),
        (Message, ("claimed_at", "sent_at", "updated_at"), Message.blast_id == blast_id,
         SENT_AGO),
        (OutboxEmail, ("created_at",), None, SENT_AGO),
    ]
    for model, columns, where, delta in shifts:
        # Read, shift in Python, write back: date arithmetic in SQL differs between PostgreSQL
        # and SQLite (which stores text), and these are a few thousand rows.
        keys = list(sa.inspect(model).primary_key)
        query = sa.select(*keys, *(getattr(model, c) for c in columns))
        rows = session.execute(query.where(where) if where is not None else query).all()
        table = model.__table__
        statement = sa.update(table).where(*(k == sa.bindparam(f"k_{k.name}") for k in keys))
        statement = statement.values({c: sa.bindparam(f"v_{c}") for c in columns})
        params = [{**{f"k_{k.name}": r[i] for i, k in enumerate(keys)},
                   **{f"v_{c}": (v - delta if v is not None else None)
                      for c, v in zip(columns, r[len(keys):], strict=True)}} for r in rows]
        if params:
            session.execute(statement, params)
    session.commit()
