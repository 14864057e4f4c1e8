"""Benchmark: 50 staff users browse the pages while a 1,000,000-recipient email blast sends.

Reuses bench/blast_email.py's harness (throwaway PostgreSQL database, COPY-seeded contacts, the
SendGrid emulator, real `outreach worker` processes, launching and watching the blast) and adds:

- the web server as the Procfile's `web` process runs it (gunicorn, `--workers
  ${WEB_CONCURRENCY:-2} --threads 4`, access log on), bound to 127.0.0.1 on a free port, with
  `OUTREACH_ENV=production`;
- `--users` simulated staff users, each its own account and HTTP session, in a child process
  (so the load generator does not share an interpreter with the blast's watcher). Each signs
  in through the real login form (CSRF token read from the page), then loops over the staff
  pages (dashboard, blasts, the sending blast's page, its status poll and its metrics page,
  contacts, a contact search, a contact, lists, templates, outbox, metrics overview,
  suppressions) with a think time of `--think` seconds on average between pages.

Phases: `--idle-seconds` of browsing with nothing sending (the unloaded latencies), then the
blast is launched and the users browse until the emulator has accepted every recipient.
`--compare` first sends a blast with no users browsing, for the blast's unloaded throughput.

    .venv/bin/python bench/staff_load.py --contacts 50000 --idle-seconds 10   # a quick run
    .venv/bin/python bench/staff_load.py                                      # 1,000,000
    .venv/bin/python bench/staff_load.py --contacts 200000 --compare

Goal: while the blast sends, the staff pages' p95 latency is under 500 ms (all pages
together). Exits non-zero when a correctness check fails (the blast incomplete, a page
erroring), not when the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from blast_email import (
    DEFAULT_REDIS_URL,
    EMAIL_HTML,
    EMAIL_SUBJECT,
    EMAIL_TEXT,
    ROOT,
    Emulators,
    Workers,
    admin_database_url,
    bench_app,
    cpu_seconds,
    create_blast,
    ensure_schema,
    failed_jobs,
    flush_redis,
    free_port,
    fresh_database,
    interruptible,
    launch,
    machine_line,
    make_list,
    message_counts,
    n,
    postgres_line,
    print_figures,
    secs,
    seed_contacts,
    stop_process,
    watch_blast,
    worker_env,
)

GOAL_P95_MS = 500.0
PASSWORD = "bench staff password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGES = [("dashboard", "/"), ("blasts", "/blasts"), ("blast", "/blasts/{blast}"),
         ("blast status.json", "/blasts/{blast}/status.json"),
         ("blast metrics", "/blasts/{blast}/metrics"), ("contacts", "/contacts"),
         ("contact search", "/contacts?q={q}"), ("contact", "/contacts/{contact}"),
         ("lists", "/lists"), ("templates", "/templates"), ("outbox", "/outbox/"),
         ("metrics overview", "/metrics"), ("suppressions", "/suppressions")]
SEARCHES = ["García", "supporter4242", "O'Brien", "bench3.example.org", "Zoë", "Washington"]


# ---- the web server, as the Procfile runs it ----------------------------------------------------

def procfile_web(port: int, concurrency: int | None) -> list[str]:
    """The Procfile's `web` command with $PORT (and $WEB_CONCURRENCY) filled in, on loopback."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines()
                if line.startswith("web:"))
    values = {"PORT": str(port)}
    if concurrency is not None:
        values["WEB_CONCURRENCY"] = str(concurrency)

    def expand(match: re.Match[str]) -> str:
        return values.get(match.group(1)) or os.environ.get(match.group(1)) or match.group(2)

    command = re.sub(r"\$\{(\w+):-([^}]*)\}", expand, line.split(":", 1)[1].strip())
    argv = shlex.split(command)
    assert argv[0] == "gunicorn", f"unexpected web process: {command}"
    # The venv's gunicorn; loopback instead of 0.0.0.0 (a benchmark exposes nothing).
    argv = [sys.executable, "-m", "gunicorn", *argv[1:]]
    return [a.replace("0.0.0.0:", "127.0.0.1:") for a in argv]


