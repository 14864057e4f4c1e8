"""Benchmark: open-pixel and click hits through gunicorn, the Redis hit buffer and its flush.

Seeds a sent email blast straight into PostgreSQL (contacts, a blast, its links, messages in
status `sent` with `sent_at` a day ago, so no hit is classed machine by timing; not measured),
starts gunicorn on the app (`OUTREACH_ENV=production`; workers, threads and access log as the
Procfile's `web:` line sets them, unless given) and `--event-workers` real
`outreach worker --queues events` processes, then drives a closed-loop HTTP/1.1 keep-alive load
generator (asyncio, raw sockets, in `--clients` child processes) at the open URL `/o/<token>.gif`
and the click URL `/c/<token>/<position>` of random messages for `--seconds` (after a
`--warmup`). Figures:

- hits/s over the measured window, the slowest second, latency p50/p90/p99/max per request;
- the same load, same gunicorn settings, against a bare WSGI app that returns the same GIF
  bytes and headers with no work (`--baseline-seconds`), and the ratio between the two;
- every hit counted: after the load, waits until the Redis buffer is empty and the rollup
  totals stop moving, then compares the hits sent (2xx/3xx responses the generator saw, warm-up
  included) with the rollup totals of kinds open and click, and with the `events` rows; unique
  counts are checked against the events too;
- the flush's capacity alone: `flush_hits` in-process on `--flush-sample` buffered hits;
- CPU of gunicorn, the events worker(s), PostgreSQL (this database's backends, and the whole
  server), Redis and the load generator.

    .venv/bin/python bench/tracking.py                  # 60 s of load
    .venv/bin/python bench/tracking.py --seconds 15     # a quick run
    .venv/bin/python bench/tracking.py --seconds 20 --profile   # + cProfile of view and flush

Goal (2-core machine): at least 2,500 hits/s sustained, p99 latency under 50 ms, and hits sent
= hits in the rollups. Exits non-zero when a correctness check fails (not when a goal is
missed). `bench/webhooks.py` and `bench/metrics_page.py` reuse this file's helpers.
"""

from __future__ import annotations

# Module level stays light: gunicorn imports this file (as `tracking:bare_app`) for the baseline.
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_REDIS_URL,
    ROOT,
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
)

GOAL_HITS_PER_SECOND = 2500
GOAL_P99_MS = 50.0
SECRET_KEY = "bench-tracking-secret"
SEEDED_AT = "2026-01-05 12:00:00"  # naive UTC, as UTCDateTime stores it
BROWSER_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/17.4 Safari/605.1.15")
SCANNER_UA = "Mozilla/5.0 (compatible; BingPreview/1.0b)"  # a link scanner: machine hits
LINK_URLS = ["https://act.example.org/letter?utm_source=email&x={i}",
             "https://act.example.org/call", "https://donate.example.org/give?amount=25",
             "https://www.example.org/news/2026/01/rally", "https://act.example.org/share",
             "https://www.example.org/events", "https://act.example.org/petition",
             "https://www.example.org/about"]

# ---- the bare endpoint: the same GIF and headers, no work ---------------------------------------

PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
BARE_HEADERS = [
    ("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))),
    ("Cache-Control", "no-store, max-age=0"), ("Pragma", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"), ("X-Frame-Options", "SAMEORIGIN"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"),
]


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The baseline: whatever the path, the tracking pixel's bytes and headers."""
    start_response("200 OK", BARE_HEADERS)
    return [PIXEL]


# ---- small helpers ------------------------------------------------------------------------------


def psql(database_url: str, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
    """Run one statement (autocommit) and return its rows (empty for statements without)."""
    import psycopg

    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []



def build_bench_app(database_url: str, instance: Path, redis_url: str,
                    **overrides: Any) -> tuple[Any, list[str]]:
    """The benchmark's own in-process app (migrated), and the tables migrations lacked."""
    from common import build_app

    config = {"SECRET_KEY": SECRET_KEY, "PUBLIC_BASE_URL": "http://127.0.0.1:5000"}
    config.update(overrides)
    app = build_app(database_url, instance, redis_url=redis_url, **config)
    return app, ensure_schema(app)


def vacuum_analyze(database_url: str, *tables: str) -> None:
    psql(database_url, f"VACUUM ANALYZE {', '.join(tables)}")


# ---- seeding ------------------------------------------------------------------------------------

def seed_email_blast(database_url: str, messages: int, links: int, name: str = "bench blast",
                     sent_ago: str = "1 day", status: str = "sent") -> dict[str, Any]:
    """Contacts, a template, a finished email blast with `links` links and one message per
    contact in `status` with sent_at `sent_ago` in the past; all in SQL (INSERT ... SELECT).

    Returns {"blast_id", "first_id", "last_id", "links": {position: url}}.
    """
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM contacts").fetchone()[0]
        conn.execute(
            "INSERT INTO contacts (email, first_name, last_name, fields, email_consent, "
            "sms_consent, created_at, updated_at) "
            "SELECT 'supporter' || i || '@bench' || (i %% 10) || '.example.org', 'Pat', "
            "'Lee' || (i %% 97), '{}', 'granted', 'unknown', %s, %s "
            "FROM generate_series(%s::bigint, %s::bigint) AS i",
            (SEEDED_AT, SEEDED_AT, start + 1, start + messages))
        template_id = conn.execute(
            "INSERT INTO templates (name, channel, version, created_at, updated_at) "
            "VALUES (%s, 'email', 1, %s, %s) RETURNING id",
            (f"{name} template", SEEDED_AT, SEEDED_AT)).fetchone()[0]
        blast_id = conn.execute(
            "INSERT INTO blasts (name, channel, template_id, list_ids, exclude_list_ids, status, "
            "total, created_at, launched_at, finished_at) VALUES (%s, 'email', %s, '[]', '[]', "
            "'done', %s, now() - %s::interval - interval '10 minutes', "
            "now() - %s::interval - interval '5 minutes', now() - %s::interval) RETURNING id",
            (name, template_id, messages, sent_ago, sent_ago, sent_ago)).fetchone()[0]
        urls = {}
        for position in range(links):
            url = LINK_URLS[position % len(LINK_URLS)].format(i=position)
            if position >= len(LINK_URLS):
                url += f"&n={position}"
            urls[position] = url
            conn.execute("INSERT INTO links (blast_id, position, url) VALUES (%s, %s, %s)",
                         (blast_id, position, url))
        conn.execute(
            "INSERT INTO messages (blast_id, contact_id, address, status, provider_id, attempts, "
            "sent_at, updated_at) "
            "SELECT %s, id, email, %s, 'bench' || (id / 1000) || '.x', 1, "
            "now() - %s::interval + (id %% 300) * interval '1 second', now() - %s::interval "
            "FROM contacts WHERE id > %s ORDER BY id",
            (blast_id, status, sent_ago, sent_ago, start))
        first, last = conn.execute("SELECT min(id), max(id) FROM messages WHERE blast_id = %s",
                                   (blast_id,)).fetchone()
        conn.commit()
    vacuum_analyze(database_url, "contacts", "messages", "links", "blasts")
    return {"blast_id": blast_id, "first_id": first, "last_id": last, "links": urls}


# ---- processes: CPU -----------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a live process (plus its reaped children's when children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU of a process, its live descendants and every reaped child of them."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_seconds(current)
        todo.extend(parents.get(current, []))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ((sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK"),
            sum(values[:8]) / os.sysconf("SC_CLK_TCK"))


def database_backends_cpu(database_url: str) -> float:
    """CPU seconds so far of the live PostgreSQL backends connected to this database: the
    bench's own SQL work, without other databases' (the server-wide figure includes them).
    A backend that exits between two readings takes its CPU with it (the app's pools keep
    theirs for the run)."""
    rows = psql(database_url, "SELECT pid FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()")
    return sum(cpu_seconds(pid, children=False) for (pid,) in rows)


def procfile_web() -> dict[str, Any]:
    """Gunicorn's workers, threads and access log as the Procfile's `web:` line sets them
    (WEB_CONCURRENCY as in the environment), so the bench measures the deployed settings."""
    import re
    import shlex

    line = next((raw.split(":", 1)[1] for raw in (ROOT / "Procfile").read_text().splitlines()
                 if raw.startswith("web:")), "")
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1], m[2]), line)
    argv = shlex.split(line)

    def option(*names: str, default: str) -> str:
        for i, arg in enumerate(argv):
            for name in names:
                if arg == name and i + 1 < len(argv):
                    return argv[i + 1]
                if arg.startswith(name + "="):
                    return arg.split("=", 1)[1]
        return default

    return {"workers": int(option("--workers", "-w", default="1")),
            "threads": int(option("--threads", default="1")),
            "access_log": any(a == "--access-logfile" or a.startswith("--access-logfile=")
                              for a in argv)}


def postgres_cpu(database_url: str) -> float:
    """CPU seconds of the whole PostgreSQL server so far (every database, others' included)."""
    import psycopg

    # The backend's parent is the postmaster; read it while the backend lives (it exits with
    # the connection).
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        status = Path(f"/proc/{backend}/status").read_text()
    postmaster = int(next(line.split()[1] for line in status.splitlines()
                          if line.startswith("PPid:")))
    return tree_cpu(postmaster)


def redis_cpu() -> float:
    """CPU seconds of the local redis-server processes so far."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


class CpuMeter:
    """CPU used by named processes (and the machine) between start() and stop()."""

    def __init__(self, database_url: str, pids: dict[str, Callable[[], float]]) -> None:
        self.sources = dict(pids)
        self.sources["PostgreSQL"] = lambda: postgres_cpu(database_url)
        self.sources["Redis"] = redis_cpu
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.busy = 0.0

    def start(self) -> None:
        self.before = {name: read() for name, read in self.sources.items()}
        self._busy = machine_busy()

    def stop(self) -> None:
        self.used = {name: read() - self.before[name] for name, read in self.sources.items()}
        busy = machine_busy()
        self.busy = (busy[0] - self._busy[0]) / max(1e-9, busy[1] - self._busy[1])

    def line(self, extra: dict[str, float] | None = None) -> str:
        used = dict(self.used, **(extra or {}))
        parts = ", ".join(f"{name} {secs(value)}" for name, value in used.items())
        return (f"{parts}; machine busy {self.busy:.0%} of {os.cpu_count()} cores "
                "(other users of the machine included)")


# ---- processes: gunicorn and RQ workers ---------------------------------------------------------


def app_env(database_url: str, redis_url: str, instance: Path, port: int | None = None,
            **extra: str) -> dict[str, str]:
    """The environment of a production web or worker process on the benchmark's services."""
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url,
               SECRET_KEY=SECRET_KEY, OUTREACH_ENV="production", OUTREACH_NO_DOTENV="1",
               OUTREACH_INSTANCE=str(instance), NO_PROXY="127.0.0.1,localhost",
               PUBLIC_BASE_URL=f"http://127.0.0.1:{port or 5000}")
    env.update(extra)
    return env


