"""Faults in the middle of a blast, against real servers and real `outreach worker` processes.

Redis restarted with its data lost, PostgreSQL restarted, the provider down (503, then not
answering, then back): each blast finishes by itself, nobody is messaged twice, and a message
whose outcome is unknown is reported as such. The servers are private to each test (see
servers.py): the machine's shared PostgreSQL and Redis are never restarted.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from outreach import db
from outreach.blasts.models import Message
from outreach.blasts.pipeline import RECONCILE_JOB_ID
from outreach.contacts.models import ConsentEvent, Contact, ContactList, ListMember
from outreach.db import import_models, make_engine, utcnow
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.queue import connection, get_queue
from tests.fixtures.app import AuthActions, build_app, clear_process_caches
from tests.fixtures.blasts import blast_state, email_template, launch_blast
from tests.reliability.servers import PrivatePostgres, PrivateRedis, Workers, worker_env

SETTINGS = {"EMAIL_BACKEND": "sendgrid", "SENDGRID_API_KEY": "SG.test-key",
            "SEND_STALE_SECONDS": 10, "RECONCILE_SECONDS": 2, "PROVIDER_TIMEOUT_SECONDS": 2}


@dataclass
class Stack:
    app: Flask
    sendgrid: SendGridEmulator
    postgres: PrivatePostgres
    redis: PrivateRedis
    workers: Workers


@pytest.fixture
def stack(private_postgres: PrivatePostgres, private_redis: PrivateRedis,
          tmp_path: Path) -> Iterator[Stack]:
    """The app, a SendGrid emulator and worker processes on private servers."""
    engine = make_engine(private_postgres.url)
    import_models().create_all(engine)
    engine.dispose()
    with SendGridEmulator(api_key="SG.test-key") as sendgrid:
        settings = dict(SETTINGS, SENDGRID_API_HOST=sendgrid.url)
        app = build_app(private_postgres.url, private_redis.url, tmp_path / "instance",
                        **settings)
        clear_process_caches()
        env = worker_env(app, tmp_path / "worker-instance",
                         **{k: str(v) for k, v in settings.items()})
        workers = Workers(env, tmp_path)
        try:
            yield Stack(app, sendgrid, private_postgres, private_redis, workers)
        finally:
            workers.stop()
            app.extensions["db_engine"].dispose()


def seed_audience(app: Flask, n: int) -> int:
    """n contacts who gave email consent, in one list (set-based: the import is tested apart)."""
    now = utcnow()
    with app.app_context(), db.transaction() as session:
        list_id = session.execute(sa.insert(ContactList).values(
            name="Rally", description="", created_at=now).returning(ContactList.id)).scalar_one()
        ids = session.execute(sa.insert(Contact).returning(Contact.id), [
            {"email": f"p{i}@example.org", "first_name": f"Person{i}", "fields": {},
             "email_consent": "granted", "sms_consent": "none", "created_at": now,
             "updated_at": now} for i in range(n)]).scalars().all()
        session.execute(sa.insert(ConsentEvent), [
            {"contact_id": i, "channel": "email", "status": "granted", "source": "import",
             "evidence": {"file": "test"}, "created_at": now} for i in ids])
        session.execute(sa.insert(ListMember), [
            {"list_id": list_id, "contact_id": i, "created_at": now} for i in ids])
    return int(list_id)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until check() is truthy; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - a server is restarting: try again
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished(stack: Stack, blast_id: int, timeout: float = 60) -> dict[str, Any]:
    """Wait for the blast to be done; return its state."""
    try:
        return wait_until(lambda: (s := blast_state(stack.app, blast_id))["status"] == "done"
                          and s, timeout, "the blast to finish")
    except AssertionError:
        print(stack.workers.logs()[-6000:])
        raise AssertionError(f"blast not done: {blast_state(stack.app, blast_id)}") from None


def queued(stack: Stack, blast_id: int) -> int:
    with stack.app.app_context():
        return int(db.session().scalar(sa.select(sa.func.count()).select_from(Message).where(
            Message.blast_id == blast_id, Message.status == "queued")) or 0)


def assert_once_or_unknown(stack: Stack, blast_id: int, total: int) -> dict[str, int]:
    """Every message sent once (the emulator agrees) or unknown; nobody got it twice."""
    state = blast_state(stack.app, blast_id)
    counts = state["counts"]
    assert counts["sent"] + counts["unknown"] == total, counts
    assert counts["queued"] == counts["sending"] == counts["failed"] == 0, counts
    got = collections.Counter(r["email"] for r in stack.sendgrid.recipients)
    assert max(got.values()) == 1  # nobody was messaged twice
    with stack.app.app_context():
        rows = db.session().execute(sa.select(Message.address, Message.status)
                                    .where(Message.blast_id == blast_id)).all()
    for address, status in rows:
        assert got[address] == (1 if status == "sent" else got[address]), address
    return counts


def page(stack: Stack, blast_id: int) -> str:
    """The staff blast page, read through the web app (a fresh sign-in)."""
    client = stack.app.test_client()
    AuthActions(stack.app, client).login()
    response = client.get(f"/blasts/{blast_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_redis_restarted_empty_mid_blast_the_blast_completes(stack: Stack) -> None:
    list_id = seed_audience(stack.app, 5000)
    # Each batch of 1000 waits 0.75 s at the provider: long enough to restart Redis while
    # batches are queued, and well inside PROVIDER_TIMEOUT_SECONDS (2 s) on a slow machine. A
    # request that outlasts it is rightly "unknown", which is not what this test is about.
    stack.sendgrid.set_delay(0.75)
    stack.workers.start(2)
    stack.workers.wait_ready()
    blast_id = launch_blast(stack.app, email_template(stack.app), [list_id])
    wait_until(lambda: stack.sendgrid.accepted_requests and queued(stack, blast_id), 60,
               "a batch sent while others are still queued")
    stack.redis.restart_empty()  # every queued batch job, and the reconciler job, are gone
    assert not connection(stack.app).keys("rq:job:send-*")
    stack.sendgrid.set_delay(0)
    finished(stack, blast_id)
    counts = assert_once_or_unknown(stack, blast_id, 5000)
    assert counts["sent"] >= 4000, counts  # at most a batch in flight at the crash is unknown
    assert stack.workers.alive() == 2, stack.workers.logs()[-4000:]
    # The workers scheduled the reconciler again in the new, empty Redis.
    registry = get_queue("default", connection(stack.app)).scheduled_job_registry
    wait_until(lambda: connection(stack.app).zscore(registry.key, RECONCILE_JOB_ID)
               is not None, 10, "the reconciler scheduled again")


def test_postgres_restarted_mid_blast_the_blast_completes(stack: Stack) -> None:
    list_id = seed_audience(stack.app, 3000)
    stack.sendgrid.set_delay(1.0)
    stack.workers.start(1)
    stack.workers.wait_ready()
    blast_id = launch_blast(stack.app, email_template(stack.app), [list_id])
    wait_until(lambda: stack.sendgrid.accepted_requests and queued(stack, blast_id), 60,
               "a batch sent while others are still queued")
    stack.postgres.restart(down_for=1.5)  # every connection cut, refused for 1.5 s
    stack.sendgrid.set_delay(0)
    state = finished(stack, blast_id)
    counts = assert_once_or_unknown(stack, blast_id, 3000)
    assert stack.workers.alive() == 1, stack.workers.logs()[-4000:]
    # The web app reconnects too, and reports any message of unknown outcome as such.
    html = page(stack, blast_id)
    assert f'data-count="unknown">{counts["unknown"]:,}<' in html
    assert f'data-count="sent">{counts["sent"]:,}<' in html
    if counts["unknown"]:
        assert "never sent again" in html
    assert state["status"] == "done"


def test_provider_down_the_blast_waits_says_why_and_resumes(stack: Stack) -> None:
    list_id = seed_audience(stack.app, 2500)
    stack.sendgrid.set_fault(503)
    stack.workers.start(1)
    stack.workers.wait_ready()
    blast_id = launch_blast(stack.app, email_template(stack.app), [list_id])
    # 503: the blast waits, and its page says why and until when.
    html = wait_until(lambda: "Waiting: SendGrid answered 503" in (p := page(stack, blast_id))
                      and p, 40, "the page to say the blast waits for SendGrid")
    reason = re.search(r'id="blast-reason"[^>]*>([^<]*)<', html)
    assert reason and re.fullmatch(r"Waiting: SendGrid answered 503 .*; next try at "
                                   r"\d\d:\d\d:\d\d UTC", reason.group(1)), html
    state = blast_state(stack.app, blast_id)
    assert state["status"] == "sending" and state["counts"]["sent"] == 0
    # Then SendGrid takes requests but never answers: the request in flight times out (after
    # PROVIDER_TIMEOUT_SECONDS); SendGrid may have accepted it, so its messages are unknown.
    stack.sendgrid.set_fault(None)
    stack.sendgrid.set_hang(True)
    before = stack.sendgrid.state()["requests"]
    wait_until(lambda: stack.sendgrid.state()["requests"] > before, 40, "a request that hangs")
    time.sleep(SETTINGS["PROVIDER_TIMEOUT_SECONDS"] + 1.0)
    stack.sendgrid.set_hang(False)  # back: the rest goes out by itself
    state = finished(stack, blast_id)
    counts = assert_once_or_unknown(stack, blast_id, 2500)
    assert counts["unknown"] >= 1 and counts["sent"] >= 1, counts
    assert state["status_reason"] is None  # no longer waiting
    html = page(stack, blast_id)
    assert "Waiting:" not in html and f'data-count="unknown">{counts["unknown"]:,}<' in html
