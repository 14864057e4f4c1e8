"""The consent ledger and suppressions: current state derived from the ledger, audit of removals."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.contacts import consent
from outreach.contacts.models import (
    Channel,
    ConsentEvent,
    ConsentStatus,
    Contact,
    Suppression,
    SuppressionRemoval,
)
from outreach.exceptions import ValidationError
from tests.fixtures.app import make_user
from tests.fixtures.contacts import make_contact


def test_current_consent_is_the_ledgers_latest_entry(app):
    contact_id = make_contact(app, email="a@example.org", phone="+12125550101")
    steps = [(Channel.EMAIL, ConsentStatus.GRANTED), (Channel.SMS, ConsentStatus.GRANTED),
             (Channel.EMAIL, ConsentStatus.REVOKED), (Channel.EMAIL, ConsentStatus.GRANTED),
             (Channel.SMS, ConsentStatus.REVOKED)]
    with app.app_context():
        for channel, status in steps:
            with db.transaction() as session:
                contact = session.get(Contact, contact_id)
                consent.record_consent(session, contact, channel, status, "form",
                                       {"text": "Yes, email me", "ip": "203.0.113.5"})
                for ch in Channel:
                    cached = getattr(contact, consent.CONSENT_COLUMN[ch])
                    assert cached == consent.ledger_consent(session, contact_id, ch).value
        history = consent.history(db.session(), contact_id)
    assert [(e.channel, e.status) for e in history] == [(c.value, s.value)
                                                        for c, s in reversed(steps)]
    assert history[-1].evidence == {"text": "Yes, email me", "ip": "203.0.113.5"}


def test_opt_out_revokes_and_suppresses_once(app):
    contact_id = make_contact(app, phone="+12125550101")
    with app.app_context():
        for _ in range(2):
            with db.transaction() as session:
                contact = session.get(Contact, contact_id)
                consent.revoke_and_suppress(session, contact, Channel.SMS, "stop", "keyword",
                                            {"keyword": "STOP"})
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 1
        row = session.scalars(sa.select(Suppression)).one()
    assert (row.channel, row.address, row.reason) == ("sms", "+12125550101", "stop")


def test_suppress_is_idempotent_and_checks_the_reason(app):
    with app.app_context():
        with db.transaction() as session:
            first = consent.suppress(session, Channel.EMAIL, "x@example.org", "hard_bounce")
            again = consent.suppress(session, Channel.EMAIL, "x@example.org", "spam_report")
        assert first.id == again.id and again.reason == "hard_bounce"
        with pytest.raises(ValidationError), db.transaction() as session:
            consent.suppress(session, Channel.EMAIL, "y@example.org", "felt like it")


def test_removing_a_suppression_needs_a_reason_and_is_recorded(app):
    admin_id = make_user(app, "admin")
    with app.app_context():
        with db.transaction() as session:
            row = consent.suppress(session, Channel.EMAIL, "x@example.org", "unsubscribed")
        with pytest.raises(ValidationError), db.transaction() as session:
            consent.remove_suppression(session, row.id, "  ", admin_id)
        with db.transaction() as session:
            consent.remove_suppression(session, row.id, "Resubscribed by phone call", admin_id)
        session = db.session()
        assert session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0
        audit = session.scalars(sa.select(SuppressionRemoval)).one()
    assert (audit.address, audit.original_reason, audit.removed_by_id) == (
        "x@example.org", "unsubscribed", admin_id)
    assert audit.reason == "Resubscribed by phone call"
