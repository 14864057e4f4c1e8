"""A text batch job hands over to the blast's next ranges without a gap, and never twice."""

from __future__ import annotations

import collections

import pytest
import sqlalchemy as sa

from outreach import db
from outreach.blasts import handover, pipeline, service
from outreach.channels.models import OutboxSms
from outreach.contacts import consent
from outreach.contacts.models import Channel, ConsentStatus, Contact
from tests.fixtures.app import run_jobs
from tests.fixtures.blasts import audience, blast_state, launch_blast, sms_template

ANY_HOUR = {"SMS_QUIET_START": "00:00", "SMS_QUIET_END": "23:59", "SMS_QUIET_END_FL_OK": "23:59"}


@pytest.fixture
def prepared(app):
    """A launched, prepared SMS blast of 2,500 texts (three ranges); its batch jobs queued."""
    app.config.update(ANY_HOUR)
    list_id = audience(app, 2500)
    blast_id = launch_blast(app, sms_template(app), [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        ranges = pipeline.batch_ranges(blast_id)
    assert len(ranges) == 3
    return blast_id, ranges


def texts(app) -> collections.Counter[str]:
    with app.app_context():
        return collections.Counter(db.session().scalars(sa.select(OutboxSms.to_number)))


def test_one_job_sends_the_following_ranges_and_their_jobs_find_nothing(app, prepared):
    blast_id, ranges = prepared
    with app.app_context():
        assert pipeline.send_batch(blast_id, *ranges[0]) == 2500  # one job, three ranges
    assert blast_state(app, blast_id)["status"] == "done"
    run_jobs(app)  # the queued jobs of ranges 2 and 3 (and the prepare job) claim nothing
    got = texts(app)
    assert len(got) == 2500 and set(got.values()) == {1}


def test_the_handover_stops_after_its_time(app, prepared, monkeypatch):
    blast_id, ranges = prepared
    monkeypatch.setattr(handover, "CHAIN_SECONDS", 0.0)
    with app.app_context():
        assert pipeline.send_batch(blast_id, *ranges[0]) == 1000  # its own range only
    run_jobs(app)
    state = blast_state(app, blast_id)
    assert state["status"] == "done" and state["counts"]["sent"] == 2500


def test_the_handover_stops_when_the_blast_is_paused(app, prepared, monkeypatch):
    blast_id, ranges = prepared
    real_claim_next = handover._claim_next

    def pause_first(*args):
        with db.transaction() as session:
            service.pause(session, blast_id)
        return real_claim_next(*args)

    monkeypatch.setattr(handover, "_claim_next", pause_first)
    with app.app_context():
        assert pipeline.send_batch(blast_id, *ranges[0]) == 1000
    state = blast_state(app, blast_id)
    assert state["status"] == "paused" and state["counts"]["queued"] == 1500


def test_ranges_taken_over_are_checked_for_consent_again(app, prepared, monkeypatch):
    blast_id, ranges = prepared
    last = ranges[-1][1]
    with app.app_context(), db.transaction() as session:
        # Someone in the third range texts STOP after the blast was prepared.
        contact = session.scalar(sa.select(Contact).where(Contact.phone == "+12125552499"))
        consent.record_consent(session, contact, Channel.SMS, ConsentStatus.REVOKED, "test")
    with app.app_context():
        pipeline.send_batch(blast_id, *ranges[0])
    state = blast_state(app, blast_id)
    assert state["counts"]["sent"] == 2499 and "+12125552499" not in texts(app)
    assert last > ranges[0][1]


def test_a_pause_after_a_range_takes_back_the_next_ranges_unsent_texts(app, prepared,
                                                                        monkeypatch):
    blast_id, ranges = prepared
    real_breaker = handover.sending.check_circuit_breaker

    def breaker_pauses(*args):
        real_breaker(*args)
        with db.transaction() as session:
            service.pause(session, blast_id, "Paused automatically: test")

    monkeypatch.setattr(handover.sending, "check_circuit_breaker", breaker_pauses)
    with app.app_context():
        pipeline.send_batch(blast_id, *ranges[0])
    state = blast_state(app, blast_id)
    counts = state["counts"]
    assert state["status"] == "paused" and state["status_reason"] == "Paused automatically: test"
    assert counts["sending"] == 0 and counts["sent"] >= 1000
    assert counts["sent"] + counts["queued"] == 2500 and len(texts(app)) == counts["sent"]
    monkeypatch.setattr(handover.sending, "check_circuit_breaker", real_breaker)
    with app.app_context():
        with db.transaction() as session:
            service.resume(session, blast_id)
        pipeline.continue_blast(service.get_blast(db.session(), blast_id))
    run_jobs(app)
    got = texts(app)
    assert len(got) == 2500 and set(got.values()) == {1}


@pytest.mark.parametrize(("rate", "low", "high"), [
    (0.0, 30.0, 90.0),  # unlimited: take turns with other jobs
    (50.0, 0.6 * 1330, 1330.0),  # 1800 s x 0.75, less one range at 50/s
    (1.0, 0.6 * 350, 350.0),
    (0.5, 0.0, 0.0),  # one range alone takes 2,000 s: no further range fits
])
def test_rate_limited_chains_last_while_one_more_range_fits_the_job(rate, low, high):
    class Limiter:
        pass

    class Sender:
        limiter = Limiter() if rate else None

    if rate:
        Sender.limiter.rate = rate
    for _ in range(20):
        assert low <= handover._chain_seconds(Sender()) <= high
