"""Benchmark: signed SendGrid Event Webhook batches through gunicorn, RQ and the ingestion.

Seeds a sent email blast straight into PostgreSQL (not measured), builds `--events` realistic
SendGrid events for its messages (each message's story: processed, sometimes deferred, then
delivered, bounced or dropped; opens, some flagged `sg_machine_open`, and clicks on its tracked
links; a few spam reports and unsubscribes), shuffles them, cuts them into batches of
`--batch` (1,000) and signs each with an EC P-256 key whose public half is the app's
`SENDGRID_WEBHOOK_PUBLIC_KEY` (signing is not measured). Then gunicorn on the app and
`--event-workers` real `outreach worker --queues events` processes, and `--senders` threads
POST the batches to `/webhooks/sendgrid` over keep-alive connections. Figures:

- HTTP accept: events/s from the first POST to the last 200, POST latency p50/p99/max;
- ingestion: events/s from the first POST until every event is a row of `events` and counted
  in the rollups (polled every 0.2 s), and how long after the last accept that was;
- the ingestion job alone, in-process (`jobs.ingest_sendgrid` on fresh batches), as a
  reference for what RQ and the HTTP path add; `--profile` runs cProfile over one batch;
- checks: events rows and rollups = events sent, every message's status as its story says,
  suppressions and revoked consents for exactly the bounced, dropped and opted-out addresses,
  and a replay of already-ingested batches changing nothing.

    .venv/bin/python bench/webhooks.py                    # 200,000 events (200 batches)
    .venv/bin/python bench/webhooks.py --events 50000     # a quick run
    .venv/bin/python bench/webhooks.py --events 50000 --profile

Goal: at least 20,000 events/s ingested (from POST to rows written). Exits non-zero when a
correctness check fails (not when the goal is missed).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import (
    DEFAULT_REDIS_URL,
    admin_database_url,
    fresh_database,
    machine_line,
    n,
    postgres_line,
    print_figures,
    secs,
)
from tracking import (
    BROWSER_UA,
    SECRET_KEY,
    CpuMeter,
    EventWorkers,
    Gunicorn,
    StatementTimes,
    _percentile,
    app_env,
    build_bench_app,
    cpu_seconds,
    failed_jobs,
    flush_redis,
    free_port,
    interruptible,
    print_profile,
    psql,
    seed_email_blast,
)

GOAL_EVENTS_PER_SECOND = 20_000
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
STATUS_OF = {"delivered": "delivered", "bounce": "bounced", "dropped": "failed"}
OPT_OUTS = ("spamreport", "unsubscribe", "group_unsubscribe")


# ---- the events ---------------------------------------------------------------------------------

class Signer:
    """An EC P-256 key: signs timestamp + body as SendGrid does; its public half, base64 DER."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key_b64 = base64.b64encode(der).decode()

    def sign(self, body: bytes) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        timestamp = str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(),
                TIMESTAMP_HEADER: timestamp, "Content-Type": "application/json",
                "User-Agent": "SendGrid Event API"}


def message_rows(database_url: str, blast_id: int) -> list[tuple[int, str, int]]:
    """(id, address, contact_id) of the blast's messages, by id."""
    return [(int(i), a, int(c)) for i, a, c in psql(
        database_url, "SELECT id, address, contact_id FROM messages WHERE blast_id = %s "
        "ORDER BY id", (blast_id,))]


