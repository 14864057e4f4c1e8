"""Benchmark: importing a realistic 1,000,000-row contact CSV into PostgreSQL.

Generates the file (deterministic, streamed to disk), measures a plain baseline in the same run
(COPY of the same rows, unvalidated, into an ordinary bare table), then runs the real import job
(`create_import` then `run_import`, in-process, in a child process whose peak memory is read),
checks the result against what the generator knows it wrote, and prints the figures. Last it
measures the write floor: the rows the import wrote, COPYed ready-made into empty copies of
their tables, which no import writing them can beat on that server.

    .venv/bin/python bench/import.py                  # 1,000,000 rows
    .venv/bin/python bench/import.py --rows 100000    # a quick run
    .venv/bin/python bench/import.py --rows 200000 --profile
    .venv/bin/python bench/import.py --match          # rows looked up, as into a full database

Goal (2-core machine, 1,000,000 rows): the whole import, validation and dedupe included, in
30 s or less, peak memory under 500 MB, at most 5 times the baseline. Exits non-zero when a
correctness check fails (not when a goal is missed: figures are not tests).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `common` when run by path
from common import (  # noqa: E402
    DEFAULT_REDIS_URL,
    PhaseTimes,
    admin_database_url,
    build_app,
    fresh_database,
    libpq_url,
    machine_line,
    n,
    peak_rss_mb,
    per_second,
    postgres_line,
    print_figures,
    run_child,
    secs,
    this_script_as_child,
    timer,
)

GOAL_SECONDS_PER_MILLION = 30.0
GOAL_PEAK_MB = 500.0
GOAL_RATIO = 5.0
LIST_NAME = "bench import"
HEADER = ["E-mail", "Mobile Phone", "First Name", "Last Name", "ZIP", "City", "Notes", "Tags"]
BASELINE_COLUMNS = ["email", "mobile_phone", "first_name", "last_name", "zip", "city", "notes",
                    "tags"]

# ---- the generated file -------------------------------------------------------------------------

# Common US area codes with a ZIP prefix and a city of the same place.
AREAS = [
    ("212", "100", "New York"), ("718", "112", "Brooklyn"), ("917", "100", "New York"),
    ("646", "100", "New York"), ("516", "115", "Hempstead"), ("213", "900", "Los Angeles"),
    ("310", "902", "Santa Monica"), ("415", "941", "San Francisco"), ("510", "946", "Oakland"),
    ("408", "951", "San José"), ("619", "921", "San Diego"), ("916", "958", "Sacramento"),
    ("312", "606", "Chicago"), ("773", "606", "Chicago"), ("847", "600", "Evanston"),
    ("713", "770", "Houston"), ("214", "752", "Dallas"), ("512", "787", "Austin"),
    ("210", "782", "San Antonio"), ("817", "761", "Fort Worth"), ("305", "331", "Miami"),
    ("407", "328", "Orlando"), ("813", "336", "Tampa"), ("904", "322", "Jacksonville"),
    ("404", "303", "Atlanta"), ("678", "300", "Marietta"), ("215", "191", "Philadelphia"),
    ("412", "152", "Pittsburgh"), ("617", "021", "Boston"), ("508", "017", "Framingham"),
    ("202", "200", "Washington"), ("301", "208", "Bethesda"), ("410", "212", "Baltimore"),
    ("703", "222", "Arlington"), ("804", "232", "Richmond"), ("206", "981", "Seattle"),
    ("503", "972", "Portland"), ("602", "850", "Phoenix"), ("702", "891", "Las Vegas"),
    ("303", "802", "Denver"), ("612", "554", "Minneapolis"), ("313", "482", "Detroit"),
    ("216", "441", "Cleveland"), ("614", "432", "Columbus"), ("317", "462", "Indianapolis"),
    ("615", "372", "Nashville"), ("504", "701", "New Orleans"), ("314", "631", "St. Louis"),
    ("919", "276", "Raleigh"), ("704", "282", "Charlotte"), ("801", "841", "Salt Lake City"),
    ("808", "968", "Honolulu"), ("907", "995", "Anchorage"), ("401", "029", "Providence"),
]  # fmt: skip
FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
         "Elizabeth", "William", "Barbara", "Maria", "José", "Zoë", "François", "Björn",
         "Siobhán", "Renée", "Chloé", "Ángel", "Joaquín", "Søren", "Ngọc", "Aaliyah", "Wei",
         "Priya", "Mohammed", "Keisha", "DeShawn"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Miller", "Davis",
        "Rodríguez", "Martínez", "Hernández", "López", "Müller", "O'Brien", "Nguyễn",
        "Łukasiewicz", "Núñez", "Døssing", "Kowalski", "Washington", "Lee", "Patel", "Kim",
        "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall"]
DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com",
           "comcast.net", "example.org", "mail.example.co.uk", "riseup.net"]
NOTES = ["Met at rally, asked about volunteering", 'Said "call me" after 6pm, not before',
         "Signed petition; wants updates", "Donor, 2022 and 2023", "Knocked doors, twice",
         "Prefers texts, not calls", "Señora Pérez referred her, via church group"]
TAGS = ["volunteer|donor", "volunteer,donor", "donor", "volunteer; phonebank",
        "event-2024-rally", "voter|volunteer|donor", "a,b"]
PHONE_FORMATS = ["({a}) {x}-{s}", "{a}-{x}-{s}", "+1 {a} {x} {s}", "{a}{x}{s}", "1-{a}-{x}-{s}",
                 "{a}.{x}.{s}"]
INVALID_EMAILS = ["bob{i}@", "no-at-sign{i}.org", "a{i}@b", "jane{i}@@example.com",
                  "jane{i}@example"]

P_INVALID_EMAIL = 0.05
P_DUPLICATE = 0.03
P_NO_EMAIL = 0.02  # phone-only supporters: imported, but no email consent to record
P_NO_PHONE = 0.10
RING = 20_000  # earlier valid rows a duplicate may repeat (keeps generation's memory flat)


@dataclass
class Expected:
    """What the generator wrote, hence what the import must produce."""

    rows: int = 0
    invalid_email: int = 0
    duplicate_email: int = 0
    accepted: int = 0
    accepted_with_email: int = 0
    accepted_with_phone: int = 0
    tag_links: int = 0
    tags: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # rows to compare field by field


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]", "", folded)


def _split_tags(value: str) -> set[str]:
    return {t.strip() for t in re.split(r"[,;|]", value) if t.strip()}


class Phones:
    """Unique numbers per area code (a permutation of the subscriber numbers, no N11 exchange)."""

    def __init__(self) -> None:
        self.counter: dict[str, int] = {}

    def next(self, area: str) -> str:
        k = self.counter.get(area, 0)
        while True:
            sub = 2_000_000 + (k * 7919 + 12_345) % 8_000_000
            k += 1
            if str(sub)[1:3] != "11":
                break
        self.counter[area] = k
        return f"{area}{sub}"


def generate_csv(path: Path, rows: int, seed: int) -> Expected:
    """Write the benchmark file: UTF-8 with a BOM, CRLF, quoted commas, messy phones."""
    rng = random.Random(seed)
    phones = Phones()
    exp = Expected(rows=rows)
    ring: list[tuple[str, str]] = []  # (email as written, phone digits) of earlier valid rows
    tags_seen: set[str] = set()
    want_sample = {"accent": 2, "notes": 2, "zip4": 1, "multiline": 1, "phone_only": 1,
                   "plain": 2}
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)  # QUOTE_MINIMAL, "\r\n": what spreadsheets write
        writer.writerow(HEADER)
        for i in range(rows):
            area, zip3, city = AREAS[rng.randrange(len(AREAS))]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            digits = phones.next(area)
            roll = rng.random()
            kind = "valid"
            if roll < P_INVALID_EMAIL:
                kind = "invalid"
                email = rng.choice(INVALID_EMAILS).format(i=i)
            elif roll < P_INVALID_EMAIL + P_DUPLICATE and ring:
                kind = "duplicate"
                email, original_digits = ring[rng.randrange(len(ring))]
                email = rng.choice([email, email.upper(), f" {email} ", email.title()])
                if rng.random() < 0.5:
                    digits = original_digits  # the same person, phone written again
            elif roll < P_INVALID_EMAIL + P_DUPLICATE + P_NO_EMAIL:
                email = ""
            else:
                local = f"{_ascii(first)}.{_ascii(last)}{i}"
                if rng.random() < 0.1:
                    local += "+news"
                email = f"{local}@{rng.choice(DOMAINS)}"
                if rng.random() < 0.1:
                    email = email.title()  # "Jose.Garcia12@Gmail.Com"
                if rng.random() < 0.01:
                    email = f"  {email} "
            has_phone = not email or rng.random() >= P_NO_PHONE
            phone = ""
            if has_phone:
                phone = rng.choice(PHONE_FORMATS).format(a=digits[:3], x=digits[3:6],
                                                         s=digits[6:])
            zip_roll = rng.random()
            zip_code = f"{zip3}{rng.randrange(100):02d}"
            if zip_roll < 0.02:
                zip_code = ""
            elif zip_roll < 0.07:
                zip_code += f"-{rng.randrange(10000):04d}"
            elif zip_roll < 0.09 and zip_code.startswith("0"):
                zip_code = zip_code[1:]  # Excel ate the leading zero
            note = rng.choice(NOTES) if rng.random() < 0.4 else ""
            if note and rng.random() < 0.01:
                note = note.replace(", ", ",\n", 1)  # a line break inside a quoted field
            tags = rng.choice(TAGS) if rng.random() < 0.5 else ""
            writer.writerow([email, phone, first, last, zip_code, city, note, tags])

            if kind == "invalid":
                exp.invalid_email += 1
                continue
            if kind == "duplicate":
                exp.duplicate_email += 1
                continue
            exp.accepted += 1
            exp.accepted_with_email += bool(email)
            exp.accepted_with_phone += has_phone
            row_tags = _split_tags(tags)
            exp.tag_links += len(row_tags)
            tags_seen |= row_tags
            if email:
                if len(ring) < RING:
                    ring.append((email.strip(), digits))
                else:
                    ring[rng.randrange(RING)] = (email.strip(), digits)
            feature = ("phone_only" if not email else "multiline" if "\n" in note
                       else "zip4" if "-" in zip_code else "accent" if not (first + last).isascii()
                       else "notes" if "," in note else "plain")
            if want_sample.get(feature, 0) > 0 and i > 10:
                want_sample[feature] -= 1
                exp.samples.append({
                    "line_hint": i + 2, "email": email.strip().lower() or None,
                    "phone": f"+1{digits}" if has_phone else None, "first_name": first,
                    "last_name": last, "postal_code": zip_code or None,
                    "fields": {k: v for k, v in (("city", city), ("notes", note.strip())) if v},
                    "tags": sorted(row_tags)})
    exp.tags = sorted(tags_seen)
    return exp


# ---- the baseline -------------------------------------------------------------------------------

# The tables an import writes a row per contact into, with the columns it fills.
WRITTEN = {
    "contacts": "id, email, phone, first_name, last_name, postal_code, timezone, region, fields, "
                "email_consent, sms_consent, created_at, updated_at",
    "consent_events": "contact_id, channel, status, source, evidence, created_by_id, created_at",
    "list_members": "list_id, contact_id, created_at",
    "contact_tags": "contact_id, tag_id",
}

def run_baseline(database_url: str, path: Path) -> tuple[float, int]:
    """COPY the raw rows (no validation) into an ordinary bare table with the file's columns."""
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:
        columns = ", ".join(f"{c} text" for c in BASELINE_COLUMNS)
        conn.execute(f"CREATE TABLE baseline_rows ({columns})")
        conn.commit()
        with timer() as t:
            with open(path, encoding="utf-8-sig", newline="") as handle, conn.cursor() as cur:
                reader = csv.reader(handle)
                next(reader)
                with cur.copy(f"COPY baseline_rows ({', '.join(BASELINE_COLUMNS)}) "
                              "FROM STDIN") as copy:
                    for row in reader:
                        copy.write_row(row)
            conn.commit()
        count = conn.execute("SELECT count(*) FROM baseline_rows").fetchone()[0]
        conn.execute("DROP TABLE baseline_rows")
        conn.commit()
    return t.seconds, count


