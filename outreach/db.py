"""Database: the SQLAlchemy engine, sessions scoped to the app context, and shared column types."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware (SQLite has no zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Convert an aware datetime to naive UTC before storing it."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; outreach stores aware UTC timestamps")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Attach UTC to a stored timestamp."""
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every outreach model."""

    metadata = sa.MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Give SQLite WAL, foreign keys and a busy timeout so web and worker processes coexist."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def make_engine(url: str) -> Engine:
    """Create the engine for a database URL with settings suited to its dialect."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def init_app(app: Flask) -> None:
    """Bind an engine and session factory to the app and close sessions at teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        # Kept in `g`, not popped: a streamed response's body runs after this teardown, in
        # the same app context pushed again (stream_with_context), and may use the session
        # once more; the teardown when the stream ends then closes it again. Popped, it would
        # stay idle in a transaction, holding its connection and locks, until collected.
        session = g.get("db_session")
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The session of the current app context (one per request or job)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


@contextmanager
def transaction() -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back on error."""
    db = session()
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise


def commit_durably(db: Session) -> None:
    """Commit so that the transaction survives a crash of the database server at once.

    A claim must be on disk before the provider is called: if a crash lost it, the rows would
    be queued again and sent twice. PostgreSQL acknowledges a commit before its WAL is written
    when `synchronous_commit` is off (a setting some deployments choose for speed, and our
    throwaway test clusters use), so this transaction asks for it on, whatever the default.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(sa.text("SET LOCAL synchronous_commit = on"))
    db.commit()


def insert_ignore(table: Any, dialect_name: str) -> Any:
    """An INSERT that skips rows violating a unique constraint (ON CONFLICT DO NOTHING)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def is_postgres() -> bool:
    """True when the current database is PostgreSQL."""
    return engine().dialect.name == "postgresql"


# Every domain's models module; importing them fills Base.metadata (for Alembic and tests).
MODEL_MODULES = (
    "outreach.accounts.models",
    "outreach.channels.models",
    "outreach.files.models",
    "outreach.contacts.models",
    "outreach.content.models",
    "outreach.blasts.models",
    "outreach.tracking.models",
    "outreach.actions.models",
)


def import_models() -> sa.MetaData:
    """Import every model module and return the complete metadata."""
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
