"""Benchmark: a 1,000,000-recipient email blast through RQ workers and the SendGrid emulator.

Seeds N consenting contacts with merge fields straight into PostgreSQL (COPY; not measured),
saves an email template with merges in subject and body, starts the SendGrid emulator and
`--workers` real `outreach worker` processes (queues prepare and email), launches the blast the
way the web app does (`save_blast`, `launch`, commit, `start_blast`) and measures:

- prepare: from launch until the blast is `sending` (the DB is polled every 100 ms);
- total: from launch until the emulator has accepted N recipients (polled every 100 ms);

then checks the result: N messages, all `sent`; N distinct recipients at the emulator in N/1000
requests; every personalization with its substitutions (merge values, signed token,
unsubscribe URL). A baseline is measured in the same run: COPY of N rows (id, address, status)
into a bare table plus building and serializing N/1000 mail-send bodies of 1000
personalizations with `outreach.channels.sendgrid.mail_body`, in one process.

    .venv/bin/python bench/blast_email.py                     # 1,000,000 contacts
    .venv/bin/python bench/blast_email.py --contacts 100000   # a quick run
    .venv/bin/python bench/blast_email.py --contacts 200000 --profile

Goal (2-core machine, 1,000,000 contacts): launch to all accepted in 60 s or less, preparation
alone in 15 s or less, at most 4 times the baseline (times scaled linearly for other sizes).
Exits non-zero when a correctness check fails (not when a goal is missed).

`bench/blast_sms.py` reuses this file's helpers (seeding, emulator and worker processes).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the project
    sys.path.append(str(ROOT))

GOAL_TOTAL_PER_MILLION = 60.0
GOAL_PREPARE_PER_MILLION = 15.0
GOAL_RATIO = 4.0
BATCH = 1000  # recipients per SendGrid request (pipeline.BATCH_SIZE)
SECRET_KEY = "bench-secret-key"
SENDGRID_KEY = "SG.emulator-key"  # the emulator's defaults (outreach/emulators/__main__.py)
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "emulator-auth-token"
TWILIO_SERVICE = "MG" + "0123456789abcdef" * 2
SEEDED_AT = "2026-01-05 12:00:00"  # contacts.created_at (naive UTC, as UTCDateTime stores it)

from common import (  # noqa: E402 - after the path set-up above; re-exported to the others
    DEFAULT_REDIS_URL,
    admin_database_url,
    ensure_schema,
    failed_jobs,
    flush_redis,
    free_port,
    fresh_database,
    interruptible,
    libpq_url,
    machine_line,
    n,
    postgres_line,
    print_figures,
    secs,
    stop_process,
    timer,
)


def build_app(database_url: str, instance_path: str | Path, redis_url: str,
              **overrides: Any) -> Any:
    """An outreach app on the benchmark database, migrated with outreach.migrate.upgrade."""
    import logging

    from outreach import create_app
    from outreach.migrate import upgrade

    if not logging.getLogger().handlers:  # quiet figures: no INFO lines from Alembic and co.
        logging.basicConfig(level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET_KEY,
              "OUTREACH_ENV": "testing", "INSTANCE_PATH": str(instance_path),
              "EMAIL_BACKEND": "outbox", "SMS_BACKEND": "outbox"}
    config.update(overrides)
    app = create_app(config)
    upgrade(app)
    return app


# ---- the contacts -------------------------------------------------------------------------------

FIRST = ["James", "Mary", "Zoë", "José", "Renée", "D'Andre", "Aaliyah", "Wei", "Priya",
         "Siobhán", "Ngọc", "Keisha", "Björn", "Ángel", "Chloé", "Mohammed"]
LAST = ["Smith", "García", "O'Brien", "Nguyễn", "Müller", "Patel", "Kowalski", "Washington",
        "Lee", "Núñez", "Kim"]
CITIES = ["New York", "Los Angeles", "Chicago", "Houston", "Miami", "San José", "Tulsa",
          "Denver", "Phoenix", "Seattle", "Atlanta", "Boston", "Washington", "Portland",
          "Salt Lake City", "Coeur d'Alene", "Winston-Salem", "St. Louis"]
NO_CITY_EVERY = 20  # every 20th contact has no city: the template's default("your town") applies
# Area codes with the zone and state an import would infer from them (FL and OK included: their
# quiet hours end earlier).
AREAS = [("212", "America/New_York", "NY"), ("213", "America/Los_Angeles", "CA"),
         ("312", "America/Chicago", "IL"), ("305", "America/New_York", "FL"),
         ("303", "America/Denver", "CO"), ("602", "America/Phoenix", "AZ"),
         ("405", "America/Chicago", "OK"), ("206", "America/Los_Angeles", "WA"),
         ("404", "America/New_York", "GA"), ("713", "America/Chicago", "TX"),
         ("617", "America/New_York", "MA"), ("415", "America/Los_Angeles", "CA"),
         ("202", "America/New_York", "DC"), ("503", "America/Los_Angeles", "OR"),
         ("801", "America/Denver", "UT"), ("918", "America/Chicago", "OK")]
# Valid NANP exchanges: 2-9 first digit, never N11.
EXCHANGES = [x for x in range(200, 1000) if x % 100 != 11]


def email_of(i: int) -> str:
    return f"supporter{i}@bench{i % 10}.example.org"


def index_of_email(email: str) -> int:
    return int(email[len("supporter"):email.index("@")])


def first_name_of(i: int) -> str:
    return FIRST[i % len(FIRST)]


def last_name_of(i: int) -> str:
    return LAST[(i // len(FIRST)) % len(LAST)]


def city_of(i: int) -> str | None:
    return None if i % NO_CITY_EVERY == 0 else CITIES[i % len(CITIES)]


def phone_of(i: int) -> str:
    """A valid, unique US number in E.164 for contact i."""
    area = AREAS[i % len(AREAS)][0]
    k = i // len(AREAS)
    exchange = EXCHANGES[(k // 10_000) % len(EXCHANGES)]
    return f"+1{area}{exchange}{k % 10_000:04d}"


def _copy_text(value: str | None) -> str:
    """A value in COPY's text format (our generated values never hold tabs or backslashes)."""
    return "\\N" if value is None else value


