"""RQ on a real Redis: named queues, jobs in the app context, the scheduler, the CLI worker."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from outreach.queue import QUEUES, enqueue, enqueue_many, get_queue, redis
from tests.fixtures.app import OutreachRunner, run_jobs
from tests.jobs_for_tests import record_context


def test_queues_are_the_designed_ones():
    assert QUEUES == ("prepare", "email", "sms", "events", "default")
    with pytest.raises(ValueError, match="unknown queue"):
        get_queue("mail")


@pytest.mark.parametrize("fork", [False, True])
def test_job_runs_in_the_app_context(app, fork):
    with app.app_context():
        enqueue("default", record_context, "ctx")
        run_jobs(app, fork=fork)
        seen = redis().hgetall("ctx")
    assert seen[b"secret"] == b"test-secret-key"
    assert (int(seen[b"pid"]) != os.getpid()) is fork


def test_enqueue_many_is_one_round_trip_and_all_run(app):
    with app.app_context():
        jobs = enqueue_many("email", record_context, [(f"k{i}",) for i in range(20)])
        assert get_queue("email").count == 20
        run_jobs(app)
        assert all(redis().exists(f"k{i}") for i in range(20))
    assert len(jobs) == 20


def test_scheduled_job_runs_through_the_scheduler(app):
    with app.app_context():
        enqueue("default", record_context, "later", at=datetime.now(UTC) - timedelta(seconds=1))
        assert get_queue("default").count == 0  # waiting in the scheduled registry
    result = OutreachRunner(app).invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert redis().exists("later")


def test_worker_command_limited_to_some_queues(app):
    with app.app_context():
        enqueue("sms", record_context, "sms-job")
        enqueue("email", record_context, "email-job")
    result = OutreachRunner(app).invoke(args=["worker", "--burst", "--queues", "sms",
                                                "--no-scheduler"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert redis().exists("sms-job") and not redis().exists("email-job")