def build_events(messages: list[tuple[int, str, int]], blast_id: int, links: int, total: int,
                 base_url: str, seed: int = 3) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`total` events telling the stories of the first messages, shuffled; and what the
    database must hold once they are ingested (statuses, suppressions, revoked contacts)."""
    from outreach.tokens import make_token

    rng = random.Random(seed)
    now = int(time.time())
    events: list[dict[str, Any]] = []

    def event(kind: str, mid: int, address: str, offset: int, **extra: Any) -> None:
        events.append({"email": address, "timestamp": now - 20 * 3600 + offset, "event": kind,
                       "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22],
                       "sg_message_id": f"bench{mid // 1000}.filter0001.{mid}.0",
                       "smtp-id": f"<bench{mid}@ismtpd0001p1.sendgrid.net>", "category": ["bench"],
                       "outreach_message_id": str(mid), "outreach_blast_id": str(blast_id),
                       **extra})

    for mid, address, _ in messages:
        if len(events) >= total:
            break
        t = rng.randrange(0, 3600)
        event("processed", mid, address, t)
        if rng.random() < 0.05:
            event("deferred", mid, address, t + 60, response="421 4.7.0 Try again later",
                  attempt="1")
        roll = rng.random()
        if roll < 0.02:
            event("dropped", mid, address, t + 5, reason="Bounced Address", status="5.0.0")
            continue
        if roll < 0.07:
            blocked = roll < 0.035
            event("bounce", mid, address, t + 30, **(
                {"type": "blocked", "status": "5.7.1", "bounce_classification": "Reputation",
                 "reason": "550 5.7.1 Message rejected due to sender reputation"} if blocked else
                {"type": "bounce", "status": "5.1.1", "bounce_classification": "Invalid Address",
                 "reason": "550 5.1.1 The email account that you tried to reach does not "
                           "exist."}))
            continue
        event("delivered", mid, address, t + 20, response="250 2.0.0 OK", ip="149.72.0.1",
              tls=1)
        seen = {"useragent": BROWSER_UA, "ip": "203.0.113.7"}
        if rng.random() < 0.45:
            for k in range(1 + (rng.random() < 0.3)):
                event("open", mid, address, t + 600 + 900 * k, **seen,
                      sg_machine_open=rng.random() < 0.1)
            if rng.random() < 0.3:
                position = rng.randrange(links)
                event("click", mid, address, t + 700, **seen,
                      url=f"{base_url}/c/{make_token(mid, SECRET_KEY)}/{position}",
                      url_offset={"index": position, "type": "html"})
        opt = rng.random()
        if opt < 0.004:
            kind = OPT_OUTS[int(opt * 1000) % 3]
            extra = {"asm_group_id": 1} if kind == "group_unsubscribe" else {}
            event(kind, mid, address, t + 1800, **seen, **extra)
    events = events[:total]
    # What the (possibly truncated) list implies.
    kept = {int(e["outreach_message_id"]) for e in events}
    by_kind = Counter(e["event"] for e in events)
    status = Counter()
    final: dict[int, str] = {}
    for e in events:
        target = STATUS_OF.get(e["event"])
        if target:
            final[int(e["outreach_message_id"])] = target
    for mid in kept:
        status[final.get(mid, "sent")] += 1
    addresses = {e["email"] for e in events if (
        e["event"] == "dropped" or (e["event"] == "bounce" and e.get("type") == "bounce")
        or e["event"] in OPT_OUTS)}
    opted = {e["email"] for e in events if e["event"] in OPT_OUTS}
    contacts = {c for _, a, c in messages if a in opted}
    rng.shuffle(events)
    return events, {"kinds": by_kind, "messages": len(kept), "statuses": status,
                    "suppressed": len(addresses), "revoked": len(contacts)}


def make_batches(events: list[dict[str, Any]], size: int, signer: Signer
                 ) -> list[tuple[bytes, dict[str, str], int]]:
    """(body, headers, events) per batch, signed."""
    out = []
    for start in range(0, len(events), size):
        part = events[start:start + size]
        body = json.dumps(part, separators=(",", ":")).encode()
        out.append((body, signer.sign(body), len(part)))
    return out


# ---- posting ------------------------------------------------------------------------------------

def post_batches(port: int, batches: list[tuple[bytes, dict[str, str], int]], senders: int
                 ) -> dict[str, Any]:
    """POST every batch with `senders` keep-alive threads; latencies and statuses."""
    import http.client

    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    statuses: Counter = Counter()
    stamps: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max(600.0, len(batches) * 2.0)

    def sender() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= len(batches):
                break
            body, headers, _ = batches[index]
            started = time.perf_counter()
            try:
                conn.request("POST", "/webhooks/sendgrid", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            done = time.perf_counter()
            with lock:
                latencies.append((done - started) * 1000)
                statuses[response.status] += 1
                stamps.append(done)
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    return {"started": started, "last": max(stamps) if stamps else started,
            "statuses": dict(statuses), "errors": errors,
            "p50": _percentile(ordered, 50), "p99": _percentile(ordered, 99),
            "max": ordered[-1] if ordered else float("nan")}


def stored(database_url: str, blast_id: int) -> tuple[int, int]:
    """(events rows, rollup totals without the derived 'clicker' kind) of the blast."""
    rows = psql(database_url, "SELECT (SELECT count(*) FROM events WHERE blast_id = %(b)s), "
                "(SELECT coalesce(sum(total), 0) FROM rollups WHERE blast_id = %(b)s "
                "AND kind <> 'clicker')", {"b": blast_id})[0]
    return int(rows[0]), int(rows[1])


def rollup_total(database_url: str, blast_id: int) -> int:
    return int(psql(database_url, "SELECT coalesce(sum(total), 0) FROM rollups WHERE blast_id "
                    "= %s AND kind <> 'clicker'", (blast_id,))[0][0])


def watch_ingestion(database_url: str, redis_url: str, blast_id: int, expected: int,
                    timeout: float, samples: list[tuple[float, int, int]],
                    stop: threading.Event) -> dict[str, float | None]:
    """Poll the rollups every 0.2 s until they count `expected` events; record the time and
    the events queue's length along the way (runs in a thread while the POSTs go out)."""
    from redis import Redis

    client = Redis.from_url(redis_url)
    start = time.perf_counter()
    result: dict[str, float | None] = {"done": None}
    try:
        while time.perf_counter() - start < timeout and not stop.is_set():
            total = rollup_total(database_url, blast_id)
            samples.append((time.perf_counter(), total, int(client.llen("rq:queue:events"))))
            if total >= expected:
                result["done"] = time.perf_counter()
                return result
            time.sleep(0.2)
        return result
    finally:
        client.close()