def seed_contacts(database_url: str, count: int, with_zone: bool = False,
                  chunk: int = 50_000) -> None:
    """COPY `count` consenting contacts (email and SMS) into `contacts`, then VACUUM ANALYZE.

    with_zone: set timezone and region from the phone's area code, as an import infers them
    (the email benchmark leaves them NULL).
    """
    import psycopg

    columns = ("email, phone, first_name, last_name, postal_code, timezone, region, fields, "
               "email_consent, sms_consent, created_at, updated_at")
    with psycopg.connect(libpq_url(database_url)) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY contacts ({columns}) FROM STDIN") as copy:
            for start in range(0, count, chunk):
                lines = []
                for i in range(start, min(count, start + chunk)):
                    city = city_of(i)
                    fields = {"city": city, "ward": str(i % 50)} if city else {"ward": str(i % 50)}
                    _, zone, region = AREAS[i % len(AREAS)]
                    lines.append("\t".join((
                        email_of(i), phone_of(i), first_name_of(i), last_name_of(i),
                        f"{10001 + i % 900:05d}", _copy_text(zone if with_zone else None),
                        _copy_text(region if with_zone else None),
                        json.dumps(fields, ensure_ascii=False), "granted", "granted",
                        SEEDED_AT, SEEDED_AT)))
                copy.write(("\n".join(lines) + "\n").encode())
        conn.commit()
    vacuum_analyze(database_url, "contacts")


def vacuum_analyze(database_url: str, *tables: str) -> None:
    """What autovacuum would have done after a bulk load (visibility map, statistics)."""
    import psycopg

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {', '.join(tables)}")


def make_list(database_url: str, name: str, count: int) -> int:
    """A list of the first `count` contacts (INSERT ... SELECT); returns its id."""
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:
        list_id = conn.execute(
            "INSERT INTO lists (name, description, created_at) VALUES (%s, '', %s) RETURNING id",
            (name, SEEDED_AT)).fetchone()[0]
        conn.execute("INSERT INTO list_members (list_id, contact_id, created_at) "
                     "SELECT %s, id, %s FROM contacts ORDER BY id LIMIT %s",
                     (list_id, SEEDED_AT, count))
        conn.commit()
    vacuum_analyze(database_url, "list_members")
    return int(list_id)


# ---- the app and its schema --------------------------------------------------------------------

def bench_app(database_url: str, instance: str | Path, redis_url: str,
              emulators: Emulators | None = None, **overrides: Any) -> Any:
    """The benchmark's own app (it launches blasts and runs the profiles), migrated."""
    config: dict[str, Any] = {"SECRET_KEY": SECRET_KEY}
    if emulators is not None:
        config.update(emulators.settings())
    config.update(overrides)
    app = build_app(database_url, instance, redis_url, **config)
    return app



# ---- processes: the emulators and the workers ---------------------------------------------------


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a live process (and of its reaped children: RQ's work horses)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def postgres_cpu(database_url: str) -> float:
    """CPU seconds of the whole PostgreSQL server so far: the postmaster, its live processes
    and the backends it has reaped (every database, other users' work included)."""
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:  # the backend exits with it
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        status = Path(f"/proc/{backend}/status").read_text()
    postmaster = int(next(line.split()[1] for line in status.splitlines()
                          if line.startswith("PPid:")))
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(entry.name), children=False)
    return total



