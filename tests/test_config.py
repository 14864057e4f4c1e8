"""Configuration from the environment: defaults, the embedded secret key, clear errors."""

from __future__ import annotations

import pytest

from outreach import create_app
from outreach.config import from_environment
from outreach.exceptions import ConfigurationError


def test_production_without_secret_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        create_app({"DATABASE_URL": "sqlite:///" + str(tmp_path / "x.db"),
                    "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": None})


def test_embedded_default_persists_a_generated_secret_key(tmp_path, monkeypatch):
    for name in ("SECRET_KEY", "DATABASE_URL", "OUTREACH_ENV"):
        monkeypatch.delenv(name, raising=False)
    first = create_app({"INSTANCE_PATH": str(tmp_path)})
    second = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert first.config["OUTREACH_ENV"] == "development"
    assert len(first.config["SECRET_KEY"]) > 40
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'outreach.sqlite3'}"


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="EMAIL_BACKEND must be one of"):
        create_app({"EMAIL_BACKEND": "pigeon", "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x"})


def test_numbers_are_parsed_and_named_when_wrong():
    assert from_environment({"SMS_RATE_PER_SECOND": "12.5"})["SMS_RATE_PER_SECOND"] == 12.5
    with pytest.raises(ConfigurationError, match="SMS_RATE_PER_SECOND"):
        from_environment({"SMS_RATE_PER_SECOND": "fast"})


def test_postgres_urls_use_psycopg3(tmp_path):
    app = create_app({"DATABASE_URL": "postgres://u@h/db", "SECRET_KEY": "x",
                      "INSTANCE_PATH": str(tmp_path)})
    assert app.config["DATABASE_URL"] == "postgresql+psycopg://u@h/db"


def test_worker_nice_is_bounded(tmp_path):
    with pytest.raises(ConfigurationError, match="WORKER_NICE must be from 0 to 19"):
        create_app({"WORKER_NICE": "25", "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x"})
    with pytest.raises(ConfigurationError, match="WORKER_NICE"):
        from_environment({"WORKER_NICE": "low"})


def test_workers_run_at_a_lower_priority_than_the_web():
    import subprocess
    import sys

    code = ("import os; from outreach.cli import lower_priority; before = os.nice(0); "
            "lower_priority({n}); print(os.nice(0), min(19, before + {n}))")
    for nice in (10, 0):
        got, expected = subprocess.run([sys.executable, "-c", code.format(n=nice)],
                                       capture_output=True, text=True, check=True).stdout.split()
        assert got == expected