def queue_idle(redis_url: str, timeout: float = 300.0) -> bool:
    """Wait until the events queue is empty and no job is running."""
    from redis import Redis
    from rq import Queue
    from rq.registry import StartedJobRegistry

    client = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if (Queue("events", connection=client).count == 0
                    and StartedJobRegistry("events", connection=client).count == 0):
                return True
            time.sleep(0.2)
        return False
    finally:
        client.close()


def database_state(database_url: str, blast_id: int) -> dict[str, Any]:
    statuses = dict(psql(database_url, "SELECT status, count(*) FROM messages WHERE blast_id = "
                         "%s GROUP BY status", (blast_id,)))
    suppressed = psql(database_url, "SELECT count(*) FROM suppressions WHERE channel = 'email'")
    revoked = psql(database_url, "SELECT count(*) FROM contacts WHERE email_consent = 'revoked'")
    delivered_at = psql(database_url, "SELECT count(*) FROM messages WHERE blast_id = %s AND "
                        "status = 'delivered' AND delivered_at IS NULL", (blast_id,))
    return {"statuses": {k: int(v) for k, v in statuses.items()},
            "suppressed": int(suppressed[0][0]), "revoked": int(revoked[0][0]),
            "delivered_without_at": int(delivered_at[0][0])}


# ---- in-process ---------------------------------------------------------------------------------