def run_write_floor(database_url: str) -> dict[str, float]:
    """Seconds, per table, to COPY the rows the import wrote into empty copies of the tables.

    The copies have the real tables' indexes and constraints (`LIKE ... INCLUDING ALL`) but
    no foreign keys, and the rows arrive ready-made in binary: no validation, no matching,
    no lookups. No import that writes those rows into those tables can take less time than
    this on the same server; it is the part of the ratio that is not the import's own code.
    """
    import psycopg

    took: dict[str, float] = {}
    with psycopg.connect(libpq_url(database_url)) as conn:
        for table, columns in WRITTEN.items():
            with conn.cursor() as cur:
                rows = bytearray()  # the rows as COPY sends them, read before the clock starts
                with cur.copy(f"COPY (SELECT {columns} FROM {table} ORDER BY 1) "
                              "TO STDOUT (FORMAT binary)") as copy:
                    for data in copy:
                        rows += data
                conn.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
                conn.commit()
                with timer() as t:
                    with cur.copy(f"COPY floor_{table} ({columns}) FROM STDIN "
                                  "(FORMAT binary)") as copy:
                        copy.write(rows)
                    conn.commit()
                took[table] = t.seconds
                del rows
                conn.execute(f"DROP TABLE floor_{table}")
                conn.commit()
    return took