class Emulators:
    """`python -m outreach.emulators` in its own process (SendGrid and Twilio), and its control
    endpoints."""

    def __init__(self, workdir: Path) -> None:
        import requests

        self.workdir = workdir
        self.sendgrid_port, self.twilio_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy from the environment

    @property
    def sendgrid_url(self) -> str:
        return f"http://127.0.0.1:{self.sendgrid_port}"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.twilio_port}"

    def settings(self) -> dict[str, str]:
        """The environment that points outreach at these emulators."""
        return {"EMAIL_BACKEND": "sendgrid", "SENDGRID_API_KEY": SENDGRID_KEY,
                "SENDGRID_API_HOST": self.sendgrid_url, "SMS_BACKEND": "twilio",
                "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "TWILIO_API_BASE": self.twilio_url, "TWILIO_MESSAGING_SERVICE_SID": TWILIO_SERVICE}

    def start(self) -> None:
        log = open(self.workdir / "emulators.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "outreach.emulators", "--sendgrid-port",
             str(self.sendgrid_port), "--twilio-port", str(self.twilio_port)],
            cwd=ROOT, env=dict(os.environ, NO_PROXY="127.0.0.1,localhost",
                               OUTREACH_NO_DOTENV="1"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulators exited: see {self.workdir / 'emulators.log'}")
            try:
                self.state("sendgrid")
                self.state("twilio")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the emulators did not start within 30 s")

    def _url(self, which: str, name: str) -> str:
        base = self.sendgrid_url if which == "sendgrid" else self.twilio_url
        return f"{base}/_emulator/{name}"

    def get(self, which: str, name: str, **params: Any) -> Any:
        resp = self.http.get(self._url(which, name), params=params, timeout=300)
        resp.raise_for_status()
        return resp.json()

    def post(self, which: str, name: str, payload: dict[str, Any] | None = None) -> Any:
        resp = self.http.post(self._url(which, name), json=payload or {}, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def state(self, which: str) -> dict[str, Any]:
        return self.get(which, "state")

    def timestamps(self, which: str) -> list[float]:
        return sorted(self.get(which, "requests/timestamps")["timestamps"])

    def reset(self, which: str) -> None:
        self.post(which, "reset")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid, children=False) if self.proc else 0.0

    def peak_mb(self) -> float:
        """The emulator process's peak resident memory (it keeps every request it accepted)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text() if self.proc else ""
        except OSError:
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.http.close()


class Workers:
    """Real `outreach worker` processes (forking RQ workers) on the benchmark's services."""

    def __init__(self, count: int, queues: str, env: dict[str, str], workdir: Path,
                 redis_url: str, label: str = "worker") -> None:
        self.count, self.queues, self.env = count, queues, env
        self.workdir, self.redis_url, self.label = workdir, redis_url, label
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.final_cpu = 0.0

    def start(self, timeout: float = 60.0) -> float:
        """Start the workers (the scheduler in the first one only); wait until all registered.

        Returns the seconds they took to come up (not part of any measured figure).
        """
        from redis import Redis
        from rq import Worker

        started = time.perf_counter()
        for i in range(self.count):
            log_path = self.workdir / f"{self.label}-{i}.log"
            argv = [*self.prefix(i), sys.executable, "-m", "outreach", "worker",
                    "--queues", self.queues]
            if i > 0:
                argv.append("--no-scheduler")
            log = open(log_path, "wb")  # noqa: SIM115 - lives with the process
            self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=self.env_of(i), stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
            self.logs.append(log_path)
        client = Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                dead = [p for p in self.procs if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"a {self.label} exited at start: see "
                                       f"{self.logs[0].parent}")
                pids = {w.pid for w in Worker.all(connection=client)}
                if all(p.pid in pids for p in self.procs):
                    return time.perf_counter() - started
                time.sleep(0.1)
        finally:
            client.close()
        raise RuntimeError(f"{self.label}s not registered within {timeout:.0f} s")

    def prefix(self, index: int) -> list[str]:
        """What the index-th worker's command runs under (nothing: started directly)."""
        return []

    def env_of(self, index: int) -> dict[str, str]:
        """The index-th worker's environment."""
        return self.env

    def cpu(self) -> float:
        """CPU seconds of the workers and their work horses so far."""
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        self.final_cpu = max(self.final_cpu, self.cpu())
        for proc in self.procs:
            stop_process(proc)

    def job_seconds(self) -> tuple[int, float]:
        """(jobs, seconds inside them) from RQ's "Successfully completed ... job in" lines: the
        time each work horse spent in the job function, without fork and queue overhead."""
        jobs, seconds = 0, 0.0
        pattern = re.compile(r"job in (\d+):(\d+):(\d+(?:\.\d+)?)s")
        for path in self.logs:
            for match in pattern.finditer(path.read_text(errors="replace")):
                h, m, sec = match.groups()
                jobs += 1
                seconds += int(h) * 3600 + int(m) * 60 + float(sec)
        return jobs, seconds

    def batch_durations(self) -> list[tuple[int, float]]:
        """(first message id, seconds) of every completed send_batch job, from RQ's log."""
        pattern = re.compile(r"Successfully completed outreach\.blasts\.pipeline\.send_batch\("
                             r"\d+, (\d+), \d+\) job in (\d+):(\d+):(\d+(?:\.\d+)?)s")
        out = []
        for path in self.logs:
            for match in pattern.finditer(path.read_text(errors="replace")):
                first, h, m, sec = match.groups()
                out.append((int(first), int(h) * 3600 + int(m) * 60 + float(sec)))
        return sorted(out)

    def job_spans(self) -> list[tuple[int, float, float]]:
        """(worker index, start, end) in unix seconds of every send_batch job, from the log
        lines' own timestamps (RQ logs when it hands a job to a work horse and when it ends)."""
        from datetime import datetime

        stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO rq\.worker: "
        start = re.compile(stamp + r"Worker \w+: \w+: outreach\.blasts\.pipeline\.send_batch"
                           r"\((\d+, \d+, \d+)\)")
        end = re.compile(stamp + r"Successfully completed outreach\.blasts\.pipeline\."
                         r"send_batch\((\d+, \d+, \d+)\)")

        def when(text: str) -> float:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()

        spans = []
        for index, path in enumerate(self.logs):
            text = path.read_text(errors="replace")
            ends = {m.group(2): when(m.group(1)) for m in end.finditer(text)}
            for m in start.finditer(text):
                spans.append((index, when(m.group(1)), ends.get(m.group(2), float("nan"))))
        return sorted(spans, key=lambda s: s[1])

    def tracebacks(self) -> int:
        return sum(path.read_text(errors="replace").count("Traceback") for path in self.logs)


def worker_env(database_url: str, redis_url: str, emulators: Emulators, instance: Path,
               **extra: str) -> dict[str, str]:
    """The environment of a worker process, as tests/blasts/test_reliability.py builds it."""
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url,
               SECRET_KEY=SECRET_KEY, OUTREACH_ENV="testing", OUTREACH_NO_DOTENV="1",
               OUTREACH_INSTANCE=str(instance), NO_PROXY="127.0.0.1,localhost",
               **emulators.settings())
    env.update(extra)
    return env



# ---- launching and watching a blast -------------------------------------------------------------

def save_template(app: Any, data: dict[str, Any]) -> int:
    from outreach import db
    from outreach.content.service import save_template as save

    with app.app_context(), db.transaction() as session:
        return int(save(session, data).id)


def create_blast(app: Any, name: str, template_id: int, list_ids: list[int]) -> int:
    """A draft blast (created before the clock starts)."""
    from outreach import db
    from outreach.blasts import service

    with app.app_context(), db.transaction() as session:
        return int(service.save_blast(session, {"name": name, "template_id": template_id,
                                                "list_ids": list_ids}).id)


def launch(app: Any, blast_id: int, enqueue: bool = True) -> float:
    """Launch as the web app does: launch, commit, start_blast. Returns time.time() before."""
    from outreach import db
    from outreach.blasts import pipeline, service

    started = time.time()
    with app.app_context():
        with db.transaction() as session:
            blast = service.launch(session, blast_id)
        if enqueue:
            pipeline.start_blast(blast)
    return started


QUARTERS = ("0-25%", "25-50%", "50-75%", "75-100%")


@dataclass
class Watch:
    """What polling saw: when the blast reached each status, accepted counts over time, and the
    SQL statements in flight in the benchmark database at each poll."""

    launched: float
    statuses: dict[str, float] = field(default_factory=dict)  # status -> first seen (unix)
    all_accepted: float | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)  # (unix, accepted)
    final_state: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    interval: float = 0.1
    # statement shape -> samples in flight, per quarter of the accepted count
    sql: dict[str, list[int]] = field(default_factory=dict)
    polls: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    # CPU seconds of the PostgreSQL backends serving the benchmark database (autovacuum
    # included), summed per pid at each poll: other databases' work on the server left out
    postgres_cpu: float = 0.0
    _pg_seen: dict[int, float] = field(default_factory=dict)
    probes: list[tuple[float, float, list[str]]] = field(default_factory=list)  # (t, done, text)

    def add_backend_cpu(self, pid: int) -> None:
        now = cpu_seconds(pid, children=False)
        # A backend first seen during the run was started for it: all its CPU counts. The
        # last < 100 ms of a backend that exits between two polls are lost (a slight undercount).
        self.postgres_cpu += max(0.0, now - self._pg_seen.get(pid, 0.0))
        self._pg_seen[pid] = now

    def since_launch(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.launched

    def reached(self, *names: str) -> float | None:
        seen = [self.statuses[s] for s in names if s in self.statuses]
        return min(seen) if seen else None

    def sql_report(self, top: int = 10) -> list[str]:
        """The statements most often in flight: estimated seconds (samples x interval) in all
        and per quarter of progress; a sampling profile of the database side."""
        if not self.sql:
            return []
        lines = ["  " + "seconds".rjust(8) + "".join(q.rjust(9) for q in QUARTERS)
                 + "  statement (PostgreSQL sessions of the benchmark database, sampled every "
                 f"{self.interval * 1000:.0f} ms; several may run at once)"]
        for key, per in sorted(self.sql.items(), key=lambda kv: -sum(kv[1]))[:top]:
            lines.append("  " + secs(sum(per) * self.interval).rjust(8) + "".join(
                secs(c * self.interval).rjust(9) for c in per) + "  " + key)
        lines.append("  " + "polls".rjust(8) + "".join(str(c).rjust(9) for c in self.polls))
        return lines


SAMPLE_SQL = """
SELECT pid, datname = current_database() AS ours, pid = pg_backend_pid() AS me,
       coalesce(wait_event_type || ':' || wait_event, 'CPU') AS waiting, state, query
FROM pg_stat_activity
WHERE datname IS NOT NULL
"""


def _shape(query: str) -> str:
    """A statement's shape: whitespace squeezed, SQLAlchemy's casts and labels dropped."""
    text = " ".join(query.split())
    text = re.sub(r"::(?:INTEGER|BIGINT|SMALLINT|VARCHAR|TEXT|BOOLEAN|FLOAT|NUMERIC|JSONB?|"
                  r"TIMESTAMP WITH(?:OUT)? TIME ZONE)(?:\(\d+\))?", "", text)
    text = re.sub(r" AS \w+", "", text)
    return text[:150]


PROBE_AT = (0.10, 0.35, 0.60, 0.85)
BREAKER_SQL = ("SELECT count(*) FROM (SELECT status, address FROM messages WHERE blast_id = %s "
               "AND (status || '') IN ('sent', 'delivered', 'bounced', 'failed', 'unknown') "
               "ORDER BY id DESC LIMIT 500) AS recent")


def breaker_probe(conn: Any, blast_id: int) -> list[str]:
    """The plan PostgreSQL picks right now for check_circuit_breaker's query (EXPLAIN only, no
    ANALYZE), and the statistics state of the messages table."""
    plan = [row[0].strip() for row in conn.execute(f"EXPLAIN {BREAKER_SQL}", (blast_id,))]
    scans = [line for line in plan if "Scan" in line or "Sort" in line]
    live, dead, changed, analyzed = conn.execute(
        "SELECT n_live_tup, n_dead_tup, n_mod_since_analyze, "
        "coalesce(to_char(greatest(last_analyze, last_autoanalyze), 'HH24:MI:SS'), 'never') "
        "FROM pg_stat_user_tables WHERE relname = 'messages'").fetchone()
    return [" | ".join(scans),
            f"messages: {n(live)} live, {n(dead)} dead tuples, {n(changed)} changed since the "
            f"last analyze ({analyzed})"]




def watch_blast(database_url: str, blast_id: int, launched: float, expected: int,
                accepted: Callable[[], tuple[int, dict[str, Any]]], timeout: float,
                redis_url: str | None = None, interval: float = 0.1,
                progress_every: float = 10.0,
                probe: Callable[[Any, int], list[str]] | None = None) -> Watch:
    """Poll the blast's status (DB) and the emulator's accepted count until all are accepted and
    the blast is done, the blast stops (paused, canceled), the timeout passes, or somebody else
    flushes the benchmark's Redis database (a canary key disappears). Each poll also samples the
    statements in flight in the benchmark database."""
    import psycopg
    from redis import Redis

    watch = Watch(launched=launched, interval=interval)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as first:
        for pid, ours, *_ in first.execute(SAMPLE_SQL).fetchall():
            if ours:
                watch._pg_seen[pid] = cpu_seconds(pid, children=False)
    canary = Redis.from_url(redis_url) if redis_url else None
    if canary is not None:
        canary.set("outreach-bench:canary", "1")
    next_print = time.time() + progress_every
    probes_left = list(PROBE_AT) if probe else []
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        while True:
            now = time.time()
            status, reason = conn.execute("SELECT status, status_reason FROM blasts WHERE id = %s",
                                          (blast_id,)).fetchone()
            watch.statuses.setdefault(status, now)
            count, state = accepted()
            watch.samples.append((now, count))
            watch.final_state = state
            quarter = min(3, int(4 * count / max(1, expected)))
            watch.polls[quarter] += 1
            for pid, ours, me, waiting, state, query in conn.execute(SAMPLE_SQL).fetchall():
                if not ours or me:
                    continue
                watch.add_backend_cpu(pid)
                if not (state == "active" or (query or "").startswith("autovacuum:")):
                    continue
                key = _shape(query or "")
                key = key if waiting == "CPU" else f"[{waiting}] {key}"
                watch.sql.setdefault(key, [0, 0, 0, 0])[quarter] += 1
            if probe and probes_left and count >= probes_left[0] * expected:
                probes_left.pop(0)
                watch.probes.append((now - launched, count / expected, probe(conn, blast_id)))
            if count >= expected and watch.all_accepted is None:
                watch.all_accepted = now
            if watch.all_accepted is not None and status == "done":
                break
            if status in ("paused", "canceled"):
                watch.reason = f"blast {status}: {reason}"
                break
            if now - launched > timeout:
                watch.reason = f"timeout after {timeout:.0f} s (status {status}, accepted {count})"
                break
            if canary is not None and not canary.exists("outreach-bench:canary"):
                watch.reason = (f"the Redis database {redis_url} was flushed by someone else "
                                f"during the run (at {now - launched:.0f} s, {n(count)} "
                                "accepted): queued jobs are lost; use --redis-url with a free "
                                "database")
                break
            if now >= next_print:
                print(f"  {now - launched:6.1f} s  status {status:9}  accepted {n(count)}",
                      flush=True)
                next_print = now + progress_every
            time.sleep(max(0.0, interval - (time.time() - now)))
    if canary is not None:
        canary.close()
    return watch


def batch_rows(durations: list[tuple[int, float]]) -> list[tuple[str, ...] | None]:
    """Mean send_batch job time per quarter of the blast (by message id)."""
    if not durations:
        return []
    lo, hi = durations[0][0], durations[-1][0]
    per: list[list[float]] = [[], [], [], []]
    for first, seconds in durations:
        per[min(3, int(4 * (first - lo) / max(1, hi - lo + 1)))].append(seconds)
    means = [f"{q} {sum(v) / len(v) * 1000:.0f} ms" if v else f"{q} -"
             for q, v in zip(QUARTERS, per, strict=True)]
    return [("job time", f"{n(len(durations))} jobs", "mean send_batch job per quarter of the "
             "blast: " + ", ".join(means))]


def message_counts(database_url: str, blast_id: int) -> dict[str, int]:
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT status, count(*) FROM messages WHERE blast_id = %s "
                            "GROUP BY status", (blast_id,)).fetchall()
    return {status: int(count) for status, count in rows}


