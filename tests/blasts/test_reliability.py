"""Reliability of the email pipeline through the real SendGrid SDK and the emulator.

A worker process killed with SIGKILL in the middle of a batch, duplicated jobs and a storm of
429 answers: every contact gets the blast exactly once, or its message is reported "unknown".
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import pytest

from outreach import db
from outreach.blasts import pipeline
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.queue import make_worker
from tests.fixtures.app import AuthActions, build_app
from tests.fixtures.blasts import audience, blast_state, email_template, launch_blast
from tests.fixtures.services import clean_database


@pytest.fixture
def sendgrid():
    """A running SendGrid emulator."""
    with SendGridEmulator(api_key="SG.test-key") as emulator:
        yield emulator


@pytest.fixture
def sg_app(database_url, redis_url, tmp_path, sendgrid):
    """The app with EMAIL_BACKEND=sendgrid pointed at the emulator."""
    app = build_app(database_url, redis_url, tmp_path / "instance", EMAIL_BACKEND="sendgrid",
                    SENDGRID_API_KEY="SG.test-key", SENDGRID_API_HOST=sendgrid.url,
                    SEND_STALE_SECONDS=1)
    clean_database(app.extensions["db_engine"])
    from outreach.queue import connection

    connection(app).flushdb()
    yield app
    app.extensions["db_engine"].dispose()


def run_until_done(app, blast_id, timeout=60):
    """Run workers (with the scheduler, for retries) until the blast finishes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        make_worker(app, simple=True).work(burst=True, with_scheduler=True,
                                           logging_level="WARNING")
        state = blast_state(app, blast_id)
        if state["status"] in ("done", "canceled", "paused"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"blast did not finish: {blast_state(app, blast_id)}")


def _session(sid):
    """Process ids of a session: the worker, its horse and its scheduler (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # field 6 of stat, the session id
                found.append(int(entry))
    return found


def _claimed(app, blast_id, after=0):
    """How many of the blast's messages past the first `after` are claimed right now."""
    import sqlalchemy as sa

    from outreach.blasts.models import Message

    with app.app_context():
        first = db.session().scalar(sa.select(sa.func.min(Message.id))
                                    .where(Message.blast_id == blast_id)) or 0
        return db.session().scalar(sa.select(sa.func.count()).select_from(Message).where(
            Message.blast_id == blast_id, Message.status == "sending",
            Message.id >= first + after))


def received(sendgrid):
    """How many times each address reached the emulator."""
    return collections.Counter(r["email"] for r in sendgrid.recipients)


def test_429_storm_slows_the_blast_and_loses_nothing(sg_app, sendgrid):
    list_id = audience(sg_app, 2500)
    sendgrid.fail_next(4, status=429)
    blast_id = launch_blast(sg_app, email_template(sg_app), [list_id])
    state = run_until_done(sg_app, blast_id, timeout=120)
    assert state["status"] == "done"
    assert state["counts"]["sent"] == 2500 and state["counts"]["failed"] == 0
    counts = received(sendgrid)
    assert len(counts) == 2500 and set(counts.values()) == {1}
    assert len(sendgrid.accepted_requests) == 3  # batches of at most 1000


def test_duplicated_jobs_send_nothing_twice(sg_app, sendgrid):
    list_id = audience(sg_app, 1500)
    blast_id = launch_blast(sg_app, email_template(sg_app), [list_id])
    with sg_app.app_context():
        pipeline.prepare_blast(blast_id)
        pipeline.enqueue_batches(blast_id)  # every batch twice more
        pipeline.enqueue_batches(blast_id)
    state = run_until_done(sg_app, blast_id)
    assert state["counts"]["sent"] == 1500
    assert set(received(sendgrid).values()) == {1}


