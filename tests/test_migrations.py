"""Migrations: an empty database upgraded to head matches the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from outreach.db import import_models
from outreach.migrate import current_heads, downgrade, upgrade
from tests.fixtures.app import OutreachRunner, build_app


def _upgraded_without_drift(url: str, redis_url: str, tmp_path) -> None:
    app = build_app(url, redis_url, tmp_path / "i")
    upgrade(app)
    with app.extensions["db_engine"].connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                import_models())
    assert diff == [], f"models and migrations differ: {diff}"
    assert current_heads(app)
    downgrade(app, "base")  # every migration can also be undone
    upgrade(app)
    app.extensions["db_engine"].dispose()


def test_sqlite_upgrade_matches_models(fresh_sqlite, redis_url, tmp_path):
    _upgraded_without_drift(fresh_sqlite, redis_url, tmp_path)


@pytest.mark.postgres
def test_postgres_upgrade_matches_models(fresh_postgres, redis_url, tmp_path):
    _upgraded_without_drift(fresh_postgres, redis_url, tmp_path)


def test_cli_db_upgrade(fresh_sqlite, redis_url, tmp_path):
    app = build_app(fresh_sqlite, redis_url, tmp_path / "i")
    result = OutreachRunner(app).invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "Database is at head" in result.output
    assert current_heads(app)
