"""The demo seed: every staff page has true-looking figures after `outreach demo seed`, once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.actions.models import ActionPage
from outreach.blasts.models import Blast, Message
from outreach.contacts.models import Contact, Suppression
from outreach.demo import DEMO_BLAST, DEMO_LIST, DEMO_SLUG, seed_demo
from outreach.devserver import seed_demo_if_empty
from outreach.tracking.models import Event
from tests.fixtures.app import build_app, make_token
from tests.fixtures.blasts import count


def _scalar(app, query):
    with app.app_context():
        return db.session().scalar(query)


def test_demo_seed_fills_every_page_consistently_and_only_once(app, runner, auth, client):
    result = runner.invoke(["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert "Seeded the demo: 2,000 fictitious supporters" in result.output

    blast_id = _scalar(app, sa.select(Blast.id).where(Blast.name == DEMO_BLAST))
    assert _scalar(app, sa.select(Blast.status).where(Blast.id == blast_id)) == "done"
    # Only fictitious addresses and numbers.
    assert count(app, Contact) >= 2000
    assert count(app, Contact, ~Contact.email.like("%@example.org"),
                 ~Contact.email.like("%@example.com")) == 0
    assert count(app, Contact, Contact.phone.is_not(None),
                 ~Contact.phone.like("+1___55501__")) == 0

    # The metrics API agrees with the rows underneath, and the spread looks real.
    token = make_token(app, "viewer")
    metrics = client.get(f"/api/v1/blasts/{blast_id}/metrics",
                         headers={"Authorization": f"Bearer {token}"}).get_json()
    delivered = count(app, Message, Message.blast_id == blast_id, Message.status == "delivered")
    bounced = count(app, Message, Message.blast_id == blast_id, Message.status == "bounced")
    assert metrics["delivered"] == delivered and metrics["bounced"] == bounced
    assert delivered + bounced == 2000 and 1850 < delivered < 1990
    assert 400 < metrics["opens"]["unique"] < 1000 and metrics["opens"]["machine"] > 400
    assert 50 < metrics["clicks"]["unique"] < 400 and metrics["clicks"]["machine"] > 0
    assert metrics["unsubscribed"] > 0
    hard = count(app, Event, Event.blast_id == blast_id, Event.kind == "bounce",
                 ~Event.machine)  # every bounce event; "blocked" ones suppress nothing
    assert 0 < count(app, Suppression, Suppression.reason == "hard_bounce") < hard
    opted_out = count(app, Suppression, Suppression.reason.in_(("unsubscribed", "spam_report")))
    assert opted_out == metrics["unsubscribed"] + metrics["spam_reports"]
    assert count(app, Contact, Contact.email_consent == "revoked") == opted_out

    # Every staff page shows it.
    auth.login("admin")
    page_id = _scalar(app, sa.select(ActionPage.id).where(ActionPage.slug == DEMO_SLUG))
    pages = {
        "/": [], "/blasts": [DEMO_BLAST], f"/blasts/{blast_id}": [DEMO_BLAST],
        f"/blasts/{blast_id}/metrics": [f"{delivered:,}"], "/metrics": [DEMO_BLAST],
        "/contacts": ["example.org"], "/contacts?q=riverside": [], "/lists": [DEMO_LIST],
        "/templates": ["Library vote"], "/actions": ["Keep Riverside Library"],
        f"/actions/{page_id}": ["Keep Riverside Library"], "/outbox/": ["example."],
        "/suppressions": ["hard"], "/imports": ["riverside-signups.csv"],
        f"/a/{DEMO_SLUG}": ["Sign the petition"],
    }
    for path, texts in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        for text in texts:
            assert text in body, (path, text)

    events = count(app, Event)
    again = runner.invoke(["demo", "seed"])
    assert again.exit_code == 0 and "already there" in again.output
    assert count(app, Event) == events and count(app, Blast) == 1


@pytest.fixture
def small_demo(monkeypatch):
    """A 200-supporter demo for the tests that check when it seeds, not what."""
    monkeypatch.setattr("outreach.demo.seed.DEMO_SIZE", 200)


def test_demo_refuses_a_database_with_other_data_unless_forced(app, runner, small_demo):
    with app.app_context(), db.transaction() as session:
        session.add(Contact(email="real.person@example.net"))
    refused = runner.invoke(["demo", "seed"])
    assert refused.exit_code == 1 and "already holds" in refused.output
    assert count(app, Blast) == 0 and count(app, Contact) == 1
    forced = runner.invoke(["demo", "seed", "--force"])
    assert forced.exit_code == 0, forced.output
    assert count(app, Blast) == 1 and count(app, Contact) > 200


def test_demo_refuses_production_but_outreach_dev_may_seed(app, runner, small_demo):
    app.config["OUTREACH_ENV"] = "production"
    refused = runner.invoke(["demo", "seed"])
    assert refused.exit_code == 1 and "production" in refused.output
    assert count(app, Contact) == 0
    assert seed_demo_if_empty(app, wanted=True) is not None


@pytest.mark.parametrize("database", ["fresh_sqlite", "fresh_postgres"])
def test_demo_seeds_a_migrated_database(database, request, redis_url, tmp_path):
    from outreach.migrate import upgrade
    from outreach.queue import connection

    app = build_app(request.getfixturevalue(database), redis_url, tmp_path / "instance")
    connection(app).flushdb()
    upgrade(app)
    try:
        summary = seed_demo(app, size=300)
        assert summary is not None and summary.sent == 300 and summary.events > 600
        assert summary.signatures > 0
        assert _scalar(app, sa.select(Blast.status).where(Blast.id == summary.blast_id)) == "done"
        assert seed_demo(app, size=300) is None
    finally:
        app.extensions["db_engine"].dispose()


def test_dev_seeds_an_empty_database_unless_no_demo(app, runner, small_demo):
    assert seed_demo_if_empty(app, wanted=False) is None
    assert count(app, Contact) == 0
    blast_id = seed_demo_if_empty(app, wanted=True)
    assert blast_id is not None and count(app, Contact) >= 200
    contacts = count(app, Contact)
    assert seed_demo_if_empty(app, wanted=True) == blast_id
    assert count(app, Contact) == contacts
    assert "--no-demo" in runner.invoke(["dev", "--help"]).output