class Gunicorn:
    """`python -m gunicorn -w W --threads T -b 127.0.0.1:PORT APP` in its own process group."""

    def __init__(self, app_spec: str, workers: int, threads: int, env: dict[str, str],
                 workdir: Path, label: str, port: int | None = None,
                 pythonpath: str | None = None, access_log: bool = False) -> None:
        self.app_spec, self.workers, self.threads = app_spec, workers, threads
        self.access_log = access_log
        self.env, self.workdir, self.label = env, workdir, label
        self.port = port or free_port()
        self.pythonpath = pythonpath
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"{label}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> str:
        kind = "gthread" if self.threads > 1 else "sync"
        log = ", access log" if self.access_log else ""
        return f"gunicorn -w {self.workers} --threads {self.threads} ({kind}{log})"

    def start(self, probe: str = "/healthz", timeout: float = 60.0) -> None:
        import http.client

        argv = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "--threads",
                str(self.threads), "-b", f"127.0.0.1:{self.port}", "--log-level", "warning"]
        if self.pythonpath:
            argv += ["--pythonpath", self.pythonpath]
        if self.access_log:  # as the Procfile's `--access-logfile -` (stdout: the log file)
            argv += ["--access-logfile", "-"]
        argv.append(self.app_spec)
        log = open(self.log, "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.label}) exited at start: see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", probe)
                conn.getresponse().read()
                conn.close()
                ready += 1
                if ready >= 2 * self.workers:  # every worker booted, most likely
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({self.label}) did not answer within {timeout:.0f} s")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid) if self.proc else 0.0

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class EventWorkers:
    """Real `outreach worker --queues events` processes (forking RQ workers)."""

    def __init__(self, count: int, env: dict[str, str], workdir: Path, redis_url: str,
                 queues: str = "events") -> None:
        self.count, self.env, self.workdir, self.redis_url = count, env, workdir, redis_url
        self.queues = queues
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, timeout: float = 60.0) -> None:
        from redis import Redis
        from rq import Worker

        for i in range(self.count):
            path = self.workdir / f"events-worker-{i}.log"
            argv = [sys.executable, "-m", "outreach", "worker", "--queues", self.queues,
                    "--no-scheduler"]
            log = open(path, "wb")  # noqa: SIM115 - lives with the process
            self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
            self.logs.append(path)
        client = Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"an events worker exited at start: see {self.logs[0]}")
                pids = {w.pid for w in Worker.all(connection=client)}
                if all(p.pid in pids for p in self.procs):
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise RuntimeError(f"events workers not registered within {timeout:.0f} s")

    def cpu(self) -> float:
        return sum(tree_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)

    def text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tracebacks(self) -> int:
        return self.text().count("Traceback")

    def job_times(self, function: str) -> list[float]:
        """Seconds of each completed job of `function`, from RQ's log lines."""
        import re

        pattern = re.compile(re.escape(function) + r"\(.*?\) job in (\d+):(\d+):(\d+(?:\.\d+)?)s")
        return [int(h) * 3600 + int(m) * 60 + float(s)
                for h, m, s in pattern.findall(self.text())]



# ---- the load generator (a child process) -------------------------------------------------------

def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def _build_requests(cfg: dict[str, Any]) -> list[tuple[bytes, int]]:
    """(request bytes, kind) pairs: kind 0 = open, 1 = click."""
    from outreach.tokens import make_token

    rng = random.Random(cfg["seed"])
    host = f"127.0.0.1:{cfg['port']}"
    out = []
    for _ in range(cfg["pool"]):
        token = make_token(rng.randint(cfg["first_id"], cfg["last_id"]), cfg["secret"])
        ua = SCANNER_UA if rng.random() < cfg["machine_share"] else BROWSER_UA
        if rng.random() < cfg["open_share"]:
            path, kind = f"/o/{token}.gif", 0
        else:
            path, kind = f"/c/{token}/{rng.randrange(cfg['links'])}", 1
        out.append((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
                    "Accept: image/avif,image/webp,*/*\r\n\r\n".encode(), kind))
    return out


def client_main(config_path: str) -> int:
    """The load generator's child process: build requests, say "ready", wait for the start
    time on stdin, run, write results next to the config."""
    import asyncio

    cfg = json.loads(Path(config_path).read_text())
    requests = _build_requests(cfg)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    result = asyncio.run(_drive(cfg, requests, start_at))
    latencies = result.pop("latencies")
    Path(cfg["out"] + ".json").write_text(json.dumps(result))
    from array import array

    with open(cfg["out"] + ".lat", "wb") as fh:
        array("f", latencies).tofile(fh)
    return 0


async def _drive(cfg: dict[str, Any], requests: list[tuple[bytes, int]],
                 start_at: float) -> dict[str, Any]:
    import asyncio

    loop = asyncio.get_running_loop()

    class Http(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.waiter: asyncio.Future | None = None
            self.transport: Any = None
            self.closed = False

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[:end].lower()
            i = head.find(b"\r\ncontent-length:")
            length = 0
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17:j if j >= 0 else len(head)])
            if len(buf) < end + 4 + length:
                self.buf = buf
                return
            self.buf = buf[end + 4 + length:]
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((int(head[9:12]), b"\r\nconnection: close" in head))

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed = True
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionResetError("connection lost"))

    base = time.perf_counter() + (start_at - time.time())
    measure_from = base + cfg["warmup"]
    end = measure_from + cfg["seconds"]
    bins = [0] * (int(cfg["seconds"]) + 2)
    latencies: list[float] = []
    ok = [0, 0]  # 2xx/3xx responses per kind (open, click), warm-up included
    statuses: dict[str, int] = {}
    errors = {"connect": 0, "reset": 0}
    state = {"next": 0, "issued": 0, "measured_ok": 0}
    n_requests, max_requests = len(requests), cfg["max_requests"]
    protocols: list[Http] = []

    async def connect() -> Http | None:
        try:
            _, proto = await loop.create_connection(Http, "127.0.0.1", cfg["port"])
        except OSError:
            errors["connect"] += 1
            await asyncio.sleep(0.05)
            return None
        protocols.append(proto)
        return proto

    async def one_connection() -> None:
        proto: Http | None = None
        while True:
            if time.perf_counter() >= end or state["issued"] >= max_requests:
                break
            if proto is None or proto.closed:
                proto = await connect()
                if proto is None:
                    continue
            request, kind = requests[state["next"] % n_requests]
            state["next"] += 1
            state["issued"] += 1
            waiter = loop.create_future()
            proto.waiter = waiter
            sent = time.perf_counter()
            proto.transport.write(request)
            try:
                status, close = await waiter
            except ConnectionResetError:
                errors["reset"] += 1
                proto = None
                continue
            done = time.perf_counter()
            if 200 <= status < 400:
                ok[kind] += 1
            key = str(status)
            statuses[key] = statuses.get(key, 0) + 1
            if done >= measure_from and sent >= measure_from and done < end:
                latencies.append((done - sent) * 1000)
                bins[int(done - measure_from)] += 1
                if 200 <= status < 400:
                    state["measured_ok"] += 1
            if close:
                proto.transport.close()
                proto = None

    async def watchdog() -> None:  # a response that never comes must not hang the run
        await asyncio.sleep(max(0.0, end - time.perf_counter()) + 30)
        for proto in protocols:
            if not proto.closed:
                proto.transport.abort()

    await asyncio.sleep(max(0.0, base - time.perf_counter()))
    guard = asyncio.ensure_future(watchdog())
    await asyncio.gather(*(one_connection() for _ in range(cfg["connections"])))
    guard.cancel()
    for proto in protocols:
        if not proto.closed:
            proto.transport.close()
    cpu = os.times()
    return {"ok": ok, "statuses": statuses, "errors": errors, "bins": bins,
            "measured": len(latencies), "measured_ok": state["measured_ok"],
            "issued": state["issued"], "cpu": cpu.user + cpu.system, "latencies": latencies}


