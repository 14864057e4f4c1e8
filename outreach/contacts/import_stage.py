"""Staging an import: read, validate, normalize and dedupe every row of the file in one pass.

This loop runs once per row of files of a million rows, so it is written for speed: plain
tuples instead of dicts, the column positions looked up once, and the staged rows streamed to
the database in batches (COPY on PostgreSQL) into temporary tables on the import's own
connection, so they vanish with its transaction whatever happens. Duplicates within the file
are found here, with two dictionaries, so the database never sorts the file to find them.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from outreach.contacts import consent
from outreach.contacts.models import Channel
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from outreach.contacts.timezones import (
    infer_timezone,
    state_for_phone,
    state_for_zip,
    timezone_for_phone,
    valid_timezone,
)

BATCH = 10_000
SWITCH_INTERVAL = 0.0005  # seconds; see StageWriter
MAX_VALUE = 200
STAGE_COLUMNS = ("line", "email", "phone", "first_name", "last_name", "postal_code", "timezone",
                 "region", "fields", "tags")
REJECTED_COLUMNS = ("line", "reason", "values")
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps builds an encoder per call
_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
StagedRow = tuple[int, str | None, str | None, str | None, str | None, str | None, str | None,
                  str | None, str | None, str | None]
Batch = tuple[list[StagedRow], list[tuple[int, str, str]]]


@dataclass
class Columns:
    """Where each contact field is in a row (-1: not in the file) and the custom fields."""

    email: int = -1
    phone: int = -1
    first_name: int = -1
    last_name: int = -1
    postal_code: int = -1
    timezone: int = -1
    tags: int = -1
    custom: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def of(cls, mapping: dict[str, int], custom: dict[str, int]) -> Columns:
        """The positions from a field -> column index mapping and the custom columns."""
        known = {k: v for k, v in mapping.items() if k in cls.__dataclass_fields__}
        return cls(**known, custom=list(custom.items()))

    def width(self) -> int:
        """The number of values a row needs for every position here to exist."""
        positions = [self.email, self.phone, self.first_name, self.last_name, self.postal_code,
                     self.timezone, self.tags, *(i for _, i in self.custom)]
        return max(positions) + 1


class StageWriter:
    """Writes batches of staged rows and rejections, and has each batch applied at once.

    On PostgreSQL a thread does that on the import's connection while the caller reads the
    next batch: the database works on one core while Python validates on the other. SQLite
    only stages: its connections belong to the thread that made them, and a write to the
    database would lock out the progress updates until the commit, so the caller applies
    everything once at the end.
    """

    def __init__(self, conn: sa.Connection, apply: Callable[[], None]) -> None:
        self.conn, self.apply = conn, apply
        self.copy = conn.dialect.name == "postgresql"
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.switch_interval: float | None = None
        if self.copy:
            # Two batches in flight at most: memory stays flat when the database is slower.
            self.queue: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
            # The thread waits on the database for each of its statements and then needs the
            # GIL back from the reading thread, which never blocks: by default it gets it only
            # after the 5 ms switch interval, per statement (measured: ~5 ms per round trip
            # instead of ~0.5 ms). A shorter interval while both run keeps the database busy.
            self.switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self.switch_interval, SWITCH_INTERVAL))
            self.thread = threading.Thread(target=self._work, name="import-apply", daemon=True)
            self.thread.start()

    def write(self, staged: list[StagedRow], rejected: list[tuple[int, str, str]]) -> None:
        """Hand over a batch (the lists are the writer's from now on)."""
        if self.thread is None:
            self._write((staged, rejected))
            return
        if self.error is not None:
            self.close()
        self.queue.put((staged, rejected))

    def close(self) -> None:
        """Wait until every batch is written and applied; raise what went wrong, if anything."""
        self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Let the thread finish what it was given and end (idempotent, never raises)."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
            self.switch_interval = None

    def _work(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:  # after a failure, only drain the queue
                try:
                    self._write(batch)
                except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                    self.error = exc

    def _write(self, batch: Batch) -> None:
        """Write both batches (COPY on PostgreSQL, executemany elsewhere), apply the rows."""
        staged, rejected = batch
        for table, columns, rows in (("import_stage", STAGE_COLUMNS, staged),
                                     ("import_rejected", REJECTED_COLUMNS, rejected)):
            if not rows:
                continue
            names = ", ".join(f'"{c}"' for c in columns)
            if self.copy:
                driver = self.conn.connection.driver_connection
                assert driver is not None
                with driver.cursor() as cursor:
                    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                self.conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                                          rows)  # type: ignore[arg-type]
        if staged and self.copy:
            self.apply()


def stage_records(records: Iterator[tuple[int, list[str], str | None]], cols: Columns,
                  region: str, tombstones: set[str], writer: StageWriter,
                  on_batch: Callable[[int], None]) -> int:
    """Validate, normalize and dedupe each record; stage it or reject it; return the count.

    A row repeating the email of an earlier staged row is rejected naming that row; then,
    among the rest, a row repeating an earlier phone (as the import always has done it).
    """
    ie, ip, ifn, iln = cols.email, cols.phone, cols.first_name, cols.last_name
    ipc, itz, itg = cols.postal_code, cols.timezone, cols.tags
    custom = [(_string(key), i) for key, i in cols.custom]
    first_email: dict[str, int] = {}
    first_phone: dict[int, int] = {}  # E.164 digits as an int: half the memory of the text
    tag_cache: dict[str, str | None] = {}
    phone_geo: dict[str, tuple[str | None, str | None]] = {}  # "+1NPANXX" -> (zone, state)
    postal_geo: dict[str, tuple[str | None, str | None]] = {}  # ZIP as written -> the same

    def zip_geo(postal: str) -> tuple[str | None, str | None]:
        if (known := postal_geo.get(postal)) is None:
            known = (infer_timezone(None, postal), state_for_zip(postal))
            if len(postal_geo) < 100_000:
                postal_geo[postal] = known
        return known

    staged: list[StagedRow] = []
    rejected: list[tuple[int, str, str]] = []
    total = 0
    for line, values, error in records:
        total += 1
        if total % BATCH == 0:
            writer.write(staged, rejected)
            staged, rejected = [], []
            on_batch(total)
        if error is not None:
            rejected.append((line, error, _json(values[:50])))
            continue
        email = phone = None
        try:
            if ie >= 0 and (text := values[ie].strip()):
                email = normalize_email(text)
            if ip >= 0 and (text := values[ip].strip()):
                phone = normalize_phone(text, region)
        except InvalidAddress as exc:
            rejected.append((line, str(exc), _json(values[:50])))
            continue
        if email is None and phone is None:
            rejected.append((line, "no email or phone", _json(values[:50])))
            continue
        if tombstones and (reason := _erased(email, phone, tombstones)):
            rejected.append((line, reason, _json(values[:50])))
            continue
        if email is not None:
            earlier = first_email.setdefault(email, line)
            if earlier != line:
                rejected.append((line, f"duplicate in file (same email as line {earlier})",
                                 _json(values)))
                continue
        if phone is not None:
            digits = int(phone[1:]) if phone[1:].isdigit() else phone
            earlier = first_phone.setdefault(digits, line)  # type: ignore[arg-type]
            if earlier != line:
                rejected.append((line, f"duplicate in file (same phone as line {earlier})",
                                 _json(values)))
                continue
        postal = values[ipc].strip() if ipc >= 0 else ""
        zone = values[itz].strip() if itz >= 0 else ""
        state = None
        if phone is not None and len(phone) == 12 and phone.startswith("+1"):
            # A North American number's zone and state follow from "+1NPANXX" at the finest:
            # asked once per prefix rather than once per row.
            prefix = phone[:8]
            if (known := phone_geo.get(prefix)) is None:
                known = (timezone_for_phone(phone), state_for_phone(phone))
                if len(phone_geo) < 100_000:
                    phone_geo[prefix] = known
            phone_zone, state = known
            if not zone or not valid_timezone(zone):
                zone = phone_zone or (postal and zip_geo(postal)[0]) or None
        elif phone is None and postal:
            zone_of_zip, state = zip_geo(postal)
            if not zone or not valid_timezone(zone):
                zone = zone_of_zip
        elif not zone or not valid_timezone(zone):
            zone = infer_timezone(phone, postal or None)
        fields = None
        if custom:  # json.dumps of {key: value} by hand: ~10x faster, the same text
            pairs = [f"{key}: {_string(values[i].strip())}" for key, i in custom if values[i]]
            fields = "{" + ", ".join(pairs) + "}" if pairs else None
        tags = None
        if itg >= 0 and (raw_tags := values[itg]):
            tags = tag_cache.get(raw_tags, "")
            if tags == "":  # not seen yet (a cached answer is a string of names or None)
                tags = _tags(raw_tags)
                if len(tag_cache) < 10_000:  # files repeat a few combinations; bound it anyway
                    tag_cache[raw_tags] = tags
        staged.append((
            line, email, phone,
            (values[ifn].strip()[:MAX_VALUE] or None) if ifn >= 0 else None,
            (values[iln].strip()[:MAX_VALUE] or None) if iln >= 0 else None,
            postal[:20] or None, zone,
            state or (phone and state_for_phone(phone)) or (postal and state_for_zip(postal))
            or None,
            fields, tags,
        ))
    writer.write(staged, rejected)
    writer.close()
    return total


def _tags(raw: str) -> str | None:
    """A tags cell as sorted unique names joined by "|" (commas and semicolons separate)."""
    names = sorted({t.strip()[:100] for t in raw.replace(";", ",").split(",") if t.strip()})
    return "|".join(names) or None


def _erased(email: str | None, phone: str | None, tombstones: set[str]) -> str | None:
    """Why a row is refused when one of its addresses belongs to a contact erased on request."""
    for channel, address in ((Channel.EMAIL, email), (Channel.SMS, phone)):
        if address and consent.tombstone_digest(channel, address) in tombstones:
            return f"{channel.value} address belongs to a contact erased on request"
    return None
