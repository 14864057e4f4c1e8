"""Benchmark: 100,000 SMS through RQ workers and the Twilio emulator, unlimited and rate-limited.

Seeds consenting contacts with unique, valid US mobile numbers (COPY; not measured; time zone
and state set from the area code, as an import infers them), saves an SMS template with merges,
starts the Twilio emulator and real `outreach worker` processes (queues prepare and sms), and
runs two blasts:

(a) unlimited: `--messages` texts (default 100,000), `--workers` workers, SMS_CONCURRENCY as
    configured (default 16): launch to all accepted, and the rate the emulator observes;
(b) limited: SMS_RATE_PER_SECOND=`--rate` (50) shared by the workers through Redis,
    `--limited-messages` texts (4,000: about 80 s): from the emulator's request arrival times,
    the count in every 10-second window (sliding by 1 s), leaving out the first and last 5 s
    (ramp), must stay within 5% of rate x 10.

Baseline, in the same run: the same number of requests as (a), sent one after the other from
one process with a requests.Session straight to the emulator (no outreach code).

The workers run with SMS quiet hours widened to 00:00-23:59 (SMS_QUIET_START, SMS_QUIET_END,
SMS_QUIET_END_FL_OK) so the benchmark runs at any hour; the output says so.

    .venv/bin/python bench/blast_sms.py                       # 100,000 + 4,000 texts
    .venv/bin/python bench/blast_sms.py --messages 20000 --limited-messages 4000
    .venv/bin/python bench/blast_sms.py --messages 20000 --profile

Goals (2-core machine): (a) at least 500 messages/s; (b) every 10-second window within 5% of
rate x 10. Exits non-zero when a correctness check fails (not when a goal is missed).
"""

from __future__ import annotations

import argparse
import bisect
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # blast_email's helpers
from blast_email import (  # noqa: E402
    DEFAULT_REDIS_URL,
    TWILIO_SERVICE,
    TWILIO_SID,
    TWILIO_TOKEN,
    Emulators,
    StatementTimes,
    Watch,
    Workers,
    admin_database_url,
    batch_rows,
    bench_app,
    city_of,
    cpu_rows,
    create_blast,
    ensure_schema,
    failed_jobs,
    first_name_of,
    flush_redis,
    fresh_database,
    interruptible,
    launch,
    machine_busy,
    machine_line,
    make_list,
    message_counts,
    n,
    phone_of,
    postgres_cpu,
    postgres_line,
    print_figures,
    profile_call,
    rate_between,
    save_template,
    secs,
    seed_contacts,
    timer,
    watch_blast,
    worker_env,
)

GOAL_RATE = 500.0
TOLERANCE = 0.05
WINDOW, STEP, RAMP = 10.0, 1.0, 5.0
QUIET = {"SMS_QUIET_START": "00:00", "SMS_QUIET_END": "23:59", "SMS_QUIET_END_FL_OK": "23:59"}
SMS_BODY = ('Hi {{ first_name }}! {{ fields.city | default("your town") }} votes Tuesday. '
            "Find your polling place: https://vote.example.org/where")
CALLBACK = "http://127.0.0.1:5000/webhooks/twilio/status"


def expected_body(i: int) -> str:
    city = city_of(i) or "your town"
    return (f"Hi {first_name_of(i)}! {city} votes Tuesday. Find your polling place: "
            "https://vote.example.org/where\nReply STOP to opt out")


def run_baseline(emulators: Emulators, count: int) -> tuple[float, int]:
    """`count` Messages.json POSTs, one after the other, from one requests.Session."""
    import requests

    http = requests.Session()
    http.trust_env = False
    url = f"{emulators.twilio_url}/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    refused = 0
    with timer() as t:
        for i in range(count):
            resp = http.post(url, auth=(TWILIO_SID, TWILIO_TOKEN), timeout=30, data={
                "To": phone_of(i), "MessagingServiceSid": TWILIO_SERVICE,
                "Body": expected_body(i), "StatusCallback": CALLBACK})
            refused += resp.status_code != 201
    http.close()
    return t.seconds, refused