class Web:
    """gunicorn running the Procfile's web command, its log in the work dir."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> None:
        self.argv, self.env, self.workdir, self.port = argv, env, workdir, port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        import requests

        log = open(self.workdir / "web.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.workdir / 'web.log'}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def cpu(self) -> float:
        """CPU of the gunicorn arbiter and its workers (live children read one by one)."""
        if self.proc is None:
            return 0.0
        total = cpu_seconds(self.proc.pid, children=False)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == self.proc.pid:
                    total += cpu_seconds(int(entry.name), children=False)
        return total

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


# ---- the simulated staff users (a child process) ------------------------------------------------

def run_users(config_path: str) -> int:
    """Child process: sign every user in, write the ready file, browse until the stop file."""
    import requests
    from urllib3.util.retry import Retry

    cfg = json.loads(Path(config_path).read_text())
    base, stop_file = cfg["base"], Path(cfg["stop"])
    results: list[tuple[float, str, float, int]] = []
    lock = threading.Lock()
    logged_in = [0]
    kinds: dict[str, int] = {}  # exceptions by class, for the report
    deadline = time.time() + cfg["max_seconds"]

    def get(session: Any, name: str, path: str, **kw: Any) -> Any:
        start = time.time()
        try:
            resp = session.request(kw.pop("method", "GET"), base + path, timeout=120, **kw)
            status = resp.status_code
            if (status == 200 and name != "login form"
                    and resp.url.split("?")[0].endswith("/login")):
                status = -401  # redirected to sign in: the session was lost
        except requests.RequestException as exc:
            resp, status = None, -1
            with lock:
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
        with lock:
            results.append((start, name, time.time() - start, status))
        return resp

    def user(index: int) -> None:
        rng = random.Random(cfg["seed"] + index)
        time.sleep(index * cfg["ramp"] / max(1, cfg["users"]))
        session = requests.Session()
        session.trust_env = False
        # gunicorn closes idle keep-alive connections after 2 s; a browser then quietly
        # reconnects, and so do we (the retry's time is part of the request's latency).
        retry = Retry(total=2, connect=2, read=1, status=0, allowed_methods=None)
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
        page = get(session, "login form", "/login")
        token = CSRF.search(page.text).group(1) if page is not None else ""
        get(session, "login", "/login", method="POST",
            data={"email": cfg["emails"][index], "password": PASSWORD, "csrf_token": token})
        with lock:
            logged_in[0] += 1
            if logged_in[0] == cfg["users"]:
                Path(cfg["ready"]).write_text("ready")
        i = rng.randrange(len(PAGES))
        while not stop_file.exists() and time.time() < deadline:
            name, path = PAGES[i % len(PAGES)]
            i += 1
            get(session, name, path.format(blast=cfg["blast"], q=rng.choice(SEARCHES),
                                           contact=rng.randint(1, cfg["contacts"])))
            pause = rng.uniform(0.5, 1.5) * cfg["think"]
            while pause > 0 and not stop_file.exists():
                time.sleep(min(0.25, pause))
                pause -= 0.25

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(cfg["users"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(cfg["out"]).write_text(json.dumps(results))
    Path(cfg["out"] + ".errors").write_text(json.dumps(kinds))
    return 0


# ---- figures -------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (seconds)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


def latency_rows(records: list[list[Any]], seconds: float) -> list[tuple[str, ...] | None]:
    """p50/p95/p99 per page and overall, requests/s and errors, for one phase."""
    by_page: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for _, name, took, status in records:
        by_page.setdefault(name, []).append(took)
        if status != 200:
            errors[name] = errors.get(name, 0) + 1
    rows: list[tuple[str, ...] | None] = []

    def row(label: str, values: list[float], bad: int) -> tuple[str, ...]:
        values = sorted(values)
        ms = [percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99)]
        return (label, f"p95 {ms[1]:6.0f} ms", f"p50 {ms[0]:5.0f} ms  p99 {ms[2]:6.0f} ms  "
                f"max {values[-1] * 1000:6.0f} ms  {n(len(values)):>6} requests"
                + (f"  {bad} ERRORS" if bad else ""))

    for name, _ in [("login form", ""), ("login", ""), *PAGES]:
        if name in by_page:
            rows.append(row("  " + name, by_page[name], errors.get(name, 0)))
    everything = [took for values in by_page.values() for took in values]
    if everything:
        rows.append(row("all pages", everything, sum(errors.values())))
        rows.append(("requests/s", f"{len(everything) / max(seconds, 1e-9):.1f}",
                     f"over {secs(seconds)}"))
    return rows


def overall_p95(records: list[list[Any]]) -> float | None:
    values = sorted(r[2] for r in records)
    return percentile(values, 0.95) * 1000 if values else None


# ---- the run -------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean seconds a user waits between pages (uniform 0.5x..1.5x)")
    parser.add_argument("--workers", type=int, default=2, help="outreach worker processes")
    parser.add_argument("--web-concurrency", type=int, default=None,
                        help="gunicorn workers (default: the Procfile's ${WEB_CONCURRENCY:-2})")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="browsing before the launch: the unloaded page latencies")
    parser.add_argument("--compare", action="store_true",
                        help="first send a blast with nobody browsing (unloaded throughput)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for the queues (flushed at start and end)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up on the blast after this many seconds (default: 1 s per "
                             "100 contacts, at least 300)")
    parser.add_argument("--_users", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def create_staff(app: Any, count: int) -> list[str]:
    """One organizer account per simulated user; returns their emails."""
    from outreach import db
    from outreach.accounts.service import create_user

    emails = [f"staff{i}@bench.example.org" for i in range(count)]
    with app.app_context(), db.transaction() as session:
        for email in emails:
            create_user(session, email, "organizer", PASSWORD, "Bench staff")
    return emails


def run_blast(app: Any, database_url: str, emulators: Emulators, blast_id: int, count: int,
              timeout: float, redis_url: str) -> tuple[Any, float, float]:
    """Launch, watch until every recipient is accepted; (watch, launched, ended) in unix time."""

    def accepted() -> tuple[int, dict[str, Any]]:
        state = emulators.state("sendgrid")
        return int(state["recipients"]), state

    launched = launch(app, blast_id)
    watch = watch_blast(database_url, blast_id, launched, count, accepted, timeout, redis_url)
    return watch, launched, watch.all_accepted or time.time()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._users:
        return run_users(args._users)
    interruptible()
    count = args.contacts
    timeout = args.timeout or max(300.0, count / 100)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-staff-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (web, worker and emulator logs): {workdir}", flush=True)
    emulators = Emulators(workdir)
    workers: Workers | None = None
    web: Web | None = None
    users: subprocess.Popen | None = None
    stop_file = workdir / "users.stop"
    checks: list[tuple[str, bool, str]] = []
    flush_redis(args.redis_url)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server = postgres_line(database_url)
            emulators.start()
            app = bench_app(database_url, workdir / "instance", args.redis_url, emulators)
            ensure_schema(app)
            started = time.perf_counter()
            seed_contacts(database_url, count)
            list_id = make_list(database_url, "bench staff load", count)
            emails = create_staff(app, args.users)
            template_id = _template(app)
            print(f"seeded {n(count)} contacts, a list and {args.users} staff accounts in "
                  f"{secs(time.perf_counter() - started)} (not measured)", flush=True)
            env = worker_env(database_url, args.redis_url, emulators, workdir / "worker-instance")
            workers = Workers(args.workers, "prepare,email", env, workdir, args.redis_url)
            workers.start()
            unloaded = None
            if args.compare:
                first = create_blast(app, "bench unloaded blast", template_id, [list_id])
                watch, launched, ended = run_blast(app, database_url, emulators, first, count,
                                                   timeout, args.redis_url)
                unloaded = (ended - launched, watch.reason)
                print(f"unloaded blast: {secs(ended - launched)} "
                      f"({n(count / (ended - launched))} messages/s)", flush=True)
                emulators.reset("sendgrid")
            blast_id = create_blast(app, "bench staff-load blast", template_id, [list_id])
            port = free_port()
            web_env = dict(env, OUTREACH_ENV="production",
                           PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
            web = Web(procfile_web(port, args.web_concurrency), web_env, workdir, port)
            web.start()
            print(f"web: {' '.join(web.argv[2:])}", flush=True)
            config = {"base": web.url, "users": args.users, "emails": emails, "think": args.think,
                      "blast": blast_id, "contacts": count, "seed": 7, "ramp": 5.0,
                      "stop": str(stop_file), "ready": str(workdir / "users.ready"),
                      "out": str(workdir / "users.json"),
                      "max_seconds": timeout + args.idle_seconds + 300}
            (workdir / "users.config.json").write_text(json.dumps(config))
            users = subprocess.Popen([sys.executable, __file__, "--_users",
                                      str(workdir / "users.config.json")], cwd=ROOT,
                                     start_new_session=True)
            deadline = time.time() + 180
            while not Path(config["ready"]).exists():
                if users.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the simulated users did not all sign in")
                time.sleep(0.2)
            idle_start = time.time()
            print(f"{args.users} users signed in; {secs(args.idle_seconds)} of browsing with "
                  "nothing sending", flush=True)
            time.sleep(args.idle_seconds)
            web_cpu, worker_cpu = web.cpu(), workers.cpu()
            watch, launched, ended = run_blast(app, database_url, emulators, blast_id, count,
                                               timeout, args.redis_url)
            web_cpu, worker_cpu = web.cpu() - web_cpu, workers.cpu() - worker_cpu
            stop_file.write_text("stop")
            users.wait(timeout=180)
            records = json.loads(Path(config["out"]).read_text())
            exceptions = json.loads(Path(config["out"] + ".errors").read_text())
            counts = message_counts(database_url, blast_id)
            failed = failed_jobs(args.redis_url, ["prepare", "email"])
        idle = [r for r in records if idle_start <= r[0] < launched]
        loaded = [r for r in records if launched <= r[0] <= ended]
        bad = [r for r in records if r[3] != 200]
        logins_ok = sum(1 for r in records if r[1] == "login" and r[3] == 200)
        checks += [
            ("blast finished", watch.reason is None and watch.all_accepted is not None,
             watch.reason or "all accepted"),
            ("messages all sent", counts.get("sent", 0) == count, json.dumps(counts)),
            ("failed jobs", failed == 0, f"{failed} in RQ's failed registries"),
            ("users signed in", logins_ok == args.users, f"{logins_ok} of {args.users}"),
            ("page errors", not bad, f"{len(bad)} non-200 answers"
             + (f", e.g. {bad[0][1]} -> {bad[0][3]}" if bad else "")
             + (f"; exceptions (status -1): {exceptions}" if exceptions else "")),
        ]
        total = ended - launched
        rows: list[tuple[str, ...] | None] = [
            ("contacts", n(count), f"{args.workers} workers (prepare,email), SendGrid emulator"),
            ("users", str(args.users), f"think {args.think:.1f} s mean between pages"),
            ("blast while browsed", secs(total), f"launch -> all accepted, "
             f"{n(count / total)} messages/s"),
        ]
        if unloaded is not None:
            rows.append(("blast unloaded", secs(unloaded[0]),
                         f"{n(count / unloaded[0])} messages/s with nobody browsing; loaded "
                         f"takes {total / unloaded[0]:.2f}x"))
        rows += [("CPU while sending", secs(web_cpu), f"gunicorn; workers {secs(worker_cpu)}"),
                 None, ("idle (nothing sending)", "", "")]
        rows += latency_rows(idle, launched - idle_start)
        rows += [None, ("while the blast sends", "", "")]
        rows += latency_rows(loaded, total)
        print_figures(rows, title=f"bench/staff_load.py --contacts {count} --users {args.users}")
        print("\nchecks:")
        for name, ok, detail in checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
        p95 = overall_p95(loaded)
        verdict = "MET" if p95 is not None and p95 < GOAL_P95_MS else "NOT MET"
        print(f"\ngoal: p95 < {GOAL_P95_MS:.0f} ms -> {verdict} (p95 "
              f"{p95 if p95 is not None else float('nan'):.0f} ms over {n(len(loaded))} page "
              f"requests while {n(count)} emails were sending)")
        print(f"machine: {machine_line()}; {server}")
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        stop_file.parent.mkdir(parents=True, exist_ok=True)
        stop_file.write_text("stop")
        if users is not None and users.poll() is None:
            try:
                users.wait(timeout=30)
            except subprocess.TimeoutExpired:
                users.kill()
        if web is not None:
            web.stop()
        if workers is not None:
            workers.stop()
        emulators.stop()
        flush_redis(args.redis_url)


def _template(app: Any) -> int:
    """The email template of bench/blast_email.py (merges, two tracked links, CSS)."""
    from blast_email import save_template

    return save_template(app, {"channel": "email", "name": "bench staff load",
                               "subject": EMAIL_SUBJECT, "html": EMAIL_HTML, "text": EMAIL_TEXT,
                               "from_name": "Outreach Bench"})


if __name__ == "__main__":
    sys.exit(main())