def rate_between(samples: list[tuple[float, int]], total: int, low: float = 0.1,
                 high: float = 0.9) -> float | None:
    """Accepted per second between `low` and `high` of the total (the steady part)."""
    a = next((s for s in samples if s[1] >= low * total), None)
    b = next((s for s in samples if s[1] >= high * total), None)
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


# ---- profiling (in-process, after the measured run) ---------------------------------------------

class StatementTimes:
    """Seconds per SQL statement shape, via SQLAlchemy cursor events on the app's engine."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.active = False

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("bench_started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            took = time.perf_counter() - conn.info["bench_started"].pop()
            if self.active:
                key = " ".join(statement.split())[:160]
                self.seconds[key] = self.seconds.get(key, 0.0) + took
                self.calls[key] = self.calls.get(key, 0) + 1

    @contextmanager
    def recording(self) -> Iterator[StatementTimes]:
        self.seconds.clear()
        self.calls.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def report(self, top: int = 8, indent: str = "    ") -> list[str]:
        lines = []
        for key, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"{indent}{secs(seconds):>8}  x{self.calls[key]:<4} {key}")
        return lines


class Phases:
    """Wall and CPU seconds per function, by wrapping module attributes at runtime (the
    benchmark only: the code on disk is unchanged); no profiler, so no profiler overhead."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        self.wall[label], self.cpu[label], self.calls[label] = 0.0, 0.0, 0

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[label] += time.perf_counter() - wall
                self.cpu[label] += time.process_time() - cpu
                self.calls[label] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def report(self, batches: int) -> list[str]:
        lines = [f"    {'per batch':38}{'wall':>9}{'CPU':>9}   calls"]
        for label in self.wall:
            lines.append(f"    {label:38}{self.wall[label] / batches * 1000:7.0f} ms"
                         f"{self.cpu[label] / batches * 1000:6.0f} ms   "
                         f"{self.calls[label] / batches:g}")
        return lines