def verify_messages(emulators: Emulators, count: int, page_size: int = 20_000) -> dict[str, Any]:
    """Every message the emulator accepted: one per contact, with that contact's merged body."""
    index = {phone_of(i): i for i in range(count)}
    seen = bytearray(count)
    out = {"messages": 0, "duplicates": 0, "unknown": 0, "wrong_body": 0, "examples": []}
    offset = 0
    while True:
        page = emulators.get("twilio", "messages", offset=offset, limit=page_size)
        for message in page["messages"]:
            out["messages"] += 1
            i = index.get(message["to"])
            if i is None:
                out["unknown"] += 1
                continue
            out["duplicates"] += seen[i]
            seen[i] = 1
            if message["body"] != expected_body(i):
                out["wrong_body"] += 1
                if len(out["examples"]) < 3:
                    out["examples"].append(f"{message['to']}: {message['body']!r}")
        offset += len(page["messages"])
        if not page["messages"] or offset >= page["total"]:
            break
    out["distinct"] = sum(seen)
    return out


def windows(stamps: list[float]) -> list[int]:
    """Requests in every WINDOW-second window, sliding by STEP, without the RAMP at both ends."""
    if not stamps:
        return []
    counts = []
    start, stop = stamps[0] + RAMP, stamps[-1] - RAMP
    while start + WINDOW <= stop:
        counts.append(bisect.bisect_left(stamps, start + WINDOW) - bisect.bisect_left(
            stamps, start))
        start += STEP
    return counts


