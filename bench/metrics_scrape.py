"""Benchmark: one Prometheus scrape of /metrics with 1,000,000 messages and 2,000,000 events.

Seeds the same data as bench/metrics_page.py (one finished email blast, messages in their final
statuses, events and rollups; not measured), then times, in-process and over `--repeat` runs:

- `exposition.render`, the whole scrape body (queue registries, workers, counters, blasts and
  messages per channel and status), cold and warm, wall clock and CPU of this process;
- `exposition.message_counts` alone (the only part that reads the messages table);
- the baseline: the plain `GROUP BY channel, status` over every message, in the same run.

    .venv/bin/python bench/metrics_scrape.py --redis-url redis://127.0.0.1:6379/7
    .venv/bin/python bench/metrics_scrape.py --messages 100000 --events 200000   # quick

A scrape should stay well under Prometheus's default 10 s timeout; the goal here is < 100 ms
warm at 1,000,000 messages. Exits non-zero when the scrape's message figures disagree with
the baseline's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_REDIS_URL, admin_database_url, fresh_database, machine_line, n
from metrics_page import seed
from tracking import build_bench_app, flush_redis

SAMPLE = re.compile(r'^outreach_messages\{channel="(\w+)",status="(\w+)"\} (\d+)$', re.M)


def timed(func, repeat: int) -> tuple[float, list[float], list[float], object]:
    """Cold wall ms, then warm wall and CPU ms of `repeat` calls; and the last result."""
    start = time.perf_counter()
    result = func()
    cold = (time.perf_counter() - start) * 1000
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return cold, walls, cpus, result


def line(label: str, cold: float, walls: list[float], cpus: list[float]) -> str:
    """One figure line: cold, then warm median and max, and the median CPU of this process."""
    return (f"{label:<34} cold {cold:7.1f} ms   warm p50 {statistics.median(walls):7.1f} ms, "
            f"max {max(walls):7.1f} ms   CPU here p50 {statistics.median(cpus):6.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    import sqlalchemy as sa

    from outreach import db
    from outreach.observability import exposition
    from outreach.queue import redis

    print(f"machine: {machine_line()}", flush=True)
    flush_redis(args.redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-scrape-"))
    with fresh_database(admin_database_url(args.database_url)) as database_url:
        app, _ = build_bench_app(database_url, workdir / "instance", args.redis_url)
        started = time.perf_counter()
        seed(database_url, args.messages, args.events)
        print(f"seeded {n(args.messages)} messages, {n(args.events)} events in "
              f"{time.perf_counter() - started:.0f} s (not measured)", flush=True)
        baseline_sql = sa.text("SELECT b.channel, m.status, count(*) FROM messages m "
                               "JOIN blasts b ON b.id = m.blast_id GROUP BY 1, 2")
        with app.app_context():
            session = db.session()

            def baseline() -> dict[tuple[str, str], int]:
                return {(c, s): int(k) for c, s, k in session.execute(baseline_sql)}

            def scrape() -> str:
                body = exposition.render(session, redis())
                session.rollback()  # end the read transaction, as a request does
                return body

            results = [("baseline: GROUP BY every message", *timed(baseline, args.repeat)),
                       ("message_counts (index ranges)",
                        *timed(lambda: exposition.message_counts(session), args.repeat)),
                       ("whole scrape (exposition.render)", *timed(scrape, args.repeat))]
    for label, cold, walls, cpus, _ in results:
        print(line(label, cold, walls, cpus))
    expected = results[0][4]
    body = results[2][4]
    got = {(c, s): int(k) for c, s, k in SAMPLE.findall(body) if int(k)}
    ok = got == {key: value for key, value in expected.items() if value}
    ratio = statistics.median(results[2][2]) / statistics.median(results[0][2])
    print(f"scrape / baseline (warm p50): {ratio:.2f}x; {len(body.splitlines())} lines, "
          f"{len(body)} bytes; message figures match the baseline: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