def run_load(port: int, blast: dict[str, Any], seconds: float, warmup: float, connections: int,
             clients: int, workdir: Path, label: str, open_share: float = 0.7,
             machine_share: float = 0.1, max_rate: int = 20_000) -> dict[str, Any]:
    """Run the load generator in `clients` child processes; merge their results."""
    procs, configs = [], []
    per_client = [connections // clients + (1 if i < connections % clients else 0)
                  for i in range(clients)]
    for i in range(clients):
        cfg = {"port": port, "secret": SECRET_KEY, "first_id": blast["first_id"],
               "last_id": blast["last_id"], "links": len(blast["links"]),
               "open_share": open_share, "machine_share": machine_share, "seed": 1000 + i,
               "pool": 100_000, "seconds": seconds, "warmup": warmup,
               "connections": per_client[i],
               "max_requests": int(max_rate * (seconds + warmup) / clients) + 1,
               "out": str(workdir / f"{label}-client-{i}")}
        path = workdir / f"{label}-client-{i}.cfg.json"
        path.write_text(json.dumps(cfg))
        configs.append(cfg)
        procs.append(subprocess.Popen([sys.executable, __file__, "--_client", str(path)],
                                      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))
    for proc in procs:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"load client failed to start ({label})")
    start_at = time.time() + 0.5
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at}\n")
        proc.stdin.flush()
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        if proc.returncode:
            raise RuntimeError(f"load client exited with {proc.returncode} ({label})")
    return merge_results(configs, seconds, warmup, cpu)


def merge_results(configs: list[dict[str, Any]], seconds: float, warmup: float,
                  cpu: float) -> dict[str, Any]:
    from array import array

    merged: dict[str, Any] = {"ok": [0, 0], "statuses": {}, "errors": {}, "measured": 0,
                              "measured_ok": 0, "issued": 0, "bins": None}
    latencies = array("f")
    for cfg in configs:
        part = json.loads(Path(cfg["out"] + ".json").read_text())
        merged["ok"] = [a + b for a, b in zip(merged["ok"], part["ok"], strict=True)]
        for key in ("statuses", "errors"):
            for name, value in part[key].items():
                merged[key][name] = merged[key].get(name, 0) + value
        for key in ("measured", "measured_ok", "issued"):
            merged[key] += part[key]
        merged["bins"] = part["bins"] if merged["bins"] is None else [
            a + b for a, b in zip(merged["bins"], part["bins"], strict=True)]
        with open(cfg["out"] + ".lat", "rb") as fh:
            latencies.frombytes(fh.read())
    ordered = sorted(latencies)
    full_bins = merged["bins"][:int(seconds)]
    merged.update(
        seconds=seconds, warmup=warmup, cpu=cpu, connections=sum(c["connections"] for c in configs),
        rate=merged["measured_ok"] / seconds, slowest_second=min(full_bins) if full_bins else 0,
        p50=_percentile(ordered, 50), p90=_percentile(ordered, 90), p99=_percentile(ordered, 99),
        p999=_percentile(ordered, 99.9), max=ordered[-1] if ordered else float("nan"),
        hits=sum(merged["ok"]))
    return merged


def latency_text(result: dict[str, Any]) -> str:
    return (f"p50 {result['p50']:.1f} ms, p90 {result['p90']:.1f}, p99 {result['p99']:.1f}, "
            f"p99.9 {result['p999']:.1f}, max {result['max']:.0f} ms")


# ---- rollups and the buffer ---------------------------------------------------------------------

def rollup_totals(database_url: str, blast_id: int,
                  kinds: Sequence[str] = ("open", "click")) -> dict[tuple[str, bool], tuple]:
    """{(kind, machine): (sum of total, sum of unique_count)} of a blast's rollups."""
    rows = psql(database_url, "SELECT kind, machine, coalesce(sum(total), 0), "
                "coalesce(sum(unique_count), 0) FROM rollups WHERE blast_id = %s "
                "AND kind = ANY(%s) GROUP BY kind, machine", (blast_id, list(kinds)))
    return {(kind, machine): (int(total), int(unique)) for kind, machine, total, unique in rows}


def rollup_sum(database_url: str, blast_id: int, kinds: Sequence[str] = ("open", "click")) -> int:
    return sum(total for total, _ in rollup_totals(database_url, blast_id, kinds).values())