# ---- the import, in a child process ------------------------------------------------------------

class _SlowStatements:
    """SQL statements taking at least `threshold` seconds, via SQLAlchemy cursor events, with
    the CPU their backend spent on them (read from /proc when the server is local)."""

    def __init__(self, engine: Any, threshold: float = 0.05) -> None:
        import time

        from sqlalchemy import event

        self.found: list[tuple[float, float, str]] = []
        self.threshold = threshold

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            pid = conn.connection.driver_connection.info.backend_pid
            conn.info.setdefault("bench_started", []).append(
                (time.perf_counter(), pid, _process_cpu(pid)))

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            started, pid, cpu = conn.info["bench_started"].pop()
            took = time.perf_counter() - started
            if took >= self.threshold:
                self.found.append((took, _process_cpu(pid) - cpu, " ".join(statement.split())))


def _process_cpu(pid: int) -> float:
    """CPU seconds a local process has used (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # not on this machine, or gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend of this database (a local server)."""
    import psycopg

    with psycopg.connect(libpq_url(database_url)) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()]
    return {pid: _process_cpu(pid) for pid in pids}


def child_main(args: argparse.Namespace) -> int:
    """Build the app, migrate, upload (store) the file, run the import job; write the figures."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="outreach-bench-instance-") as instance:
        return _child_run(args, out, instance)


def _child_run(args: argparse.Namespace, out: dict[str, Any], instance: str) -> int:
    import cProfile
    import pstats

    from outreach import db
    from outreach.contacts import import_apply, import_stage, imports

    with timer() as t:
        app = build_app(args.database_url, instance, redis_url=args.redis_url)
    out["setup"] = t.seconds
    out["rss_after_setup"] = peak_rss_mb()

    phases = PhaseTimes()
    phases.wrap(imports, "_stage", "stage")
    # The batches are written and applied by a thread while this one reads on: the time this
    # thread spends in write() and close() is time spent waiting for the database.
    phases.wrap(import_stage.StageWriter, "write", "stage: waiting for the database")
    phases.wrap(import_stage.StageWriter, "close", "stage: waiting for the database")
    phases.wrap(import_stage.StageWriter, "_write", "apply: write batches (COPY) + apply")
    phases.wrap(imports, "_progress", "stage: progress updates")
    phases.wrap(import_apply, "finish_apply", "finish")
    for name in ("_build_match", "_number_new", "_insert_new", "_update_existing",
                 "_add_to_list", "_apply_tags", "_grant_consent", "_move_rejections"):
        if hasattr(import_apply, name):  # the phases of the version being measured
            phases.wrap(import_apply, name, f"apply: {name.lstrip('_').replace('_', ' ')}")
    if args.match:  # as into a database that has contacts: every row is looked up
        apply_file = imports._apply_file
        imports._apply_file = (  # type: ignore[assignment]
            lambda session, imp, on_progress, match: apply_file(session, imp, on_progress, True))
    slow = _SlowStatements(app.extensions["db_engine"])
    profiler = cProfile.Profile() if args.profile else None

    path = Path(args.csv)
    cpu_before, pg_before = resource.getrusage(resource.RUSAGE_SELF), backend_cpu(args.database_url)
    with app.app_context():
        session = db.session()
        if profiler:
            profiler.enable()
        with timer() as t:
            with open(path, "rb") as handle:
                imp = imports.create_import(session, handle, path.name, LIST_NAME, mode="add",
                                            consent_channels="email", consent_source="bench")
            session.commit()
        if profiler:
            profiler.disable()
        import_id = imp.id
    out["store"] = t.seconds
    out["rss_after_store"] = peak_rss_mb()

    with app.app_context():  # a fresh context, as the RQ job would have
        if profiler:
            profiler.enable()
        with timer() as t:
            imports.run_import(import_id)
        if profiler:
            profiler.disable()
    out["run_import"] = t.seconds
    cpu_after, pg_after = resource.getrusage(resource.RUSAGE_SELF), backend_cpu(args.database_url)
    out["python_cpu"] = (cpu_after.ru_utime + cpu_after.ru_stime
                         - cpu_before.ru_utime - cpu_before.ru_stime)
    out["postgres_cpu"] = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items())
    out["import_id"] = import_id
    out["phases"] = phases.seconds
    out["calls"] = phases.calls
    out["slow_sql"] = sorted(slow.found, reverse=True)[:16]
    out["rss_self"] = peak_rss_mb()
    Path(args.result).write_text(json.dumps(out))
    if profiler:
        print(f"\n== cProfile of the import (store + run_import), top {args.profile_top} "
              "by cumulative time")
        stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
        stats.sort_stats("cumulative").print_stats(args.profile_top)
        print(f"== top {args.profile_top} by own time (tottime)")
        stats.sort_stats("tottime").print_stats(args.profile_top)
    app.extensions["db_engine"].dispose()
    return 0


# ---- checking the result ------------------------------------------------------------------------

def verify(database_url: str, exp: Expected, import_id: int) -> list[tuple[str, bool, str]]:
    """Compare the database after the import with what the generator wrote."""
    import psycopg

    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append((name, bool(ok), detail))

    with psycopg.connect(libpq_url(database_url)) as conn:
        def one(sql: str, *params: Any) -> Any:
            return conn.execute(sql, params or None).fetchone()[0]

        status, error, rows_total, created, rejected = conn.execute(
            "SELECT status, error, rows_total, created, rejected FROM imports WHERE id = %s",
            (import_id,)).fetchone()
        check("import finished", status == "done", f"status {status}, error {error!r}")
        check("rows read", rows_total == exp.rows, f"{n(rows_total)} of {n(exp.rows)}")
        contacts = one("SELECT count(*) FROM contacts")
        check("contacts = rows - rejected", contacts == exp.accepted == created,
              f"{n(contacts)} contacts, import says {n(created)} created, "
              f"expected {n(exp.accepted)} = {n(exp.rows)} - {n(exp.invalid_email)} invalid - "
              f"{n(exp.duplicate_email)} duplicates")
        expected_rejected = exp.invalid_email + exp.duplicate_email
        share = rejected / max(1, exp.rows) * 100
        check("rejected (about 5% invalid + 3% duplicates)", rejected == expected_rejected,
              f"{n(rejected)} ({share:.2f}%), expected {n(expected_rejected)}")
        reasons = dict(conn.execute(
            "SELECT CASE WHEN reason LIKE 'invalid email%%' THEN 'invalid email' "
            "WHEN reason LIKE 'duplicate in file (same email%%' THEN 'duplicate email' "
            "ELSE reason END, count(*) FROM import_rejections WHERE import_id = %s GROUP BY 1",
            (import_id,)).fetchall())
        check("  invalid emails rejected", reasons.get("invalid email", 0) == exp.invalid_email,
              f"{n(reasons.get('invalid email', 0))}, expected {n(exp.invalid_email)}")
        check("  duplicates rejected", reasons.get("duplicate email", 0) == exp.duplicate_email,
              f"{n(reasons.get('duplicate email', 0))}, expected {n(exp.duplicate_email)}")
        others = {k: v for k, v in reasons.items() if k not in ("invalid email",
                                                                 "duplicate email")}
        check("  no other rejections", not others,
              "; ".join(f"{v} x {k!r}" for k, v in sorted(others.items())[:5]) or "none")
        with_email = one("SELECT count(*) FROM contacts WHERE email IS NOT NULL")
        events = one("SELECT count(*) FROM consent_events WHERE channel = 'email' "
                     "AND status = 'granted' AND source = 'import'")
        all_events = one("SELECT count(*) FROM consent_events")
        granted = one("SELECT count(*) FROM contacts WHERE email_consent = 'granted'")
        check("consent events = contacts with email",
              events == all_events == with_email == granted == exp.accepted_with_email,
              f"{n(events)} events ({n(all_events)} in all), {n(with_email)} contacts with "
              f"email, {n(granted)} marked granted, expected {n(exp.accepted_with_email)}")
        with_phone = one("SELECT count(*) FROM contacts WHERE phone IS NOT NULL")
        bad_phone = one("SELECT count(*) FROM contacts WHERE phone !~ '^\\+1[2-9][0-9]{2}"
                        "[2-9][0-9]{6}$'")
        check("phones in E.164", with_phone == exp.accepted_with_phone and bad_phone == 0,
              f"{n(with_phone)} with phone (expected {n(exp.accepted_with_phone)}), "
              f"{n(bad_phone)} malformed")
        bad_email = one("SELECT count(*) FROM contacts WHERE email <> lower(btrim(email))")
        check("emails trimmed and lower-cased", bad_email == 0, f"{n(bad_email)} not")
        no_zone = one("SELECT count(*) FROM contacts WHERE timezone IS NULL")
        # Every ZIP written is known, and every area code but Alaska's 907 (two zones).
        unexplained = one("SELECT count(*) FROM contacts WHERE timezone IS NULL AND NOT "
                          "(postal_code IS NULL AND (phone IS NULL OR phone LIKE '+1907%%'))")
        check("time zone inferred (phone or ZIP)", unexplained == 0,
              f"{n(no_zone)} without, {n(unexplained)} of them with a phone or ZIP that "
              "tells it")
        members = one("SELECT count(*) FROM list_members")
        check("list members = contacts", members == contacts, f"{n(members)}")
        links = one("SELECT count(*) FROM contact_tags")
        tags = [r[0] for r in conn.execute("SELECT name FROM tags ORDER BY name").fetchall()]
        check("tags", links == exp.tag_links and tags == exp.tags,
              f"{n(links)} links (expected {n(exp.tag_links)}); tags {tags}"
              + ("" if tags == exp.tags else f", expected {exp.tags}"))
        left = one("SELECT count(*) FROM import_rows")
        check("staging table emptied", left == 0, f"{n(left)} rows left")
        mismatches = []
        for sample in exp.samples:
            key = ("email", sample["email"]) if sample["email"] else ("phone", sample["phone"])
            row = conn.execute(
                f"SELECT c.email, c.phone, c.first_name, c.last_name, c.postal_code, "
                f"c.fields::text, coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM "
                f"contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id), "
                f"'{{}}') FROM contacts c WHERE c.{key[0]} = %s", (key[1],)).fetchone()
            want = (sample["email"], sample["phone"], sample["first_name"], sample["last_name"],
                    sample["postal_code"], sample["fields"], sample["tags"])
            got = None if row is None else (*row[:5], json.loads(row[5] or "{}"), list(row[6]))
            if got != want:
                mismatches.append(f"line ~{sample['line_hint']}: got {got}, want {want}")
        check(f"{len(exp.samples)} sample rows field by field", not mismatches,
              "; ".join(mismatches) or "names with accents, quoted commas, line breaks, "
              "ZIP+4, phone-only: as written")
    return checks


# ---- the run ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None,
                        help="server to create the throwaway database in (default: env "
                             "BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/"
                             "postgres)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"Redis the app is configured with (default {DEFAULT_REDIS_URL})")
    parser.add_argument("--keep-csv", metavar="PATH", help="write the CSV here and keep it")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the import and print the top entries")
    parser.add_argument("--profile-top", type=int, default=25, help=argparse.SUPPRESS)
    parser.add_argument("--match", action="store_true",
                        help="look every row up among existing contacts, as an import into a "
                             "database that has contacts does (into an empty one it does not)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    admin_url = admin_database_url(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-import-"))
    csv_path = Path(args.keep_csv) if args.keep_csv else workdir / "contacts.csv"
    print(f"machine: {machine_line()}", flush=True)
    try:
        with timer() as t:
            exp = generate_csv(csv_path, args.rows, args.seed)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {n(args.rows)} rows, {size_mb:.0f} MB in {secs(t.seconds)}: "
              f"{csv_path}", flush=True)
        with fresh_database(admin_url) as database_url:
            server = postgres_line(database_url)
            baseline, baseline_rows = run_baseline(database_url, csv_path)
            print(f"baseline COPY done in {secs(baseline)}; importing...", flush=True)
            result_path = workdir / "result.json"
            child = run_child(this_script_as_child(
                __file__, "--child", "--database-url", database_url, "--csv", str(csv_path),
                "--result", str(result_path), "--redis-url", args.redis_url,
                "--profile-top", str(args.profile_top),
                *(["--profile"] if args.profile else []), *(["--match"] if args.match else [])))
            if child.returncode != 0:
                print(f"the import process failed (exit {child.returncode})", file=sys.stderr)
                return 1
            res = json.loads(result_path.read_text())
            checks = verify(database_url, exp, res["import_id"])
            checks.insert(0, ("baseline rows", baseline_rows == args.rows, n(baseline_rows)))
            floor = run_write_floor(database_url)
        report(args, size_mb, baseline, floor, res, child.peak_rss_mb, checks, server)
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        if not args.keep_csv and csv_path.exists():
            csv_path.unlink()
        for leftover in workdir.glob("*"):
            leftover.unlink()
        workdir.rmdir()


def report(args: argparse.Namespace, size_mb: float, baseline: float,
           floors: dict[str, float], res: dict[str, Any],
           peak_mb: float, checks: list[tuple[str, bool, str]], server: str) -> None:
    rows = args.rows
    phases = res["phases"]
    total = res["store"] + res["run_import"]
    stage, finish = phases.get("stage", 0.0), phases.get("finish", 0.0)
    waiting = phases.get("stage: waiting for the database", 0.0)
    progress = phases.get("stage: progress updates", 0.0)
    batches = phases.get("apply: write batches (COPY) + apply", 0.0)
    ratio = total / baseline if baseline else float("inf")
    floor = sum(floors.values())
    figures: list[tuple[str, ...] | None] = [
        ("rows", n(rows), f"{size_mb:.0f} MB file"),
        ("baseline COPY", secs(baseline), per_second(rows, baseline)),
        ("import total", secs(total), per_second(rows, total), f"ratio to baseline {ratio:.1f}x"),
        ("  store upload", secs(res["store"]), "check header, file into file_chunks"),
        ("  stage + apply", secs(stage), per_second(rows, stage),
         "Python reads; a thread COPYs and applies each batch meanwhile"),
        ("    Python reading", secs(stage - waiting - progress),
         "read + validate + dedupe, this thread"),
        ("    waiting for the DB", secs(waiting), "queue of batches full, or the last ones"),
        ("    progress updates", secs(progress)),
        ("    database thread", secs(batches), "COPY + SQL per batch, overlapping the above:"),
    ]
    for key, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        if key.startswith("apply: ") and key != "apply: write batches (COPY) + apply":
            calls = res["calls"].get(key, 1)
            figures.append((f"      {key[7:]}", secs(seconds), f"{calls} call(s)"))
    accounted = sum(v for k, v in phases.items() if k.startswith("apply: ")) - batches
    figures.append(("      COPY and the rest", secs(batches - accounted),
                    "COPY of staged rows and rejections, locks, emptying the stage"))
    figures.append(("  finish", secs(finish), "rejections into import_rejections, counts"))
    figures.append(("  commit + bookkeeping",
                    secs(res["run_import"] - stage - finish - phases.get("apply tail", 0.0))))
    figures += [
        ("write floor", secs(floor), f"{floor / baseline if baseline else 0:.1f}x baseline",
         "COPY of the rows the import wrote into empty copies of their tables:"),
        *((f"  {table}", secs(seconds), f"{seconds / baseline if baseline else 0:.1f}x baseline")
          for table, seconds in floors.items()),
    ]
    python_cpu, postgres_cpu = res.get("python_cpu", 0.0), res.get("postgres_cpu", 0.0)
    figures += [
        ("CPU: import process", secs(python_cpu), "(store + run_import, this process)"),
        ("CPU: PostgreSQL", secs(postgres_cpu), "(the backends of the benchmark database)"),
        ("CPU floor", secs(max(python_cpu, postgres_cpu, (python_cpu + postgres_cpu) / 2)),
         "(that CPU on 2 idle cores: what a quiet machine would take at best)"),
        ("peak memory", f"{peak_mb:.0f} MB",
         f"(import process; {res['rss_after_setup']:.0f} MB after app setup + migrate)"),
        ("app setup + migrate", secs(res["setup"]), "(not counted in the import)"),
    ]
    print_figures(figures, title=f"bench/import.py --rows {rows}{' --match' * args.match}")
    if res["slow_sql"]:
        print("\nslowest SQL statements (store + run_import), wall and backend CPU:")
        for took, cpu, statement in res["slow_sql"][:10]:
            print(f"  {secs(took):>8} {secs(cpu):>8}  {statement[:140]}")
    print("\nchecks:")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    goal_seconds = GOAL_SECONDS_PER_MILLION * rows / 1_000_000
    misses = []
    if total > goal_seconds:
        misses.append(f"time {secs(total)} > {secs(goal_seconds)}")
    if peak_mb >= GOAL_PEAK_MB:
        misses.append(f"memory {peak_mb:.0f} MB >= {GOAL_PEAK_MB:.0f} MB")
    if ratio > GOAL_RATIO:
        misses.append(f"ratio {ratio:.1f}x > {GOAL_RATIO:.0f}x")
    scaled = "" if rows == 1_000_000 else " (time scaled to this row count)"
    verdict = "MET" if not misses else "NOT MET: " + "; ".join(misses)
    if args.profile:
        verdict = "not judged under --profile (the profiler slows Python code down)"
    print(f"\ngoal: <= {secs(goal_seconds)}{scaled}, < {GOAL_PEAK_MB:.0f} MB, "
          f"<= {GOAL_RATIO:.0f}x baseline  ->  {verdict}")
    print(f"machine: {machine_line()}; {server}")
    if not all(ok for _, ok, _ in checks):
        print("CORRECTNESS CHECKS FAILED", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