def test_worker_killed_mid_batch_messages_once_or_unknown(sg_app, sendgrid, tmp_path):
    list_id = audience(sg_app, 3000)
    sendgrid.set_delay(2.0)  # each batch request takes 2 s: time to kill the worker in one
    env = dict(os.environ, DATABASE_URL=sg_app.config["DATABASE_URL"],
               REDIS_URL=sg_app.config["REDIS_URL"], SECRET_KEY=sg_app.config["SECRET_KEY"],
               OUTREACH_ENV="testing", EMAIL_BACKEND="sendgrid", SENDGRID_API_KEY="SG.test-key",
               SENDGRID_API_HOST=sendgrid.url, OUTREACH_NO_DOTENV="1",
               OUTREACH_INSTANCE=str(tmp_path / "worker-instance"))
    worker = subprocess.Popen([sys.executable, "-m", "outreach", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        blast_id = launch_blast(sg_app, email_template(sg_app), [list_id])
        deadline = time.monotonic() + 90
        # Wait until one batch was accepted and the next one is claimed and in flight.
        # (Rows of the second or a later batch: the first batch's claim may be a moment from
        # being recorded as sent.)
        while time.monotonic() < deadline and not (sendgrid.accepted_requests
                                                   and _claimed(sg_app, blast_id, after=1000)):
            time.sleep(0.05)
        assert sendgrid.accepted_requests, "the worker never sent a batch"
        assert _claimed(sg_app, blast_id, after=1000), "no batch was in flight"
    finally:
        # The worker and its work horse (RQ puts the horse in a process group of its own).
        for pid in _session(worker.pid):
            os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
    sendgrid.set_delay(0)
    time.sleep(1.5)  # past SEND_STALE_SECONDS: the killed batch's claim is now stale
    with sg_app.app_context():
        repaired = pipeline.reconcile()
    assert repaired["unknown"] >= 1
    state = run_until_done(sg_app, blast_id)
    counts = state["counts"]
    assert state["status"] == "done"
    assert counts["sent"] + counts["unknown"] == 3000 and counts["queued"] == 0
    got = received(sendgrid)
    assert max(got.values()) == 1  # nobody was messaged twice
    with sg_app.app_context():
        from sqlalchemy import select

        from outreach.blasts.models import Message

        rows = db.session().execute(select(Message.address, Message.status)
                                    .where(Message.blast_id == blast_id)).all()
    for address, status in rows:
        if status == "sent":
            assert got[address] == 1, address
        else:
            assert status == "unknown" and got[address] <= 1
    # The blast page reports them as unknown, and says why they are not sent again.
    client = sg_app.test_client()
    AuthActions(sg_app, client).login()
    html = client.get(f"/blasts/{blast_id}").get_data(as_text=True)
    assert f'data-count="unknown">{counts["unknown"]:,}<' in html
    assert "never sent again" in html


def test_a_refused_api_key_pauses_the_blast_and_loses_nothing(sg_app, sendgrid):
    list_id = audience(sg_app, 10)
    sg_app.extensions.pop("email_channel", None)
    sg_app.config["SENDGRID_API_KEY"] = "SG.wrong"
    blast_id = launch_blast(sg_app, email_template(sg_app), [list_id])
    make_worker(sg_app, simple=True).work(burst=True, logging_level="CRITICAL")
    state = blast_state(sg_app, blast_id)
    assert state["status"] == "paused" and "SENDGRID_API_KEY" in state["status_reason"]
    assert state["counts"]["queued"] == 10 and not sendgrid.recipients
    sg_app.extensions.pop("email_channel", None)
    sg_app.config["SENDGRID_API_KEY"] = "SG.test-key"
    with sg_app.app_context():
        from outreach.blasts import service

        with db.transaction() as session:
            service.resume(session, blast_id)
        pipeline.enqueue_batches(blast_id, only_queued=True)
    state = run_until_done(sg_app, blast_id)
    assert state["counts"]["sent"] == 10 and len(received(sendgrid)) == 10


def test_circuit_breaker_pauses_a_blast_that_keeps_failing(sg_app, sendgrid):
    list_id = audience(sg_app, 1200)
    sendgrid.fail_next(1, status=400)  # the first batch is refused for good: 1000 failures
    blast_id = launch_blast(sg_app, email_template(sg_app), [list_id])
    state = run_until_done(sg_app, blast_id)
    assert state["status"] == "paused"
    assert "failed permanently" in state["status_reason"]
    assert state["counts"]["failed"] == 1000
    assert state["counts"]["sent"] + state["counts"]["queued"] == 200