def email_phases() -> Phases:
    """The steps of one email send_batch, nested as they run."""
    from outreach.blasts import pipeline, sending
    from outreach.channels import sendgrid
    from outreach.content import evaluation

    phases = Phases()
    for owner, name, label in [
        (pipeline, "send_batch", "send_batch (all of it)"),
        (pipeline, "roll_expired_windows", "  roll_expired_windows"),
        (pipeline, "claim", "  claim (UPDATE ... RETURNING, consent)"),
        (sending, "send_rows", "  send_rows"),
        (sending, "_contacts", "    load contacts (SELECT)"),
        (sending, "merge_context", "    merge_context"),
        (evaluation.MergeEvaluator, "substitutions", "    MergeEvaluator.substitutions"),
        (sendgrid, "mail_body", "    mail_body"),
        (sendgrid.SendGridEmailChannel, "_post", "    SDK POST (JSON, HTTP, emulator)"),
        (sending, "record_results", "    record_results (executemany)"),
        (pipeline, "_reschedule_rest", "  _reschedule_rest (2 SELECTs)"),
        (sending, "check_circuit_breaker", "  check_circuit_breaker"),
        (sending, "check_breaker_outcomes", "  check_breaker_outcomes"),
        (pipeline, "finish_if_done", "  finish_if_done"),
    ]:
        phases.wrap(owner, name, label)
    return phases


def run_phases(label: str, phases: Phases, statements: StatementTimes,
               calls: list[Callable[[], Any]]) -> None:
    """Run some batches unprofiled with the phase timers and the statement timer; print both."""
    with statements.recording(), timer() as t:
        for call in calls:
            call()
    print(f"\n-- {label}: {len(calls)} batches, {secs(t.seconds)} "
          f"({t.seconds / len(calls) * 1000:.0f} ms per batch; no profiler)")
    print("\n".join(phases.report(len(calls))))
    print("  slowest SQL statements (all batches):")
    print("\n".join(statements.report(top=6)))


