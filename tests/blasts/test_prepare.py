"""Preparing a blast: batch ranges, a preparation run twice, a duplicated prepare job."""

from __future__ import annotations

import sqlalchemy as sa

from outreach import db
from outreach.blasts import pipeline
from outreach.blasts.models import Blast, BlastStatus, Message
from outreach.channels.models import OutboxEmail
from tests.fixtures.blasts import audience, count, email_template, launch_blast, send_all


def _ids(app, blast_id):
    with app.app_context():
        return db.session().scalars(sa.select(Message.id).where(Message.blast_id == blast_id)
                                    .order_by(Message.id)).all()


def _covered(ranges, ids):
    """Every id in exactly one range, ranges of at most 1000 messages, in order."""
    seen = [i for a, b in ranges for i in ids if a <= i <= b]
    return seen == list(ids) and all(
        sum(1 for i in ids if a <= i <= b) <= pipeline.BATCH_SIZE for a, b in ranges)


def test_batch_ranges_of_a_prepared_blast(app, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 2)
    list_id = audience(app, 5)
    blast_id = launch_blast(app, email_template(app), [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        ranges = pipeline.batch_ranges(blast_id)
    ids = _ids(app, blast_id)
    assert len(ranges) == 3 and _covered(ranges, ids)


def test_a_blast_prepared_again_adds_only_newcomers_and_sends_each_once(app, monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 2)
    list_id = audience(app, 3)
    template_id = email_template(app)
    blast_id = launch_blast(app, template_id, [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
    other = launch_blast(app, email_template(app, "Other"), [list_id], name="Other")
    with app.app_context():
        pipeline.prepare_blast(other)  # its rows sit between the two preparations' ids
        # As a blast paused while preparing and resumed: it prepares again.
        with db.transaction() as session:
            session.execute(sa.update(Blast).where(Blast.id == blast_id)
                            .values(status=BlastStatus.PREPARING.value))
    audience(app, 2, start=3)  # two newcomers join the list meanwhile
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        ranges = pipeline.batch_ranges(blast_id)
        assert db.session().get(Blast, blast_id).total == 5
    ids = _ids(app, blast_id)
    assert len(ids) == 5 and _covered(ranges, ids)
    assert send_all(app, blast_id)["counts"]["sent"] == 5
    assert count(app, OutboxEmail) == 8  # 5 + the other blast's 3, nobody twice per blast


def test_a_duplicated_prepare_job_writes_nothing_twice(app):
    list_id = audience(app, 4)
    blast_id = launch_blast(app, email_template(app), [list_id])
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        pipeline.prepare_blast(blast_id)  # finds the blast sending: nothing to do
        assert db.session().get(Blast, blast_id).total == 4
    assert count(app, Message, Message.blast_id == blast_id) == 4
    assert send_all(app, blast_id)["counts"]["sent"] == 4