def backends_cpu(database_url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to this database (this
    process's pool, once the server and workers are stopped): PostgreSQL's share of the work,
    free of what other databases on the server cost."""
    rows = psql(database_url, "SELECT pid FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()")
    return sum(cpu_seconds(int(pid), children=False) for (pid,) in rows)


def in_process(app: Any, messages: list[tuple[int, str, int]], blast_id: int, links: int,
               count: int, batch: int, base_url: str, profile_top: int = 0,
               database_url: str | None = None) -> tuple[int, float, float, float]:
    """Ingest `count` more events (fresh ids, the same messages) with jobs.ingest_sendgrid in
    this process, batch by batch; return (events, seconds, CPU seconds of this process, CPU
    seconds of its PostgreSQL backend). cProfile it with profile_top."""
    from outreach import db
    from outreach.tracking import jobs

    events, _ = build_events(messages, blast_id, links, count, base_url,
                             seed=17 if profile_top else 13)
    bodies = [json.dumps(events[i:i + batch], separators=(",", ":"))
              for i in range(0, len(events), batch)]
    statements = StatementTimes(app.extensions["db_engine"])
    with app.app_context():
        if profile_top:
            import cProfile

            profile = cProfile.Profile()
        db.session().execute(sa.text("SELECT 1"))  # the pooled connection, before measuring
        db.session().commit()
        with statements.recording():
            pg_before = backends_cpu(database_url) if database_url else 0.0
            cpu_before = time.process_time()
            started = time.perf_counter()
            for body in bodies:
                if profile_top:
                    profile.enable()
                jobs.ingest_sendgrid(body)
                if profile_top:
                    profile.disable()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
            pg_cpu = (backends_cpu(database_url) - pg_before) if database_url else 0.0
    if profile_top:
        print_profile(profile, profile_top, f"jobs.ingest_sendgrid, {len(bodies)} batch(es) of "
                                            f"{batch} events")
        print(f"\n  SQL during those batches ({secs(seconds)} in all, cProfile on):")
        print("\n".join(statements.report(10)))
    return len(events), seconds, cpu, pg_cpu


# ---- the benchmark ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to post")
    parser.add_argument("--batch", type=int, default=1000, help="events per signed POST")
    parser.add_argument("--links", type=int, default=4, help="tracked links in the blast")
    parser.add_argument("--senders", type=int, default=4, help="concurrent POSTing threads")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn -w")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn --threads")
    parser.add_argument("--event-workers", type=int, default=2,
                        help="`outreach worker --queues events` processes")
    parser.add_argument("--in-process-events", type=int, default=10_000,
                        help="events for the in-process ingestion figure (0: skip)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the ingestion (default: scaled to --events)")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured run, cProfile jobs.ingest_sendgrid")
    parser.add_argument("--profile-top", type=int, default=22)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database to use (flushed before and after)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interruptible()
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-webhooks-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (gunicorn and worker logs): {workdir}", flush=True)
    web: Gunicorn | None = None
    workers: EventWorkers | None = None
    checks: list[tuple[str, bool, str]] = []
    flush_redis(args.redis_url)
    timeout = args.timeout or max(180.0, args.events / 500)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server = postgres_line(database_url)
            signer = Signer()
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            app, missing = build_bench_app(database_url, workdir / "instance", args.redis_url,
                                           SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64,
                                           PUBLIC_BASE_URL=base_url)
            # ~2.6 events per message, and room for the in-process figure's messages.
            count = math.ceil(args.events / 2.3) + 10
            started = time.perf_counter()
            blast = seed_email_blast(database_url, count, args.links)
            messages = message_rows(database_url, blast["blast_id"])
            events, expected = build_events(messages, blast["blast_id"], args.links,
                                            args.events, base_url)
            expected["statuses"]["sent"] += len(messages) - expected["messages"]
            batches = make_batches(events, args.batch, signer)
            size = sum(len(b[0]) for b in batches)
            print(f"seeded a sent blast of {n(count)} messages; built and signed {len(batches)} "
                  f"batches of {args.batch} events ({size / 1e6:.0f} MB) in "
                  f"{secs(time.perf_counter() - started)} (not measured)", flush=True)

            env = app_env(database_url, args.redis_url, workdir / "web-instance", port,
                          SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64)
            web = Gunicorn("outreach:create_app()", args.web_workers, args.threads, env,
                           workdir, "web", port=port)
            workers = EventWorkers(args.event_workers, env, workdir, args.redis_url)
            workers.start()
            web.start()
            print(f"app up ({web.settings}, {args.event_workers} events worker(s)); posting "
                  f"with {args.senders} threads", flush=True)
            meter = CpuMeter(database_url, {"gunicorn": web.cpu, "events workers": workers.cpu})
            samples: list[tuple[float, int, int]] = []
            stop = threading.Event()
            watched: dict[str, float | None] = {}
            watcher = threading.Thread(target=lambda: watched.update(watch_ingestion(
                database_url, args.redis_url, blast["blast_id"], args.events, timeout, samples,
                stop)), daemon=True)
            meter.start()
            watcher.start()
            posted = post_batches(port, batches, args.senders)
            watcher.join(timeout + 5)
            stop.set()
            meter.stop()
            idle = queue_idle(args.redis_url)
            rows, rolled = stored(database_url, blast["blast_id"])
            state = database_state(database_url, blast["blast_id"])
            ingest_jobs = workers.job_times("outreach.tracking.jobs.ingest_sendgrid")

            # Replays: the first batches again; nothing may change.
            replay = batches[:min(5, len(batches))]
            replayed = post_batches(port, replay, 1)
            replay_idle = queue_idle(args.redis_url)
            rows_after, rolled_after = stored(database_url, blast["blast_id"])
            state_after = database_state(database_url, blast["blast_id"])
            failed = failed_jobs(args.redis_url, ("events",))
            accepted = sum(v for k, v in posted["statuses"].items() if k == 200)
            checks += [
                ("all accepted", accepted == len(batches) and not posted["errors"],
                 f"{accepted} of {len(batches)} POSTs answered 200; statuses "
                 f"{posted['statuses']}, client errors {len(posted['errors'])}"),
                ("events rows", rows == args.events,
                 f"{n(rows)} rows in events for {n(args.events)} events sent"),
                ("rollups", rolled == args.events,
                 f"{n(rolled)} counted in the rollups (kinds other than 'clicker')"),
                ("message statuses", state["statuses"] == {
                    k: v for k, v in expected["statuses"].items() if v} and
                 state["delivered_without_at"] == 0,
                 f"{state['statuses']} (expected {dict(expected['statuses'])}); delivered "
                 f"without delivered_at: {state['delivered_without_at']}"),
                ("suppressions", state["suppressed"] == expected["suppressed"],
                 f"{n(state['suppressed'])} email suppressions (expected "
                 f"{n(expected['suppressed'])}: hard bounces, dropped, opt-outs)"),
                ("consent revoked", state["revoked"] == expected["revoked"],
                 f"{n(state['revoked'])} contacts (expected {n(expected['revoked'])}: spam "
                 "reports and unsubscribes)"),
                ("replay changes nothing", replay_idle and replayed["statuses"] == {
                    200: len(replay)} and (rows_after, rolled_after) == (rows, rolled)
                 and state_after == state,
                 f"{len(replay)} batches posted again: events {n(rows_after)}, rollups "
                 f"{n(rolled_after)}, statuses and suppressions unchanged"
                 if state_after == state else "state changed after the replay"),
                ("failed jobs", failed == 0 and idle,
                 f"{failed} in the events queue's failed registry"
                 + ("" if idle else "; the queue was still busy")),
                ("tracebacks", web.tracebacks() + workers.tracebacks() == 0,
                 f"{web.tracebacks()} in gunicorn's log, {workers.tracebacks()} in workers'"),
            ]
            web.stop()
            workers.stop()
            inproc = None
            if args.in_process_events:
                inproc = in_process(app, messages, blast["blast_id"], args.links,
                                    args.in_process_events, args.batch, base_url,
                                    database_url=database_url)
            if args.profile:
                print("\n== profile (in-process, after the measured run; timings inflated by "
                      "cProfile)")
                in_process(app, messages, blast["blast_id"], args.links, 2 * args.batch,
                           args.batch, base_url, args.profile_top)
            app.extensions["db_engine"].dispose()
        report(args, posted, watched, samples, ingest_jobs, inproc, meter, expected, web,
               checks, server, missing, len(batches))
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        if web is not None:
            web.stop()
        if workers is not None:
            workers.stop()
        flush_redis(args.redis_url)


def report(args: argparse.Namespace, posted: dict[str, Any], watched: dict[str, float | None],
           samples: list[tuple[float, int, int]], ingest_jobs: list[float],
           inproc: tuple[int, float, float, float] | None, meter: CpuMeter,
           expected: dict[str, Any],
           web: Gunicorn, checks: list[tuple[str, bool, str]], server: str,
           missing: list[str], batches: int) -> None:
    accept_s = posted["last"] - posted["started"]
    done = watched.get("done")
    ingest_s = (done - posted["started"]) if done else None
    after = (done - posted["last"]) if done else None
    peak_queue = max((s[2] for s in samples), default=0)
    mix = ", ".join(f"{kind} {count / args.events:.1%}"
                    for kind, count in expected["kinds"].most_common())
    rows: list[tuple[str, ...] | None] = [
        ("events", n(args.events), f"{batches} signed batches of {args.batch}, for "
                                   f"{n(expected['messages'])} messages: {mix}"),
        ("server", web.settings, f"{args.event_workers} events worker(s); {args.senders} "
                                 "POSTing threads, keep-alive"),
        None,
        ("HTTP accept", f"{n(args.events / accept_s)} events/s",
         f"first POST -> last 200 in {secs(accept_s)} ({n(batches / accept_s)} POSTs/s); "
         f"POST latency p50 {posted['p50']:.0f} ms, p99 {posted['p99']:.0f}, max "
         f"{posted['max']:.0f} ms"),
        ("ingested", f"{n(args.events / ingest_s)} events/s" if ingest_s else "NOT DONE",
         (f"first POST -> every event in events and the rollups in {secs(ingest_s)}; "
          f"{secs(after)} after the last accept; peak events queue {n(peak_queue)} jobs")
         if ingest_s else f"the rollups did not reach {n(args.events)} in time"),
    ]
    if ingest_jobs:
        rows.append(("ingest jobs", n(len(ingest_jobs)),
                     f"{secs(sum(ingest_jobs))} inside them, "
                     f"{sum(ingest_jobs) / len(ingest_jobs) * 1000:.0f} ms each on average, "
                     f"longest {secs(max(ingest_jobs))} (RQ's log; on PostgreSQL batches "
                     "run concurrently, with no global lock)"))
    if inproc:
        count, seconds, cpu, pg_cpu = inproc
        per_batch = count / args.batch
        rows.append(("in-process", f"{n(count / seconds)} events/s",
                     f"jobs.ingest_sendgrid on {n(count)} more events in this process, no HTTP "
                     f"nor RQ: {secs(seconds)} ({seconds / per_batch * 1000:.0f} ms "
                     "per batch)"))
        rows.append(("CPU per batch", f"{(cpu + pg_cpu) / per_batch * 1000:.0f} ms",
                     f"of {args.batch} events, in-process: Python {cpu / per_batch * 1000:.0f} "
                     f"ms, its PostgreSQL backend {pg_cpu / per_batch * 1000:.0f} ms (CPU "
                     "time: steady whatever else loads the machine)"))
    rows.append(("CPU during run", secs(sum(meter.used.values())), meter.line()))
    if missing:
        rows.append(("schema", "create_all", f"migrations/ lacked {len(missing)} tables: "
                                             f"{', '.join(missing)}"))
    print_figures(rows, title=f"bench/webhooks.py --events {args.events} --batch {args.batch}")
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    rate = args.events / ingest_s if ingest_s else 0.0
    verdict = "MET" if rate >= GOAL_EVENTS_PER_SECOND else (
        f"NOT MET: {n(rate)} events/s ingested < {n(GOAL_EVENTS_PER_SECOND)}")
    print(f"\ngoal: >= {n(GOAL_EVENTS_PER_SECOND)} events/s ingested (POST -> rows written)  "
          f"->  {verdict}")
    print(f"machine: {machine_line()}; {server}")
    if not all(ok for _, ok, _ in checks):
        print("CORRECTNESS CHECKS FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