class Sampler:
    """A thread that samples the hit buffer, the events queue and the rollups every second, and
    times a `SELECT 1` to PostgreSQL and a Redis PING ten times a second (round trips)."""

    def __init__(self, database_url: str, redis_url: str, blast_id: int,
                 kinds: Sequence[str] = ("open", "click")) -> None:
        import threading

        self.database_url, self.redis_url, self.blast_id = database_url, redis_url, blast_id
        self.kinds = kinds
        self.samples: list[tuple[float, int, int, int]] = []  # (t, buffer, queue, rollups)
        self.pg_rtt: list[float] = []
        self.redis_rtt: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start = time.perf_counter()

    def _run(self) -> None:
        import psycopg
        from redis import Redis

        client = Redis.from_url(self.redis_url)
        conn = psycopg.connect(libpq_url(self.database_url), autocommit=True)
        tick = 0
        while not self._stop.wait(0.1):
            try:
                started = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                self.pg_rtt.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                client.ping()
                self.redis_rtt.append((time.perf_counter() - started) * 1000)
                tick += 1
                if tick % 10 == 0:
                    self.samples.append((time.perf_counter() - self.start,
                                         int(client.llen("outreach:hits")),
                                         int(client.llen("rq:queue:events")),
                                         rollup_sum(self.database_url, self.blast_id,
                                                    self.kinds)))
            except Exception:  # noqa: BLE001 - a missed sample is not a result
                continue
        conn.close()
        client.close()

    def __enter__(self) -> Sampler:
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, index: int) -> int:
        return max((s[index] for s in self.samples), default=0)

    def rtt_text(self) -> str:
        pg, rd = sorted(self.pg_rtt), sorted(self.redis_rtt)
        return (f"PostgreSQL SELECT 1 p50 {_percentile(pg, 50):.1f} ms, p99 "
                f"{_percentile(pg, 99):.1f} ms; Redis PING p50 {_percentile(rd, 50):.1f} ms, "
                f"p99 {_percentile(rd, 99):.1f} ms ({len(pg)} probes, 10 a second)")


def wait_for_flush(database_url: str, redis_url: str, blast_id: int, expected: int,
                   timeout: float, quiet: float = 3.0) -> tuple[float | None, int]:
    """Poll until the hit buffer is empty and the rollups stop changing (or reach `expected`).

    Returns (seconds until complete or None on timeout, final rollup total).
    """
    from redis import Redis

    client = Redis.from_url(redis_url)
    start = time.perf_counter()
    last, stable_since = -1, time.perf_counter()
    try:
        while time.perf_counter() - start < timeout:
            buffered = int(client.llen("outreach:hits"))
            total = rollup_sum(database_url, blast_id)
            now = time.perf_counter()
            if total != last:
                last, stable_since = total, now
            if buffered == 0 and (total == expected or now - stable_since >= quiet):
                done = (stable_since if total != expected else now) - start
                return max(0.0, done), total
            time.sleep(0.2)
        return None, last
    finally:
        client.close()


def uniques_check(database_url: str, blast_id: int) -> tuple[bool, str]:
    """Rollups' unique counts against the events: first human open per message, first human
    click per (message, link), first human click per message (clickers)."""
    rows = psql(database_url, """
        SELECT
          (SELECT count(DISTINCT message_id) FROM events
            WHERE blast_id = %(b)s AND kind = 'open' AND NOT machine),
          (SELECT count(*) FROM (SELECT DISTINCT message_id, link_position FROM events
            WHERE blast_id = %(b)s AND kind = 'click' AND NOT machine) AS c),
          (SELECT count(DISTINCT message_id) FROM events
            WHERE blast_id = %(b)s AND kind = 'click' AND NOT machine),
          (SELECT coalesce(sum(unique_count), 0) FROM rollups WHERE blast_id = %(b)s
            AND kind = 'open'),
          (SELECT coalesce(sum(unique_count), 0) FROM rollups WHERE blast_id = %(b)s
            AND kind = 'click'),
          (SELECT coalesce(sum(unique_count), 0) FROM rollups WHERE blast_id = %(b)s
            AND kind = 'clicker')""", {"b": blast_id})[0]
    opens, clicks, clickers, r_opens, r_clicks, r_clickers = (int(v) for v in rows)
    ok = (opens, clicks, clickers) == (r_opens, r_clicks, r_clickers)
    return ok, (f"unique opens {n(r_opens)} (events {n(opens)}), unique clicks {n(r_clicks)} "
                f"(events {n(clicks)}), clickers {n(r_clickers)} (events {n(clickers)})")


# ---- in-process measurements: flush capacity, profiles ------------------------------------------

class StatementTimes:
    """Seconds and calls per SQL statement shape on an engine, while recording."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine, self.times, self.active = engine, {}, False

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            conn.info.setdefault("bench_started", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started = conn.info["bench_started"].pop()
            if self.active:
                key = " ".join(statement.split())[:110]
                seconds, calls = self.times.get(key, (0.0, 0))
                self.times[key] = (seconds + time.perf_counter() - started, calls + 1)

    @contextmanager
    def recording(self) -> Iterator[StatementTimes]:
        self.times, self.active = {}, True
        try:
            yield self
        finally:
            self.active = False

    def report(self, top: int = 8, indent: str = "    ") -> list[str]:
        rows = sorted(self.times.items(), key=lambda kv: -kv[1][0])[:top]
        return [f"{indent}{seconds * 1000:9.0f} ms {calls:6d}x  {sql}"
                for sql, (seconds, calls) in rows]


def print_profile(profile: Any, top: int, title: str) -> None:
    import io
    import pstats

    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"\n  {title}: top {top} by {order}")
        print("\n".join("    " + line for line in lines[start:] if line.strip()))


def buffered_hits(blast: dict[str, Any], count: int, seed: int = 7) -> list[bytes]:
    """Hit records in push_hit's format for random messages of the blast (30% clicks)."""
    from outreach.tracking.buffer import encode_hit

    rng = random.Random(seed)
    now = time.time()
    out = []
    for _ in range(count):
        click = rng.random() < 0.3
        out.append(encode_hit("click" if click else "open",
                              rng.randint(blast["first_id"], blast["last_id"]),
                              rng.randrange(len(blast["links"])) if click else None, None,
                              "203.0.113.9", BROWSER_UA, "GET", at=now))
    return out


