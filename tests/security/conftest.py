"""An app without CSRF checks, so authorization answers every route walked (CSRF tested apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from outreach.queue import connection
from tests.fixtures.app import build_app, clear_process_caches
from tests.fixtures.services import clean_database


@pytest.fixture
def open_app(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The test app with CSRF off: an anonymous POST reaches the authorization hook."""
    app = build_app(database_url, redis_url, tmp_path / "instance", WTF_CSRF_ENABLED=False)
    clean_database(app.extensions["db_engine"])
    clear_process_caches()
    connection(app).flushdb()
    yield app
    app.extensions["db_engine"].dispose()
