"""Alembic environment: runs migrations on the engine of the outreach app that invoked it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from outreach.db import import_models

config = context.config
target_metadata = import_models()


def run_migrations_online() -> None:
    """Run migrations on the app's engine (or one built from sqlalchemy.url)."""
    engine = config.attributes.get("engine") or engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
            # Lets a developer generate a migration for some tables only (see README).
            include_object=config.attributes.get("include_object"),
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported; run `outreach db upgrade`.")
run_migrations_online()