def run_blast(label: str, app: Any, database_url: str, redis_url: str, emulators: Emulators,
              template_id: int, list_id: int, count: int, workers_count: int,
              workdir: Path, timeout: float, **env_extra: str) -> dict[str, Any]:
    """Start workers with this environment, launch a blast, watch it, stop the workers, check."""
    env = worker_env(database_url, redis_url, emulators, workdir / "worker-instance",
                     **QUIET, **env_extra)
    workers = Workers(workers_count, "prepare,sms", env, workdir, redis_url, label=label)
    out: dict[str, Any] = {"label": label, "count": count}
    try:
        up = workers.start()
        print(f"[{label}] {workers_count} workers up in {secs(up)}; launching {n(count)} texts",
              flush=True)
        blast_id = create_blast(app, f"bench sms {label}", template_id, [list_id])
        cpu_before, emu_before = workers.cpu(), emulators.cpu()
        pg_before, busy_before = postgres_cpu(database_url), machine_busy()
        launched = launch(app, blast_id)

        def accepted() -> tuple[int, dict[str, Any]]:
            state = emulators.state("twilio")
            return int(state["accepted"]), state

        watch = watch_blast(database_url, blast_id, launched, count, accepted, timeout,
                            redis_url)
        busy_after = machine_busy()
        out["figures"] = {
            "worker_cpu": workers.cpu() - cpu_before, "emulator_cpu": emulators.cpu() - emu_before,
            "postgres_cpu": postgres_cpu(database_url) - pg_before,
            "postgres_db_cpu": watch.postgres_cpu,
            "machine_busy": (busy_after[0] - busy_before[0]) / max(
                1e-9, busy_after[1] - busy_before[1])}
    finally:
        workers.stop()
    out["figures"]["jobs"] = workers.job_seconds()
    out["figures"]["batches"] = workers.batch_durations()
    out["spans"] = workers.job_spans()
    out["watch"] = watch
    out["stamps"] = emulators.timestamps("twilio")
    out["state"] = emulators.state("twilio")
    counts = message_counts(database_url, blast_id)
    failed = failed_jobs(redis_url, ["prepare", "sms"])
    result = verify_messages(emulators, count)
    out["checks"] = [
        (f"{label}: blast finished", watch.reason is None, watch.reason or "done"),
        (f"{label}: messages all sent", counts.get("sent", 0) == count
         and sum(counts.values()) == count, str(counts)),
        (f"{label}: emulator", out["state"]["accepted"] == count and not out["state"]["rejected"],
         f"{n(out['state']['accepted'])} accepted of {n(out['state']['requests'])} requests, "
         f"{out['state']['rejected']} rejected, {out['state']['faulted']} faulted"),
        (f"{label}: one text per contact, merged", result["distinct"] == count
         and not result["duplicates"] and not result["unknown"] and not result["wrong_body"],
         f"{n(result['distinct'])} distinct numbers, {result['duplicates']} duplicates, "
         f"{result['unknown']} unknown, {result['wrong_body']} wrong bodies"
         + (f"; e.g. {result['examples']}" if result["examples"] else "")),
        (f"{label}: failed jobs", failed == 0, f"{failed} in RQ's failed registries"),
        (f"{label}: worker tracebacks", workers.tracebacks() == 0,
         f"{workers.tracebacks()} in logs"),
    ]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000,
                        help="texts in the unlimited run (a)")
    parser.add_argument("--limited-messages", type=int, default=4_000,
                        help="texts in the rate-limited run (b); 4,000 at 50/s is about 80 s")
    parser.add_argument("--rate", type=float, default=50.0, help="SMS_RATE_PER_SECOND of (b)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="SMS_CONCURRENCY for the workers (default: the app's, 16)")
    parser.add_argument("--baseline-messages", type=int, default=None,
                        help="requests in the baseline loop (default: --messages)")
    parser.add_argument("--only", choices=["unlimited", "limited"], default=None)
    parser.add_argument("--database-url", default=None,
                        help="server to create the throwaway database in (default: env "
                             "BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/"
                             "postgres)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for the queues (flushed at start and end)")
    parser.add_argument("--profile", action="store_true",
                        help="after the runs: cProfile one send_batch of 1000 texts in-process "
                             "(every thread), with SQL statement timings")
    parser.add_argument("--profile-top", type=int, default=20, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interruptible()
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    contacts = max(args.messages, args.limited_messages)
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-sms-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (worker and emulator logs): {workdir}", flush=True)
    print("SMS quiet hours for the workers: " + ", ".join(f"{k}={v}" for k, v in QUIET.items())
          + " (so the benchmark runs at any hour)", flush=True)
    emulators = Emulators(workdir)
    runs: dict[str, dict[str, Any]] = {}
    baseline: tuple[float, int, int] | None = None
    extra = {"SMS_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}
    flush_redis(args.redis_url)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server = postgres_line(database_url)
            emulators.start()
            app = bench_app(database_url, workdir / "instance", args.redis_url, emulators,
                            **QUIET)
            missing = ensure_schema(app)
            with timer() as seed_t:
                seed_contacts(database_url, contacts, with_zone=True)
                list_a = make_list(database_url, "bench sms", args.messages)
                list_b = make_list(database_url, "bench sms limited", args.limited_messages)
            print(f"seeded {n(contacts)} contacts with phones and two lists in "
                  f"{secs(seed_t.seconds)} (not measured)", flush=True)
            template_id = save_template(app, {"channel": "sms", "name": "bench sms",
                                              "body": SMS_BODY})
            if args.only != "limited":
                count = args.baseline_messages or args.messages
                print(f"baseline: {n(count)} requests from one requests.Session...", flush=True)
                seconds, refused = run_baseline(emulators, count)
                baseline = (seconds, count, refused)
                emulators.reset("twilio")
                runs["unlimited"] = run_blast(
                    "unlimited", app, database_url, args.redis_url, emulators, template_id,
                    list_a, args.messages, args.workers, workdir,
                    timeout=max(120.0, 20 * args.messages / GOAL_RATE),
                    SMS_RATE_PER_SECOND="0", **extra)
                emulators.reset("twilio")
            if args.only != "unlimited":
                flush_redis(args.redis_url)  # a fresh limiter key and queues
                runs["limited"] = run_blast(
                    "limited", app, database_url, args.redis_url, emulators, template_id,
                    list_b, args.limited_messages, args.workers, workdir,
                    timeout=120.0 + 2 * args.limited_messages / args.rate,
                    SMS_RATE_PER_SECOND=f"{args.rate:g}", **extra)
                emulators.reset("twilio")
            if args.profile:
                run_profile(app, database_url, template_id, list_a, args.profile_top)
        checks = [c for run in runs.values() for c in run["checks"]]
        if baseline is not None:
            checks.insert(0, ("baseline answers", baseline[2] == 0,
                              f"{baseline[2]} of {n(baseline[1])} not 201"))
        report(args, runs, baseline, checks, server, missing)
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        emulators.stop()
        flush_redis(args.redis_url)


def run_profile(app: Any, database_url: str, template_id: int, list_id: int, top: int) -> None:
    """cProfile (in every thread) one send_batch of an unlimited blast, in-process."""
    import cProfile
    import io
    import pstats
    import threading

    from outreach.blasts import pipeline

    print("\n== profile (in-process, after the measured runs; timings inflated by cProfile)")
    app.config.update(SMS_RATE_PER_SECOND=0.0)
    blast_id = create_blast(app, "bench sms profile", template_id, [list_id])
    launch(app, blast_id, enqueue=False)
    with app.app_context():
        pipeline.prepare_blast(blast_id)
        first = pipeline.batch_ranges(blast_id)[0]
    statements = StatementTimes(app.extensions["db_engine"])
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profiler(*_: Any) -> None:
        profiler = cProfile.Profile()
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook for the rest of the thread's life

    threading.setprofile(start_thread_profiler)
    try:
        with app.app_context():
            seconds, sent = profile_call(f"send_batch {first} (main thread)",
                                         lambda: pipeline.send_batch(blast_id, *first),
                                         statements, top)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    print(f"\n  {sent} texts in {secs(seconds)} in one process "
          f"({n(sent / seconds)} texts/s under cProfile)")
    if profilers:
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            stats.stream = out
            stats.strip_dirs().sort_stats(order).print_stats(top)
            body = out.getvalue()
            start = body.find("   ncalls")
            print(f"  sender threads ({len(profilers)} of them, summed), top {top} by {order}:")
            print("\n".join("    " + line for line in body[start:].rstrip().splitlines()))


def report(args: argparse.Namespace, runs: dict[str, dict[str, Any]],
           baseline: tuple[float, int, int] | None, checks: list[tuple[str, bool, str]],
           server: str, missing: list[str]) -> None:
    rows: list[tuple[str, ...] | None] = []
    misses: list[str] = []
    concurrency = args.concurrency or 16
    if "unlimited" in runs:
        run = runs["unlimited"]
        watch: Watch = run["watch"]
        count, stamps = run["count"], run["stamps"]
        prepare = watch.since_launch(watch.reached("sending", "done"))
        total = watch.since_launch(watch.all_accepted)
        observed = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
        steady = rate_between(watch.samples, count)
        rows += [
            ("(a) unlimited", f"{n(count)} texts", f"{args.workers} workers (prepare,sms), "
             f"SMS_CONCURRENCY={concurrency}, no SMS_RATE_PER_SECOND"),
            ("  prepare", secs(prepare), "launch -> blast 'sending'"),
            ("  first request", secs(stamps[0] - watch.launched if stamps else None),
             "launch -> first request at the emulator"),
            ("  total", secs(total), f"launch -> {n(count)} accepted "
             f"({n(count / total) if total else '-'} messages/s end to end)"),
            ("  messages/s", n(observed) if observed else "-",
             "as the emulator observes them (first to last request); steady "
             f"{n(steady) if steady else '-'}/s (10% -> 90% of accepted)"),
        ]
        if baseline is not None:
            seconds, b_count, _ = baseline
            b_rate = b_count / seconds
            rows += [
                ("  baseline", f"{n(b_rate)}/s", f"{n(b_count)} requests in {secs(seconds)}, one "
                 "after the other, one requests.Session, no outreach code"),
                ("  ratio", f"{observed / b_rate:.2f}x" if observed else "-",
                 "pipeline rate / baseline rate"),
            ]
        rows += [(f"  {r[0]}", *r[1:]) if r else None
                 for r in cpu_rows(run["figures"], args.workers,
                                   (total - prepare) if total and prepare else None)]
        rows += [(f"  {r[0]}", *r[1:]) if r else None
                 for r in batch_rows(run["figures"].get("batches", []))]
        if observed is None or observed < GOAL_RATE:
            misses.append(f"(a) {n(observed) if observed else '-'} messages/s < {GOAL_RATE:.0f}")
    if "limited" in runs:
        run = runs["limited"]
        watch = run["watch"]
        count, stamps = run["count"], run["stamps"]
        target = args.rate * WINDOW
        low, high = target * (1 - TOLERANCE), target * (1 + TOLERANCE)
        counts = windows(stamps)
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        inside = [c for c in counts if low <= c <= high]
        overall = f"{n((len(stamps) - 1) / span)}/s overall" if span else "-"
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        rows += [
            None,
            ("(b) limited", f"{n(count)} texts", f"SMS_RATE_PER_SECOND={args.rate:g} shared by "
             f"{args.workers} workers, SMS_CONCURRENCY={concurrency}"),
            ("  prepare", secs(watch.since_launch(watch.reached("sending", "done"))),
             "launch -> blast 'sending'"),
            ("  sending", secs(span), f"first to last request ({overall})"),
            ("  10-s windows", n(len(counts)), f"sliding by {STEP:g} s, first and last {RAMP:g} s "
             "left out (ramp)"),
            ("  per window", f"{min(counts) if counts else '-'}..{max(counts) if counts else '-'}",
             f"min..max requests; target {target:g} +/- {TOLERANCE:.0%} = {low:g}..{high:g}; "
             f"{len(inside)} of {len(counts)} windows inside"),
            ("  largest gap", secs(max(gaps) if gaps else None),
             f"between two requests (the spacing is {1 / args.rate * 1000:.0f} ms)"),
        ]
        rows += [(f"  {r[0]}", *r[1:]) if r else None
                 for r in cpu_rows(run["figures"], args.workers, span or None)]
        t0 = stamps[0] if stamps else 0.0
        holes = [(a - t0, b - a) for a, b in zip(stamps, stamps[1:], strict=False)
                 if b - a >= 0.25]
        rows.append(("  gaps >= 0.25 s", n(len(holes)), ", ".join(
            f"{length:.2f} s at {at:.1f} s" for at, length in holes[:8]) or "none"))
        rows.append(("  batch jobs", n(len(run.get("spans", []))), "; ".join(
            f"w{w}: {a - t0:.1f}..{b - t0:.1f} s" for w, a, b in run.get("spans", [])[:8])
            + " (from the first request; RQ's log, ms precision)"))
        if len(counts) < 6 or len(inside) != len(counts):
            misses.append(f"(b) {len(counts) - len(inside)} of {len(counts)} windows outside "
                          f"{low:g}..{high:g}" if len(counts) >= 6 else
                          f"(b) only {len(counts)} full windows (need 6)")
    rows += [None, ("quiet hours", "00:00-23:59",
                    "SMS_QUIET_START/END/END_FL_OK widened for the benchmark")]
    if missing:
        rows.append(("schema", "create_all", f"migrations/ lacked {len(missing)} tables: "
                                             f"{', '.join(missing)}"))
    print_figures(rows, title=f"bench/blast_sms.py --messages {args.messages} "
                              f"--limited-messages {args.limited_messages}")
    if "limited" in runs:
        target = args.rate * WINDOW
        low, high = target * (1 - TOLERANCE), target * (1 + TOLERANCE)
        counts = windows(runs["limited"]["stamps"])
        print(f"\n(b) every 10-s window (start s after the first request + {RAMP:g} s: count; "
              f"* = outside {low:g}..{high:g}):")
        cells = [f"{i * STEP:>4.0f}:{c:>4}{'*' if not low <= c <= high else ' '}"
                 for i, c in enumerate(counts)]
        for i in range(0, len(cells), 10):
            print("  " + " ".join(cells[i:i + 10]))
        verdict_b = "MET" if counts and len(counts) >= 6 and all(
            low <= c <= high for c in counts) else "NOT MET"
        print(f"  verdict (b): {verdict_b} ({sum(low <= c <= high for c in counts)} of "
              f"{len(counts)} windows inside, min {min(counts, default=0)}, "
              f"max {max(counts, default=0)})")
    for label, run in runs.items():
        if run["watch"].sql:
            print(f"\nSQL in flight during ({label[0]}) {label}, by quarter of the accepted count:")
            print("\n".join(run["watch"].sql_report(top=6)))
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    verdict = "MET" if not misses else "NOT MET: " + "; ".join(misses)
    print(f"\ngoal: (a) >= {GOAL_RATE:.0f} messages/s; (b) every 10-s window within "
          f"{TOLERANCE:.0%} of {args.rate:g}/s  ->  {verdict}")
    print(f"machine: {machine_line()}; {server}")
    if not all(ok for _, ok, _ in checks):
        print("CORRECTNESS CHECKS FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