def profile_call(label: str, func: Callable[[], Any], statements: StatementTimes,
                 top: int) -> tuple[float, Any]:
    """Run func under cProfile and the statement timer; print both; return (seconds, result)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    with statements.recording(), timer() as t:
        profiler.enable()
        try:
            result = func()
        finally:
            profiler.disable()
    print(f"\n-- {label}: {secs(t.seconds)} under cProfile (timings inflated by it; "
          f"SQL {secs(sum(statements.seconds.values()))} of it)")
    print("  slowest SQL statements:")
    print("\n".join(statements.report()))
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        body = out.getvalue()
        start = body.find("   ncalls")
        print(f"  top {top} by {order}:")
        print("\n".join("    " + line for line in body[start:].rstrip().splitlines()))
    return t.seconds, result


# ---- the email benchmark ------------------------------------------------------------------------

EMAIL_SUBJECT = '{{ first_name }}, {{ fields.city | default("your town") }} needs you today'
EMAIL_HTML = (
    "<html><head><style>p { color: #222; } .cta { font-weight: bold; }</style></head><body>"
    "<p>Hi {{ first_name }},</p>"
    '<p>The Vice President visits {{ fields.city | default("your town") }} on Friday. '
    'Supporters in {{ fields.city | default("your town") }} are writing to him now.</p>'
    '<p class="cta"><a href="https://act.example.org/letter?utm_source=email&amp;c=vp">'
    "Write to the Vice President</a></p>"
    "<p>Or <a href='https://act.example.org/call'>call his office</a>: it takes two minutes."
    "</p><p>Thank you, {{ first_name }} {{ last_name }}!</p></body></html>")
EMAIL_TEXT = (
    "Hi {{ first_name }},\n\nThe Vice President visits "
    '{{ fields.city | default("your town") }} on Friday.\n'
    "Write to him: https://act.example.org/letter?utm_source=email&c=vp\n"
    "Or call his office: https://act.example.org/call\n\n"
    "Thank you, {{ first_name }} {{ last_name }}!\n")
MERGE_VALUES = {  # merge source -> the value it must have for contact i
    "first_name": first_name_of,
    'fields.city | default("your town")': lambda i: city_of(i) or "your town",
    "last_name": last_name_of,
}


def run_baseline(database_url: str, count: int) -> tuple[float, float, int]:
    """COPY `count` rows (id, address, status) into a bare table, then build and serialize the
    count/1000 mail-send bodies of 1000 personalizations; returns (copy s, bodies s, bytes)."""
    import psycopg

    from outreach.channels.base import EmailBatch, EmailRecipient
    from outreach.channels.sendgrid import mail_body

    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("CREATE TABLE baseline_messages (id bigint, address text, status text)")
        conn.commit()
        with timer() as copy_t:
            with conn.cursor() as cur, cur.copy(
                    "COPY baseline_messages (id, address, status) FROM STDIN") as copy:
                for start in range(0, count, 50_000):
                    copy.write("".join(f"{i}\t{email_of(i)}\tqueued\n"
                                       for i in range(start, min(count, start + 50_000))).encode())
            conn.commit()
        conn.execute("DROP TABLE baseline_messages")
        conn.commit()
    size = 0
    with timer() as body_t:
        for start in range(0, count, BATCH):
            recipients = []
            for i in range(start, min(count, start + BATCH)):
                token = f"{i:011d}abcdefghijklmnopq"
                unsubscribe = f"http://127.0.0.1:5000/u/{token}"
                city = city_of(i) or "your town"
                recipients.append(EmailRecipient(
                    email=email_of(i), name=f"{first_name_of(i)} {last_name_of(i)}",
                    substitutions={"%%t%%": token, "%%u%%": unsubscribe,
                                   "%%m0%%": first_name_of(i), "%%h0%%": first_name_of(i),
                                   "%%m1%%": city, "%%h1%%": city, "%%m2%%": last_name_of(i),
                                   "%%h2%%": last_name_of(i)},
                    headers={"List-Unsubscribe": f"<{unsubscribe}>"},
                    custom_args={"outreach_message_id": str(i)}))
            batch = EmailBatch(from_email="outreach@example.org", from_name="Outreach",
                               subject="%%m0%%, %%m1%% needs you today", html=EMAIL_HTML,
                               text=EMAIL_TEXT, recipients=recipients,
                               categories=["blast-1"], custom_args={"outreach_blast_id": "1"},
                               headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
            size += len(json.dumps(mail_body(batch)).encode())
    return copy_t.seconds, body_t.seconds, size


def verify_requests(emulators: Emulators, count: int, page_size: int = 20) -> dict[str, Any]:
    """Read every accepted mail-send request back from the emulator and check each
    personalization: one per contact, merge values, signed token, unsubscribe URL and header."""
    from outreach.tokens import read_token

    seen = bytearray(count)
    result: dict[str, Any] = {"requests": 0, "personalizations": 0, "duplicates": 0,
                              "unknown": 0, "bad": 0, "examples": [], "top_ok": True}
    expected_keys: set[str] | None = None
    merge_index: dict[int, str] = {}

    def bad(reason: str) -> None:
        result["bad"] += 1
        if len(result["examples"]) < 5:
            result["examples"].append(reason)

    offset = 0
    while True:
        page = emulators.get("sendgrid", "requests", offset=offset, limit=page_size)
        for record in page["requests"]:
            body = record["body"]
            result["requests"] += 1
            if expected_keys is None:
                # The merge tags in subject, text and HTML tell which %%mN%% is which expression.
                tags = set(re.findall(r"%%[mh]\d+%%", body["subject"] + json.dumps(
                    body["content"])))
                expected_keys = tags | {"%%t%%", "%%u%%"}
                result["tags"] = sorted(tags)
            content = {c["type"]: c["value"] for c in body["content"]}
            if ("%%t%%" not in content.get("text/html", "")
                    or "List-Unsubscribe-Post" not in (body.get("headers") or {})):
                result["top_ok"] = False
            for p in body["personalizations"]:
                result["personalizations"] += 1
                email = p["to"][0]["email"]
                try:
                    i = index_of_email(email)
                except ValueError:
                    i = -1
                if not 0 <= i < count:
                    result["unknown"] += 1
                    continue
                if seen[i]:
                    result["duplicates"] += 1
                seen[i] = 1
                subs = p.get("substitutions") or {}
                if set(subs) != expected_keys:
                    bad(f"{email}: substitution keys {sorted(subs)}")
                    continue
                message_id = int(p["custom_args"]["outreach_message_id"])
                token = subs["%%t%%"]
                if read_token(token, SECRET_KEY) != message_id:
                    bad(f"{email}: token does not name message {message_id}")
                if not subs["%%u%%"].endswith(f"/u/{token}") or token not in p["headers"].get(
                        "List-Unsubscribe", ""):
                    bad(f"{email}: unsubscribe URL or header without its token")
                if not merge_index:
                    merge_index.update(_merge_numbers(body, subs, i))
                for number, source in merge_index.items():
                    want = MERGE_VALUES[source](i)
                    if subs[f"%%m{number}%%"] != want or subs[f"%%h{number}%%"] != html.escape(
                            want):
                        bad(f"{email}: {source} = {subs[f'%%m{number}%%']!r}, expected {want!r}")
                        break
        offset += len(page["requests"])
        if not page["requests"] or offset >= page["total"]:
            break
    result["distinct"] = sum(seen)
    result["merges"] = {f"%%m{k}%%": v for k, v in merge_index.items()}
    return result


def _merge_numbers(body: dict[str, Any], subs: dict[str, str], i: int) -> dict[int, str]:
    """Which %%mN%% holds which merge expression, from the first recipient's values."""
    out: dict[int, str] = {}
    for key, value in subs.items():
        if key.startswith("%%m"):
            number = int(key[3:-2])
            for source, fn in MERGE_VALUES.items():
                if fn(i) == value and source not in out.values():
                    out[number] = source
                    break
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None,
                        help="server to create the throwaway database in (default: env "
                             "BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/"
                             "postgres)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for the queues (flushed at start and end)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds (default: 10 x the goal)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip reading every request back from the emulator")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured run: cProfile prepare_blast and two send_batch "
                             "jobs in-process, with SQL statement timings")
    parser.add_argument("--profile-top", type=int, default=20, help=argparse.SUPPRESS)
    return parser.parse_args(argv)



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interruptible()
    count = args.contacts
    scale = count / 1_000_000
    goal_total, goal_prepare = GOAL_TOTAL_PER_MILLION * scale, GOAL_PREPARE_PER_MILLION * scale
    timeout = args.timeout or max(120.0, 10 * goal_total)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-email-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (worker and emulator logs): {workdir}", flush=True)
    emulators = Emulators(workdir)
    workers: Workers | None = None
    checks: list[tuple[str, bool, str]] = []
    figures: dict[str, Any] = {}
    flush_redis(args.redis_url)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server = postgres_line(database_url)
            emulators.start()
            app = bench_app(database_url, workdir / "instance", args.redis_url, emulators)
            missing = ensure_schema(app)
            with timer() as seed_t:
                seed_contacts(database_url, count)
                list_id = make_list(database_url, "bench email", count)
            print(f"seeded {n(count)} contacts and a list in {secs(seed_t.seconds)} "
                  "(COPY, INSERT ... SELECT, VACUUM ANALYZE; not measured)", flush=True)
            template_id = save_template(app, {"channel": "email", "name": "bench email",
                                              "subject": EMAIL_SUBJECT, "html": EMAIL_HTML,
                                              "text": EMAIL_TEXT, "from_name": "Outreach Bench"})
            copy_s, bodies_s, body_bytes = run_baseline(database_url, count)
            baseline = copy_s + bodies_s
            print(f"baseline: COPY {secs(copy_s)} + {n(count // BATCH)} bodies {secs(bodies_s)}",
                  flush=True)
            env = worker_env(database_url, args.redis_url, emulators, workdir / "worker-instance")
            workers = Workers(args.workers, "prepare,email", env, workdir, args.redis_url)
            up = workers.start()
            print(f"{args.workers} workers up in {secs(up)}; launching", flush=True)
            blast_id = create_blast(app, "bench email blast", template_id, [list_id])
            cpu_before, emu_before = workers.cpu(), emulators.cpu()
            pg_before, busy_before = postgres_cpu(database_url), machine_busy()
            launched = launch(app, blast_id)

            def accepted() -> tuple[int, dict[str, Any]]:
                state = emulators.state("sendgrid")
                return int(state["recipients"]), state

            watch = watch_blast(database_url, blast_id, launched, count, accepted, timeout,
                                args.redis_url, probe=breaker_probe)
            busy_after = machine_busy()
            figures["worker_cpu"] = workers.cpu() - cpu_before
            figures["emulator_cpu"] = emulators.cpu() - emu_before
            figures["postgres_cpu"] = postgres_cpu(database_url) - pg_before
            figures["postgres_db_cpu"] = watch.postgres_cpu
            figures["machine_busy"] = ((busy_after[0] - busy_before[0])
                                       / max(1e-9, busy_after[1] - busy_before[1]))
            workers.stop()
            figures["jobs"] = workers.job_seconds()
            figures["batches"] = workers.batch_durations()
            figures["emulator_mb"] = emulators.peak_mb()
            stamps = emulators.timestamps("sendgrid")
            state = emulators.state("sendgrid")
            counts = message_counts(database_url, blast_id)
            checks += [
                ("blast finished", watch.reason is None, watch.reason or "done"),
                ("messages all sent", counts.get("sent", 0) == count and sum(
                    counts.values()) == count, json.dumps(counts)),
                ("emulator recipients", state["recipients"] == count,
                 f"{n(state['recipients'])} in {n(state['accepted'])} accepted requests "
                 f"({n(state['requests'])} received, {state['rejected']} rejected, "
                 f"{state['faulted']} faulted)"),
                ("requests of 1000", state["accepted"] == -(-count // BATCH),
                 f"{n(state['accepted'])} (expected {n(-(-count // BATCH))})"),
                ("failed jobs", failed_jobs(args.redis_url, ["prepare", "email"]) == 0,
                 f"{failed_jobs(args.redis_url, ['prepare', 'email'])} in RQ's failed registries"),
                ("worker tracebacks", workers.tracebacks() == 0, f"{workers.tracebacks()} in logs"),
            ]
            if not args.no_verify:
                with timer() as verify_t:
                    result = verify_requests(emulators, count)
                ok = (result["distinct"] == count and not result["duplicates"]
                      and not result["unknown"] and not result["bad"] and result["top_ok"]
                      and len(result["merges"]) == len(MERGE_VALUES))
                checks.append(("personalizations", ok, (
                    f"{n(result['personalizations'])} read back in {secs(verify_t.seconds)}: "
                    f"{n(result['distinct'])} distinct contacts, {result['duplicates']} "
                    f"duplicates, {result['unknown']} unknown, {result['bad']} wrong; merges "
                    f"{result['merges']}; tags {result.get('tags')}"
                    + (f"; e.g. {result['examples']}" if result["examples"] else ""))))
            if args.profile:
                run_profiles(app, database_url, emulators, template_id, list_id, count,
                             args.profile_top)
        report(args, figures, watch, stamps, state, baseline, copy_s, bodies_s, body_bytes,
               goal_total, goal_prepare, checks, server, missing)
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        if workers is not None:
            workers.stop()
        emulators.stop()
        flush_redis(args.redis_url)


def run_profiles(app: Any, database_url: str, emulators: Emulators, template_id: int,
                 list_id: int, count: int, top: int) -> None:
    """Profile a second blast to the same list in-process (workers stopped): prepare_blast
    under cProfile; then the first batches with phase timers (no profiler) and one under
    cProfile; then the same halfway, after marking the first half sent and running ANALYZE as
    autovacuum would."""
    import psycopg
    import sqlalchemy as sa

    from outreach.blasts import pipeline

    print("\n== profile (in-process, after the measured run)")
    statements = StatementTimes(app.extensions["db_engine"])
    blast_id = create_blast(app, "bench email profile", template_id, [list_id])
    launch(app, blast_id, enqueue=False)  # prepare runs right here instead of in a worker
    with app.app_context():
        profile_call("prepare_blast", lambda: pipeline.prepare_blast(blast_id), statements, top)
        ranges = pipeline.batch_ranges(blast_id)
    k = min(5, max(1, len(ranges) // 4))
    middle = len(ranges) // 2

    def batches(chosen: list[tuple[int, int]]) -> list[Callable[[], Any]]:
        def one(a: int, b: int) -> Callable[[], Any]:
            def call() -> Any:
                with app.app_context():
                    return pipeline.send_batch(blast_id, a, b)
            return call
        return [one(a, b) for a, b in chosen]

    phases = email_phases()
    try:
        run_phases(f"send_batch x{k} from the start", phases, statements, batches(ranges[:k]))
    finally:
        phases.restore()
    first = ranges[k]
    with app.app_context():
        profile_call(f"send_batch {first} (near the start)",
                     lambda: pipeline.send_batch(blast_id, *first), statements, top)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        marked = conn.execute(
            "UPDATE messages SET status = 'sent', sent_at = now(), updated_at = now() "
            "WHERE blast_id = %s AND id < %s AND status = 'queued'", (blast_id, ranges[middle][0])
        ).rowcount
        conn.execute("ANALYZE messages")
    print(f"\n(marked {n(marked)} earlier messages of the profiled blast sent, as halfway, then "
          "ANALYZE messages as autovacuum would)")
    phases = email_phases()
    try:
        run_phases(f"send_batch x{k} halfway", phases, statements,
                   batches(ranges[middle:middle + k]))
    finally:
        phases.restore()
    half = ranges[middle + k]
    with app.app_context():
        profile_call(f"send_batch {half} (halfway)",
                     lambda: pipeline.send_batch(blast_id, *half), statements, top)
        with app.extensions["db_engine"].connect() as conn:
            plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {BREAKER_SQL}"
                                        .replace("%s", ":b")), {"b": blast_id}).scalars().all()
    print("\n  EXPLAIN ANALYZE of check_circuit_breaker's query, halfway:")
    print("\n".join("    " + line for line in plan))


def cpu_rows(figures: dict[str, Any], workers: int,
             wall: float | None) -> list[tuple[str, ...] | None]:
    """Where the CPU went during the run, and the workers' time inside jobs.

    The CPU floor (workers + the benchmark database's PostgreSQL backends + emulator, divided by
    the cores) is what the run would need on otherwise idle cores, whatever else was running.
    """
    jobs, in_jobs = figures.get("jobs", (0, 0.0))
    worker, emulator = figures.get("worker_cpu", 0.0), figures.get("emulator_cpu", 0.0)
    database = figures.get("postgres_db_cpu", 0.0)
    cores = os.cpu_count() or 1
    rows: list[tuple[str, ...] | None] = [
        ("CPU during the run", secs(worker + database + emulator),
         f"workers and work horses {secs(worker)}, PostgreSQL backends of the benchmark "
         f"database {secs(database)}, emulator {secs(emulator)}"),
        ("  CPU floor", secs((worker + database + emulator) / cores),
         f"that CPU spread over {cores} otherwise idle cores: the best wall time possible here"),
        ("  machine", f"{figures.get('machine_busy', 0):.0%} busy",
         f"of {cores} cores during the run; the whole PostgreSQL server used "
         f"{secs(figures.get('postgres_cpu'))} (other databases included)"),
    ]
    if jobs:
        busy = f"; {in_jobs / (workers * wall):.0%} of {workers} workers' wall time" if wall \
            else ""
        rows.append(("jobs", f"{n(jobs)}", f"{secs(in_jobs)} inside job functions, "
                     f"{in_jobs / jobs * 1000:.0f} ms each (RQ's log){busy}"))
    return rows


def report(args: argparse.Namespace, figures: dict[str, Any], watch: Watch, stamps: list[float],
           state: dict[str, Any], baseline: float, copy_s: float, bodies_s: float,
           body_bytes: int, goal_total: float, goal_prepare: float,
           checks: list[tuple[str, bool, str]], server: str, missing: list[str]) -> None:
    count = args.contacts
    prepare = watch.since_launch(watch.reached("sending", "done"))
    total = watch.since_launch(watch.all_accepted)
    done = watch.since_launch(watch.statuses.get("done"))
    first = stamps[0] - watch.launched if stamps else None
    last = stamps[-1] - watch.launched if stamps else None
    steady = rate_between(watch.samples, count)
    ratio = total / baseline if total and baseline else None
    send_phase = (total - prepare) if total is not None and prepare is not None else None
    rows: list[tuple[str, ...] | None] = [
        ("contacts", n(count), f"{args.workers} workers (prepare,email), SendGrid emulator "
                               "answering at once"),
        ("prepare", secs(prepare) if prepare is not None else "-",
         "launch -> blast 'sending' (INSERT ... SELECT of the messages, batches enqueued)"),
        ("first request", secs(first) if first is not None else "-",
         "launch -> first mail-send request at the emulator"),
        ("total", secs(total) if total is not None else "-",
         f"launch -> {n(count)} recipients accepted by the emulator"),
        ("  send phase", secs(send_phase) if send_phase is not None else "-",
         f"({n(count / send_phase) if send_phase else '-'} messages/s after prepare)"),
        ("  last request", secs(last) if last is not None else "-",
         "launch -> last request at the emulator"),
        ("  blast done", secs(done) if done is not None else "-",
         "launch -> blast status 'done'"),
        ("messages/s", n(count / total) if total else "-",
         f"launch to all accepted; steady {n(steady) if steady else '-'}/s (10% -> 90%)"),
        ("baseline", secs(baseline),
         f"COPY {n(count)} rows {secs(copy_s)} + {n(-(-count // BATCH))} mail-send bodies "
         f"built and serialized {secs(bodies_s)} ({body_bytes / 1e6:.0f} MB), one process"),
        ("ratio", f"{ratio:.1f}x" if ratio else "-", "total / baseline"),
        ("emulator requests", n(state.get("requests", 0)),
         f"accepted {n(state.get('accepted', 0))} (expected {n(-(-count // BATCH))}), "
         f"recipients {n(state.get('recipients', 0))}"),
    ]
    rows += cpu_rows(figures, args.workers, send_phase)
    rows += batch_rows(figures.get("batches", []))
    rows.append(("emulator memory", f"{figures.get('emulator_mb', 0):,.0f} MB",
                 "peak RSS of the emulator process (it keeps every accepted request)"))
    if missing:
        rows.append(("schema", "create_all", f"migrations/ lacked {len(missing)} tables: "
                                             f"{', '.join(missing)}"))
    print_figures(rows, title=f"bench/blast_email.py --contacts {count} --workers {args.workers}")
    if watch.sql:
        print("\nSQL in flight during the run, by quarter of the accepted count:")
        print("\n".join(watch.sql_report()))
    if watch.probes:
        print("\nplan of check_circuit_breaker's query during the run (EXPLAIN, no ANALYZE):")
        for at, done, lines in watch.probes:
            print(f"  at {at:5.1f} s, {done:.0%} accepted: {lines[0]}")
            print(f"  {'':22}{lines[1]}")
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    misses = []
    if total is None or total > goal_total:
        misses.append(f"total {secs(total) if total else '-'} > {secs(goal_total)}")
    if prepare is None or prepare > goal_prepare:
        misses.append(f"prepare {secs(prepare) if prepare else '-'} > {secs(goal_prepare)}")
    if ratio is None or ratio > GOAL_RATIO:
        misses.append(f"ratio {f'{ratio:.1f}x' if ratio else '-'} > {GOAL_RATIO:.0f}x")
    scaled = "" if count == 1_000_000 else " (times scaled to this contact count)"
    verdict = "MET" if not misses else "NOT MET: " + "; ".join(misses)
    if args.profile:
        verdict += " (the profile ran after the measured run and does not affect it)"
    print(f"\ngoal: total <= {secs(goal_total)}, prepare <= {secs(goal_prepare)}{scaled}, "
          f"<= {GOAL_RATIO:.0f}x baseline  ->  {verdict}")
    print(f"machine: {machine_line()}; {server}")
    if not all(ok for _, ok, _ in checks):
        print("CORRECTNESS CHECKS FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
