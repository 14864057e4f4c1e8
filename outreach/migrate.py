"""Alembic, driven from the app's configuration (`outreach db upgrade`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from flask import Flask

from outreach import resource_dir


def alembic_config(app: Flask) -> Config:
    """An Alembic configuration pointing at migrations/ and the app's database."""
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", app.config["DATABASE_URL"].replace("%", "%%"))
    config.attributes["engine"] = app.extensions["db_engine"]
    return config


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the database schema up to a revision (the newest by default)."""
    command.upgrade(alembic_config(app), revision)


def downgrade(app: Flask, revision: str) -> None:
    """Take the database schema down to a revision."""
    command.downgrade(alembic_config(app), revision)


def current_heads(app: Flask) -> set[str]:
    """The revisions the database is at."""
    from alembic.runtime.migration import MigrationContext

    with app.extensions["db_engine"].connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())
