"""Structured logs: JSON lines with request and job context, from real requests and workers."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq.job import Job

from outreach.observability import logs
from outreach.queue import connection, enqueue
from tests.fixtures.blasts import audience, email_template, launch_blast
from tests.observability.jobs import fail_for_blast

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root log lines as LOG_FORMAT=json writes them, at INFO."""
    stream = io.StringIO()
    handler = logs.make_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def json_lines(text: str) -> list[dict]:
    """Every line parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def worker_env(app, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an `outreach worker` process on the test app's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "METRICS_"))}
    env.update(DATABASE_URL=app.config["DATABASE_URL"], REDIS_URL=app.config["REDIS_URL"],
               SECRET_KEY=app.config["SECRET_KEY"], OUTREACH_ENV="testing",
               OUTREACH_NO_DOTENV="1", OUTREACH_INSTANCE=str(tmp_path / "worker-instance"),
               EMAIL_BACKEND="outbox", SMS_BACKEND="outbox", PYTHONPATH=str(REPO), **extra)
    return env


def run_worker(app, tmp_path: Path, *options: str, **extra: str
               ) -> subprocess.CompletedProcess[str]:
    """Run a real `outreach worker --burst` in its own process until the queues are empty."""
    result = subprocess.run(
        [sys.executable, "-m", "outreach.cli", "worker", "--burst", "--no-scheduler", *options],
        env=worker_env(app, tmp_path, **extra), cwd=REPO, capture_output=True, text=True,
        timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("options", [(), ("--fork",)], ids=["in-process", "work-horse"])
def test_worker_json_lines_carry_job_id_queue_and_blast_id(app, tmp_path, options):
    blast_id = launch_blast(app, email_template(app), [audience(app, 3)])
    with app.app_context():
        failing = enqueue("default", fail_for_blast, blast_id, "no template here")
    result = run_worker(app, tmp_path, *options, LOG_FORMAT="json")
    lines = json_lines(result.stderr)
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    prepare = [line for line in lines if line.get("job_id") == f"prepare-{blast_id}"]
    assert prepare and all(line["blast_id"] == blast_id and line["queue"] == "prepare"
                           for line in prepare)
    assert any("Job OK" in line["message"] for line in prepare)
    batches = [line for line in lines if line.get("job") == "outreach.blasts.pipeline.send_batch"]
    assert batches and all(line["blast_id"] == blast_id and line["queue"] == "email"
                           for line in batches)
    # A line the job itself logs, and RQ's report of its failure, both name the job and blast.
    mine = [line for line in lines if line.get("job_id") == failing.id]
    assert {"tests.observability.jobs", "rq.worker"} <= {line["logger"] for line in mine}
    assert all(line["blast_id"] == blast_id for line in mine)
    assert any("no template here" in line.get("exc", "") + line["message"] for line in mine)
    # Outside any job, lines carry no job fields.
    assert any("job_id" not in line for line in lines)


def test_text_format_is_the_human_line_with_context(app, tmp_path):
    blast_id = launch_blast(app, email_template(app), [audience(app, 2)])
    result = run_worker(app, tmp_path)  # LOG_FORMAT defaults to text
    text = result.stderr + result.stdout
    with pytest.raises(json.JSONDecodeError):
        json_lines(text)
    assert f"job_id=prepare-{blast_id} queue=prepare" in text
    assert f"blast_id={blast_id}" in text


def test_job_fields_name_each_id_after_its_parameter(app):
    with app.app_context():
        job = Job.create(fail_for_blast, args=(7, "x"), connection=connection(app),
                         origin="default")
    fields = logs.job_fields(job)
    assert fields["blast_id"] == 7 and fields["queue"] == "default"
    assert fields["job"] == "tests.observability.jobs.fail_for_blast"
    assert "reason" not in fields  # only ids become fields


def test_request_lines_carry_request_id_method_and_path(app, client, captured):
    from outreach.auth import public

    @public
    def hello():
        logging.getLogger("outreach.test").info("hello from a view")
        return "ok"

    app.add_url_rule("/_test/hello", "test_hello", hello)
    response = client.get("/_test/hello?x=1")
    request_id = response.headers["X-Request-ID"]
    line = next(line for line in json_lines(captured.getvalue())
                if line["message"] == "hello from a view")
    assert line["request_id"] == request_id and len(request_id) == 32
    assert line["method"] == "GET" and line["path"] == "/_test/hello"
    assert line["logger"] == "outreach.test" and line["level"] == "INFO"
    # A proxy's id is kept when it looks like one; anything else is replaced.
    assert client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc"}
                      ).headers["X-Request-ID"] == "lb-1234.abc"
    forged = client.get("/healthz", headers={"X-Request-ID": "a\"b<script>"})
    assert forged.headers["X-Request-ID"] != "a\"b<script>"


def test_configure_installs_one_handler_and_refuses_a_bad_level():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure({"LOG_FORMAT": "json", "LOG_LEVEL": "warning"})
        logs.configure({"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"})
        ours = [h for h in root.handlers if getattr(h, logs.HANDLER_MARK, False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        assert root.level == logging.WARNING
        from outreach.exceptions import ConfigurationError

        with pytest.raises(ConfigurationError, match="LOG_LEVEL"):
            logs.configure({"LOG_LEVEL": "chatty"})
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