def flush_capacity(app: Any, blast: dict[str, Any], count: int, profile_top: int = 0
                   ) -> tuple[float, list[str]]:
    """Push `count` hits into the buffer and time flush_hits in-process; return (seconds,
    slowest SQL). With profile_top, cProfile it and print the top entries."""
    from outreach.queue import redis
    from outreach.tracking import buffer

    statements = StatementTimes(app.extensions["db_engine"])
    with app.app_context():
        client = redis()
        hits = buffered_hits(blast, count, seed=11 if profile_top else 7)
        for start in range(0, len(hits), 10_000):
            client.rpush(buffer.HITS_KEY, *hits[start:start + 10_000])
        with statements.recording():
            started = time.perf_counter()
            if profile_top:
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            flushed = buffer.flush_hits()
            if profile_top:
                profile.disable()
            seconds = time.perf_counter() - started
        if flushed != count:
            print(f"  (flush_hits wrote {flushed} of {count} buffered hits)")
    if profile_top:
        print_profile(profile, profile_top, f"flush_hits of {n(count)} buffered hits")
        print(f"\n  SQL during that flush ({secs(seconds)} in all, cProfile on):")
        print("\n".join(statements.report()))
    return seconds, statements.report(indent="")


def profile_views(app: Any, blast: dict[str, Any], count: int, top: int) -> None:
    """cProfile `count` open/click requests through the app's test client, in-process."""
    import cProfile

    from outreach.tokens import make_token

    client = app.test_client()
    rng = random.Random(5)
    paths = []
    with app.app_context():
        for i in range(count):
            token = make_token(rng.randint(blast["first_id"], blast["last_id"]))
            paths.append(f"/o/{token}.gif" if i % 10 < 7 else f"/c/{token}/{i % 3}")
    for path in paths[:50]:  # warm: connections, compiled statements
        client.get(path, headers={"User-Agent": BROWSER_UA})
    statements = StatementTimes(app.extensions["db_engine"])
    profile = cProfile.Profile()
    with statements.recording():
        started = time.perf_counter()
        profile.enable()
        for path in paths:
            client.get(path, headers={"User-Agent": BROWSER_UA},
                       environ_base={"REMOTE_ADDR": "203.0.113.9"})
        profile.disable()
        seconds = time.perf_counter() - started
    print(f"\n  {n(count)} tracking requests in-process (test client, one thread): "
          f"{secs(seconds)}, {seconds / count * 1000:.2f} ms each with cProfile on")
    print_profile(profile, top, "views (open pixel 70%, click 30%)")
    print("\n  SQL of those requests:")
    print("\n".join(statements.report(4)))


def _environ(path: str) -> dict[str, Any]:
    """A WSGI environ as gunicorn builds it for a load generator request."""
    import io

    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:5000", "REMOTE_ADDR": "203.0.113.9",
            "HTTP_USER_AGENT": BROWSER_UA, "HTTP_ACCEPT": "image/avif,image/webp,*/*",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
            "wsgi.run_once": False}


def view_cpu(app: Any, blast: dict[str, Any], count: int) -> float:
    """Milliseconds of one thread per tracking request, calling the app's WSGI callable
    directly (no HTTP server, no test client, no profiler); the buffered hits are left for
    the caller to discard."""
    from outreach.tokens import make_token

    rng = random.Random(9)
    with app.app_context():
        paths = [f"/o/{make_token(rng.randint(blast['first_id'], blast['last_id']))}.gif"
                 if i % 10 < 7 else
                 f"/c/{make_token(rng.randint(blast['first_id'], blast['last_id']))}/{i % 3}"
                 for i in range(count)]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    for path in paths[:50]:
        b"".join(app(_environ(path), start_response))
    environs = [_environ(path) for path in paths]
    started = time.process_time()
    for environ in environs:
        b"".join(app(environ, start_response))
    return (time.process_time() - started) / count * 1000


