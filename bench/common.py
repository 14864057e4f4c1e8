"""Shared helpers for the benchmarks in bench/: a fresh database, timers, peak memory, figures.

Benchmarks print figures; they are not timed tests. Each one takes `--database-url` (default
env BENCH_DATABASE_URL, else the local PostgreSQL server), creates a throwaway database in it
and drops it at the end, so they never touch a real database's data.
"""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the project
    sys.path.append(str(ROOT))

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"


def admin_database_url(given: str | None = None) -> str:
    """The server to create benchmark databases in: the option, BENCH_DATABASE_URL, or local."""
    return given or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL


def libpq_url(url: str) -> str:
    """A URL psycopg.connect accepts (drops SQLAlchemy's "+driver" part)."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(libpq_url(url)).set(database=name).render_as_string(hide_password=False)


@contextmanager
def fresh_database(admin_url: str, prefix: str = "outreach_bench") -> Iterator[str]:
    """CREATE a new empty database on the server of `admin_url`; yield its URL; DROP it after."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_app(database_url: str, instance_path: str | Path,
              redis_url: str = DEFAULT_REDIS_URL, migrate: bool = True, **overrides: Any) -> Any:
    """An outreach app on the benchmark database (migrated to head unless migrate=False)."""
    import logging

    from outreach import create_app

    if not logging.getLogger().handlers:  # quiet figures: no INFO lines from Alembic and co.
        logging.basicConfig(level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "bench",
              "OUTREACH_ENV": "testing", "INSTANCE_PATH": str(instance_path),
              "EMAIL_BACKEND": "outbox", "SMS_BACKEND": "outbox"}
    config.update(overrides)
    app = create_app(config)
    if migrate:
        from outreach.migrate import upgrade

        upgrade(app)
    return app


@dataclass
class Timer:
    """Wall-clock seconds of a `with timer() as t:` block (t.seconds, also while running)."""

    start: float = field(default_factory=time.perf_counter)
    end: float | None = None

    @property
    def seconds(self) -> float:
        return (self.end or time.perf_counter()) - self.start


@contextmanager
def timer() -> Iterator[Timer]:
    """Time a block."""
    t = Timer()
    try:
        yield t
    finally:
        t.end = time.perf_counter()


class PhaseTimes:
    """Accumulated seconds and calls per named phase, by wrapping functions at runtime.

    `phases.wrap(module, "name")` replaces module.name by a timed wrapper (the benchmark only:
    the code under test is unchanged on disk); callers that look the name up in that module at
    call time are then timed.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, module: Any, name: str, label: str | None = None) -> None:
        original = getattr(module, name)
        key = label or name

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
                self.calls[key] = self.calls.get(key, 0) + 1

        timed.__wrapped__ = original  # type: ignore[attr-defined]
        setattr(module, name, timed)

    def get(self, key: str) -> float:
        return self.seconds.get(key, 0.0)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class ChildResult:
    returncode: int
    seconds: float
    peak_rss_mb: float


def run_child(argv: Sequence[str], env: dict[str, str] | None = None) -> ChildResult:
    """Run a command to completion; return its exit code, wall time and peak RSS (that child's
    alone, from wait4, not every child's as RUSAGE_CHILDREN would give)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024)


def this_script_as_child(script: str, *args: str) -> list[str]:
    """argv to run a benchmark script again, in a fresh interpreter, with extra arguments."""
    return [sys.executable, script, *args]


# ---- printing -----------------------------------------------------------------------------------

def n(value: float) -> str:
    """1234567 -> "1,234,567"."""
    return f"{value:,.0f}"


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value >= 1 else f"{value:.2f} s"


def per_second(count: float, seconds: float, unit: str = "rows") -> str:
    return f"({n(count / seconds) if seconds > 0 else '-'} {unit}/s)"


def machine_line() -> str:
    """Cores and load average: a busy machine makes every figure worse."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def postgres_line(database_url: str) -> str:
    """The server's version and the settings that move these figures most."""
    import psycopg

    names = ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "autovacuum")
    with psycopg.connect(libpq_url(database_url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        values = [f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}" for name in names]
    return f"PostgreSQL {version}, " + ", ".join(values)


def print_figures(rows: Sequence[tuple[str, ...] | None], title: str | None = None) -> None:
    """A figures block: each row is (label, value, [more columns...]); None prints a blank line.

    Labels starting with spaces are sub-figures and stay indented.
    """
    width = max((len(r[0]) for r in rows if r), default=0) + 2
    value_width = max((len(r[1]) for r in rows if r and len(r) > 2), default=0) + 2
    if title:
        print(f"\n== {title}")
    for row in rows:
        if row is None:
            print()
            continue
        label, *rest = row
        if len(rest) > 1:
            line = label.ljust(width) + rest[0].ljust(value_width) + "  ".join(rest[1:])
        else:
            line = label.ljust(width) + (rest[0] if rest else "")
        print(line.rstrip())
    sys.stdout.flush()


# ---- processes and services ----------------------------------------------------------------------

def stop_process(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group we started (warm shutdown), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def ensure_schema(app: Any) -> list[str]:
    """Tables the models define that the migrations did not create; created here, named.

    `outreach.migrate.upgrade` runs first (build_app); a table still missing afterwards is a gap
    in migrations/ (reported in the figures), filled with create_all so the benchmark can run.
    """
    import sqlalchemy as sa

    from outreach.db import import_models

    engine = app.extensions["db_engine"]
    metadata = import_models()
    existing = set(sa.inspect(engine).get_table_names())
    missing = [t.name for t in metadata.sorted_tables if t.name not in existing]
    if missing:
        metadata.create_all(engine, tables=[metadata.tables[name] for name in missing])
    return missing


def failed_jobs(redis_url: str, queues: Sequence[str]) -> int:
    from redis import Redis
    from rq.registry import FailedJobRegistry

    client = Redis.from_url(redis_url)
    try:
        return sum(FailedJobRegistry(name, connection=client).count for name in queues)
    finally:
        client.close()


def flush_redis(redis_url: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def interruptible() -> None:
    """Ctrl-C and SIGTERM (also in a background job, where SIGINT starts ignored) end the run
    through the cleanup: workers and emulators stopped, the database dropped, Redis flushed."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":  # `make bench` runs every bench/*.py, this one included
    print("bench/common.py: shared helpers of the benchmarks; nothing to measure")