# ---- the benchmark ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured load (default 60)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="load before the measured window (its hits are counted too)")
    parser.add_argument("--baseline-seconds", type=float, default=None,
                        help="load on the bare endpoint (default: min(20, --seconds))")
    parser.add_argument("--messages", type=int, default=200_000, help="messages in the blast")
    parser.add_argument("--links", type=int, default=4, help="tracked links in the blast")
    parser.add_argument("--web-workers", type=int, default=None,
                        help="gunicorn -w (default: the Procfile's, WEB_CONCURRENCY applied)")
    parser.add_argument("--threads", type=int, default=None,
                        help="gunicorn --threads (default: the Procfile's)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                        help="gunicorn's access log (default: as the Procfile)")
    parser.add_argument("--event-workers", type=int, default=1,
                        help="`outreach worker --queues events` processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--clients", type=int, default=1, help="load generator processes")
    parser.add_argument("--open-share", type=float, default=0.7, help="opens vs clicks")
    parser.add_argument("--machine-share", type=float, default=0.1,
                        help="requests with a link scanner's user agent (machine hits)")
    parser.add_argument("--flush-sample", type=int, default=50_000,
                        help="hits for the in-process flush capacity figure (0: skip)")
    parser.add_argument("--flush-timeout", type=float, default=None,
                        help="seconds to wait for the buffer to drain after the load")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured run, cProfile the views and a flush")
    parser.add_argument("--profile-top", type=int, default=22)
    parser.add_argument("--database-url", default=None,
                        help="server to create the throwaway database in (default: "
                             "BENCH_DATABASE_URL or the local PostgreSQL)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database to use (flushed before and after)")
    parser.add_argument("--_client", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._client:
        return client_main(args._client)
    procfile = procfile_web()
    args.web_workers = args.web_workers or procfile["workers"]
    args.threads = args.threads or procfile["threads"]
    args.access_log = procfile["access_log"] if args.access_log is None else args.access_log
    interruptible()
    baseline_seconds = args.baseline_seconds or min(20.0, args.seconds)
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-tracking-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (gunicorn, worker and client logs): {workdir}", flush=True)
    servers: list[Gunicorn] = []
    workers: EventWorkers | None = None
    checks: list[tuple[str, bool, str]] = []
    flush_redis(args.redis_url)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server_line = postgres_line(database_url)
            app, missing = build_bench_app(database_url, workdir / "instance", args.redis_url)
            started = time.perf_counter()
            blast = seed_email_blast(database_url, args.messages, args.links)
            print(f"seeded {n(args.messages)} contacts and a sent blast of {n(args.messages)} "
                  f"messages, {args.links} links in {secs(time.perf_counter() - started)} "
                  "(not measured)", flush=True)

            # The baseline first, on its own: the same gunicorn settings, the same requests.
            bare = Gunicorn("tracking:bare_app", args.web_workers, args.threads, dict(os.environ),
                            workdir, "bare", pythonpath=str(ROOT / "bench"),
                            access_log=args.access_log)
            servers.append(bare)
            bare.start(probe="/")
            print(f"bare endpoint up ({bare.settings}); {secs(baseline_seconds)} of load",
                  flush=True)
            bare_cpu = bare.cpu()
            base = run_load(bare.port, blast, baseline_seconds, args.warmup, args.connections,
                            args.clients, workdir, "bare", args.open_share, args.machine_share)
            base["server_cpu"] = bare.cpu() - bare_cpu
            bare.stop()

            port = free_port()
            env = app_env(database_url, args.redis_url, workdir / "web-instance", port)
            web = Gunicorn("outreach:create_app()", args.web_workers, args.threads, env,
                           workdir, "web", port=port, access_log=args.access_log)
            servers.append(web)
            workers = EventWorkers(args.event_workers, env, workdir, args.redis_url)
            workers.start()
            web.start()
            print(f"app up ({web.settings}, {args.event_workers} events worker(s)); "
                  f"{secs(args.seconds)} of load after {secs(args.warmup)} of warm-up",
                  flush=True)
            meter = CpuMeter(database_url, {
                "gunicorn": web.cpu, "events worker": workers.cpu,
                "PostgreSQL backends": lambda: database_backends_cpu(database_url)})
            meter.start()
            with Sampler(database_url, args.redis_url, blast["blast_id"]) as sampler:
                load = run_load(port, blast, args.seconds, args.warmup, args.connections,
                                args.clients, workdir, "app", args.open_share,
                                args.machine_share)
                load_end = time.perf_counter()
                timeout = args.flush_timeout or max(120.0, 3 * args.seconds)
                lag, counted = wait_for_flush(database_url, args.redis_url, blast["blast_id"],
                                              load["hits"], timeout)
            meter.stop()
            drained_after = (time.perf_counter() - load_end) if lag is None else lag
            totals = rollup_totals(database_url, blast["blast_id"])
            event_rows = psql(database_url, "SELECT count(*) FROM events WHERE blast_id = %s "
                              "AND kind IN ('open', 'click')", (blast["blast_id"],))[0][0]
            opens = sum(v[0] for k, v in totals.items() if k[0] == "open")
            clicks = sum(v[0] for k, v in totals.items() if k[0] == "click")
            machine_hits = sum(v[0] for k, v in totals.items() if k[1])
            unique_ok, unique_detail = uniques_check(database_url, blast["blast_id"])
            failed = failed_jobs(args.redis_url, ("events",))
            checks += [
                ("every hit counted", counted == load["hits"] and lag is not None,
                 f"hits sent {n(load['hits'])} (opens {n(load['ok'][0])}, clicks "
                 f"{n(load['ok'][1])}) = hits in the rollups {n(counted)} (opens {n(opens)}, "
                 f"clicks {n(clicks)})" if counted == load["hits"] else
                 f"hits sent {n(load['hits'])} (opens {n(load['ok'][0])}, clicks "
                 f"{n(load['ok'][1])}) != hits in the rollups {n(counted)} (opens {n(opens)}, "
                 f"clicks {n(clicks)})" + ("" if lag is not None else
                                           f"; buffer not drained within {secs(timeout)}")),
                ("events rows", event_rows == load["hits"],
                 f"{n(event_rows)} open/click events stored"),
                ("unique counts", unique_ok, unique_detail),
                ("machine hits", 0 < machine_hits < load["hits"],
                 f"{n(machine_hits)} flagged machine ({machine_hits / max(1, load['hits']):.1%}"
                 f"; the generator sent {args.machine_share:.0%} with a scanner's user agent)"),
                ("no errors", not load["errors"].get("reset") and set(load["statuses"]) <= {
                    "200", "302"}, f"statuses {load['statuses']}, client errors "
                                   f"{load['errors']}"),
                ("failed jobs", failed == 0, f"{failed} in the events queue's failed registry"),
                ("tracebacks", web.tracebacks() + workers.tracebacks() == 0,
                 f"{web.tracebacks()} in gunicorn's log, {workers.tracebacks()} in workers'"),
            ]
            flush_jobs = workers.job_times("outreach.tracking.buffer.flush_hits")
            web.stop()
            workers.stop()

            capacity, cpu_ms = None, None
            if args.flush_sample:
                flush_redis(args.redis_url)
                seconds, _ = flush_capacity(app, blast, args.flush_sample)
                capacity = (args.flush_sample, seconds)
                cpu_ms = view_cpu(app, blast, 3000)
                flush_redis(args.redis_url)
            if args.profile:
                print("\n== profile (in-process, after the measured run; timings inflated by "
                      "cProfile)")
                flush_redis(args.redis_url)
                profile_views(app, blast, 3000, args.profile_top)
                flush_redis(args.redis_url)
                flush_capacity(app, blast, args.flush_sample or 50_000, args.profile_top)
            app.extensions["db_engine"].dispose()
        report(args, load, base, baseline_seconds, meter, sampler, counted, lag, drained_after,
               capacity, cpu_ms, flush_jobs, web, checks,
               server_line, missing)
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        for server in servers:
            server.stop()
        if workers is not None:
            workers.stop()
        flush_redis(args.redis_url)


def report(args: argparse.Namespace, load: dict[str, Any], base: dict[str, Any],
           baseline_seconds: float, meter: CpuMeter, sampler: Sampler, counted: int,
           lag: float | None,
           drained_after: float, capacity: tuple[int, float] | None, cpu_ms: float | None,
           flush_jobs: list[float], web: Gunicorn, checks: list[tuple[str, bool, str]],
           server: str, missing: list[str]) -> None:
    ratio = load["rate"] / base["rate"] if base["rate"] else None
    rows: list[tuple[str, ...] | None] = [
        ("blast", f"{n(args.messages)} messages",
         f"{args.links} links, sent a day ago; requests {args.open_share:.0%} opens / "
         f"{1 - args.open_share:.0%} clicks, {args.machine_share:.0%} with a scanner's user "
         "agent"),
        ("server", web.settings, f"{args.event_workers} events worker(s); load generator: "
         f"{load['connections']} keep-alive connections, {args.clients} asyncio process(es), "
         "closed loop"),
        None,
        ("hits/s", n(load["rate"]),
         f"2xx/3xx responses in the {secs(load['seconds'])} window after "
         f"{secs(load['warmup'])} of warm-up; slowest second {n(load['slowest_second'])}"),
        ("latency", f"p99 {load['p99']:.1f} ms", latency_text(load)),
        ("bare endpoint", f"{n(base['rate'])} req/s",
         f"same GIF and headers, no work, same gunicorn settings, {secs(baseline_seconds)}; "
         + latency_text(base) + f"; load generator CPU {secs(base['cpu'])}"),
        ("ratio", f"{ratio:.2f}x" if ratio else "-",
         f"tracking hits/s / bare req/s (latency p50 x{load['p50'] / base['p50']:.1f}, "
         f"p99 x{load['p99'] / base['p99']:.1f})"),
        None,
        ("hits sent", n(load["hits"]),
         f"2xx/3xx responses the generator saw, warm-up included (opens {n(load['ok'][0])}, "
         f"clicks {n(load['ok'][1])})"),
        ("hits in rollups", n(counted),
         "sum of rollups.total, kinds open and click, once the buffer drained"
         + ("" if counted == load["hits"] else f" (DIFFERENCE {counted - load['hits']:+,})")),
        ("buffer drained", secs(drained_after) if lag is not None else "NO",
         f"after the load ended (buffer empty, rollups final); peak buffer "
         f"{n(sampler.peak(1))} hits, peak events queue {n(sampler.peak(2))} jobs"),
    ]
    if flush_jobs:
        rows.append(("flush jobs", n(len(flush_jobs)),
                     f"flush_hits jobs completed, {secs(sum(flush_jobs))} inside them, longest "
                     f"{secs(max(flush_jobs))} (RQ's log)"))
    if capacity:
        count, seconds = capacity
        rows.append(("flush capacity", f"{n(count / seconds)} hits/s",
                     f"flush_hits in-process on {n(count)} buffered hits: {secs(seconds)}"))
    if cpu_ms is not None:
        rows.append(("view CPU", f"{cpu_ms:.2f} ms",
                     "per request (70% opens), one thread, the app's WSGI callable in-process "
                     f"(no HTTP server): at most {n(os.cpu_count() * 1000 / cpu_ms)} req/s on "
                     f"{os.cpu_count()} cores "
                     "for the views alone"))
    hits = max(1, load["hits"])
    bare_ms = base["server_cpu"] / max(1, sum(base["ok"])) * 1000
    rows.append(("CPU per hit", f"{meter.used['gunicorn'] / hits * 1000:.2f} ms",
                 f"gunicorn (bare endpoint: {bare_ms:.2f} ms per request); events worker "
                 f"{meter.used['events worker'] / hits * 1000:.2f} ms; PostgreSQL "
                 f"{meter.used['PostgreSQL backends'] / hits * 1000:.2f} ms in this database's "
                 f"backends, {meter.used['PostgreSQL'] / hits * 1000:.2f} ms the whole server "
                 "(other databases' work, WAL writer and checkpoints included); load generator "
                 f"{load['cpu'] / hits * 1000:.2f} ms"))
    rows.append(("round trips", "during the run", sampler.rtt_text()))
    in_server = meter.used["PostgreSQL backends"]  # part of "PostgreSQL": not added twice
    rows.append(("CPU during run", secs(sum(meter.used.values()) - in_server + load["cpu"]),
                 meter.line({"load generator": load["cpu"]})))
    if missing:
        rows.append(("schema", "create_all", f"migrations/ lacked {len(missing)} tables: "
                                             f"{', '.join(missing)}"))
    print_figures(rows, title=f"bench/tracking.py --seconds {args.seconds:g} --messages "
                              f"{args.messages} --connections {args.connections}")
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    misses = []
    if load["rate"] < GOAL_HITS_PER_SECOND:
        misses.append(f"{n(load['rate'])} hits/s < {n(GOAL_HITS_PER_SECOND)}")
    if load["p99"] >= GOAL_P99_MS:
        misses.append(f"p99 {load['p99']:.1f} ms >= {GOAL_P99_MS:.0f} ms")
    if not checks[0][1]:
        misses.append("hits lost or double counted")
    verdict = "MET" if not misses else "NOT MET: " + "; ".join(misses)
    print(f"\ngoal: >= {n(GOAL_HITS_PER_SECOND)} hits/s, p99 < {GOAL_P99_MS:.0f} ms, every hit "
          f"counted  ->  {verdict}")
    print(f"machine: {machine_line()}; {server}")
    if not all(ok for _, ok, _ in checks):
        print("CORRECTNESS CHECKS FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
