"""PostgreSQL set-based writes of an event batch: one statement each, rows passed as one JSON.

Each statement hands the batch to PostgreSQL as a single jsonb parameter
(jsonb_to_recordset), so a thousand rows cost one round trip and one plan instead of a
thousand executions. Rows are sorted (provider event id, message id, contact id) so that
concurrent batches take their row locks in the same order and never deadlock each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

# Ids are drawn in arrival order (the inner ORDER BY runs before the volatile nextval), rows
# are inserted in provider id order: concurrent replays of the same events wait on each other
# in one order instead of deadlocking.
INSERT_EVENTS = """
    INSERT INTO events (id, message_id, blast_id, contact_id, kind, machine, link_position,
                        provider_event_id, detail, occurred_at, created_at)
    SELECT s.id, s.m, s.b, s.c, s.k, s.x, s.p, s.e, s.d::json, s.t, CAST(:now AS timestamp)
    FROM (SELECT nextval('events_id_seq') AS id, r.*
          FROM ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb))
                          AS (m bigint, b integer, c integer, k text, x boolean, p integer,
                              e text, d jsonb, t timestamp)) WITH ORDINALITY
               AS r(m, b, c, k, x, p, e, d, t, n)
          ORDER BY r.n) AS s
    ORDER BY s.e
    ON CONFLICT (provider_event_id) DO NOTHING
    RETURNING provider_event_id
"""

# The same insert answering with one row: how many were inserted, and which only when some
# were not (replays): a thousand RETURNING rows cost the worker more than the insert itself.
INSERT_EVENTS_COUNTED = sa.text(f"""
    WITH ins AS ({INSERT_EVENTS})
    SELECT count(*), CASE WHEN count(*) < CAST(:n AS integer)
                          THEN array_agg(provider_event_id) END
    FROM ins
""")
INSERT_EVENTS = sa.text(INSERT_EVENTS)

INSERT_FIRSTS = """
    INSERT INTO first_engagements (message_id, kind, link_position, occurred_at)
    SELECT r.m, r.k, r.p, r.t
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(m bigint, k text, p integer, t timestamp)
    ORDER BY r.m, r.k, r.p
    ON CONFLICT DO NOTHING
    RETURNING message_id, kind, link_position
"""

# The keys it did not insert (already held): usually none, so usually no rows to fetch.
INSERT_FIRSTS_LOST = sa.text(f"""
    WITH ins AS ({INSERT_FIRSTS})
    SELECT r.m, r.k, r.p
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(m bigint, k text, p integer)
    WHERE NOT EXISTS (SELECT FROM ins WHERE ins.message_id = r.m AND ins.kind = r.k
                                        AND ins.link_position = r.p)
""")
INSERT_FIRSTS = sa.text(INSERT_FIRSTS)

# Keys held by a later event: lock them (in key order; a concurrent taker is waited for and
# its version rechecked), then move them to the earlier event.
LOCK_LATER_FIRSTS = sa.text("""
    SELECT f.message_id, f.kind, f.link_position, f.occurred_at
    FROM first_engagements AS f
    JOIN jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(m bigint, k text, p integer, t timestamp)
      ON f.message_id = r.m AND f.kind = r.k AND f.link_position = r.p
    WHERE r.t < f.occurred_at
    ORDER BY f.message_id, f.kind, f.link_position
    FOR UPDATE OF f
""")

MOVE_FIRSTS = sa.text("""
    UPDATE first_engagements AS f SET occurred_at = r.t
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(m bigint, k text, p integer, t timestamp)
    WHERE f.message_id = r.m AND f.kind = r.k AND f.link_position = r.p
""")

BUMP_ROLLUPS = sa.text("""
    INSERT INTO rollups (blast_id, link_position, hour, kind, machine, total, unique_count)
    SELECT r.b, r.p, r.h, r.k, r.x, r.t, r.u
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(b integer, p integer, h timestamp, k text, x boolean, t integer, u integer)
    ORDER BY r.b, r.p, r.h, r.k, r.x
    ON CONFLICT (blast_id, link_position, hour, kind, machine)
    DO UPDATE SET total = rollups.total + excluded.total,
                  unique_count = rollups.unique_count + excluded.unique_count
""")

TOUCH_CONTACTS = sa.text("""
    UPDATE contacts AS c
    SET last_opened_at = GREATEST(c.last_opened_at, r.o),
        last_clicked_at = GREATEST(c.last_clicked_at, r.k)
    FROM (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
          AS x(id integer, o timestamp, k timestamp) ORDER BY id) AS r
    WHERE c.id = r.id
      AND (r.o > c.last_opened_at OR (c.last_opened_at IS NULL AND r.o IS NOT NULL)
           OR r.k > c.last_clicked_at OR (c.last_clicked_at IS NULL AND r.k IS NOT NULL))
""")

MOVE_MESSAGES = """
    UPDATE messages AS m
    SET status = CASE WHEN r.rank > {rank} THEN r.target ELSE m.status END,
        error = CASE WHEN r.rank > {rank} THEN COALESCE(r.error, m.error) ELSE m.error END,
        error_code = CASE WHEN r.rank > {rank} THEN COALESCE(r.error_code, m.error_code)
                          ELSE m.error_code END,
        updated_at = CASE WHEN r.rank > {rank} THEN CAST(:now AS timestamp)
                          ELSE m.updated_at END,
        delivered_at = LEAST(m.delivered_at, r.delivered)
    FROM (SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
          AS x(id bigint, target text, rank integer, error text, error_code text,
               delivered timestamp) ORDER BY id) AS r
    WHERE m.id = r.id
      AND (r.rank > {rank} OR r.delivered < m.delivered_at
           OR (m.delivered_at IS NULL AND r.delivered IS NOT NULL))
"""


def naive_utc(when: datetime) -> str:
    """An aware timestamp as UTC ISO text for a `timestamp` column (naive UTC, as UTCDateTime
    stores it; PostgreSQL ignores the "+00:00" of UTC ones)."""
    return when.isoformat() if when.tzinfo is UTC else when.astimezone(UTC).isoformat()


def _json(rows: Any) -> str:
    return json.dumps(rows, separators=(",", ":"), default=str)


def insert_events(session: Session, records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Insert events, skipping stored provider ids; return the ids inserted now."""
    rows = [{"m": r.get("message_id"), "b": r.get("blast_id"), "c": r.get("contact_id"),
             "k": r["kind"], "x": bool(r["machine"]), "p": r.get("link_position"),
             "e": r["provider_event_id"], "d": r.get("detail") or {},
             "t": naive_utc(r["occurred_at"])} for r in records]
    now = naive_utc(datetime.now(UTC))
    count, ids = session.execute(INSERT_EVENTS_COUNTED,
                                 {"rows": _json(rows), "now": now, "n": len(rows)}).one()
    return {r["e"] for r in rows} if count == len(rows) else set(ids or ())  # NULL: none


Key = tuple[int, str, int]


def _key_rows(keys: Iterable[tuple[Key, datetime]]) -> str:
    return _json([{"m": m, "k": k, "p": p, "t": naive_utc(t)} for (m, k, p), t in keys])


def insert_firsts(session: Session, keys: Sequence[tuple[Key, datetime]]) -> set[Key]:
    """Insert first_engagements keys with their event times; return those inserted now."""
    if not keys:
        return set()
    lost = {(m, k, p) for m, k, p in session.execute(INSERT_FIRSTS_LOST,
                                                       {"rows": _key_rows(keys)})}
    return {key for key, _ in keys if key not in lost}


def take_over_firsts(session: Session, keys: Sequence[tuple[Key, datetime]]
                     ) -> dict[Key, datetime]:
    """Move keys held by later events to these earlier ones; {key: the old holder's time}."""
    rows = _key_rows(keys)
    held = {(m, k, p): t.replace(tzinfo=UTC)
            for m, k, p, t in session.execute(LOCK_LATER_FIRSTS, {"rows": rows})}
    if held:
        times = dict(keys)
        session.execute(MOVE_FIRSTS, {"rows": _key_rows((k, times[k]) for k in sorted(held))})
    return held


def bump_rollups(session: Session, groups: Iterable[tuple[tuple[Any, ...], Sequence[int]]]
                 ) -> None:
    """Add ((blast, link, hour, kind, machine), (total, unique)) to the rollups."""
    rows = [{"b": b, "p": p, "h": naive_utc(h), "k": k, "x": x, "t": t, "u": u}
            for (b, p, h, k, x), (t, u) in groups]
    session.execute(BUMP_ROLLUPS, {"rows": _json(rows)})


def touch_contacts(session: Session, latest: Mapping[str, Mapping[int, datetime]]) -> None:
    """Move last_opened_at / last_clicked_at forward for {column: {contact: time}}."""
    opened, clicked = latest.get("last_opened_at", {}), latest.get("last_clicked_at", {})
    rows = [{"id": cid, "o": naive_utc(opened[cid]) if cid in opened else None,
             "k": naive_utc(clicked[cid]) if cid in clicked else None}
            for cid in sorted(set(opened) | set(clicked))]
    session.execute(TOUCH_CONTACTS, {"rows": _json(rows)})


def move_messages(session: Session, moves: Sequence[Mapping[str, Any]], rank: Mapping[str, int],
                  now: datetime) -> None:
    """Forward-only status moves and earliest delivery times (see service.move_messages)."""
    current = "CASE m.status " + " ".join(
        f"WHEN '{status}' THEN {value}" for status, value in rank.items()) + " ELSE 99 END"
    rows = [{"id": m["mid"], "target": m.get("target"),
             "rank": rank[m["target"]] if m.get("target") else None,
             "error": m.get("error"), "error_code": m.get("error_code"),
             "delivered": naive_utc(m["delivered"]) if m.get("delivered") else None}
            for m in moves]
    session.execute(sa.text(MOVE_MESSAGES.format(rank=current)),
                    {"rows": _json(rows), "now": naive_utc(now)})


# Provider opt-outs and suppressions of one batch in one statement (what service.opt_out and
# service.suppress_addresses do row by row through the ORM elsewhere):
# - each opted-out contact whose email consent is not revoked yet is revoked, with one ledger
#   entry whose evidence is its earliest opt-out of the batch (contacts in id order);
# - suppressions: an opt-out suppresses the contact's current email and the event's address,
#   then bounces and drops theirs; an address's first row in that order (n) gives its reason,
#   an existing suppression keeps its own; rows go in address order (a stable lock order).
OPT_OUT_AND_SUPPRESS = sa.text("""
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
             AS r(n integer, c integer, a text, why text, note text, ev jsonb)
    ), revoked AS (
        UPDATE contacts AS c SET email_consent = 'revoked', updated_at = CAST(:now AS timestamp)
        FROM (SELECT DISTINCT ON (r.c) r.c, r.ev FROM r
              WHERE r.c IS NOT NULL AND r.ev IS NOT NULL ORDER BY r.c, r.n) AS f
        WHERE c.id = f.c AND c.email_consent IS DISTINCT FROM 'revoked'
        RETURNING c.id, f.ev
    ), ledger AS (
        INSERT INTO consent_events (contact_id, channel, status, source, evidence, created_at)
        SELECT id, 'email', 'revoked', 'provider', ev::json, CAST(:now AS timestamp)
        FROM revoked ORDER BY id
    ), wanted AS (
        SELECT r.n, 0 AS o, c.email AS a, r.why, r.note
        FROM r JOIN contacts AS c ON c.id = r.c
        WHERE r.ev IS NOT NULL AND c.email IS NOT NULL AND c.email <> ''
        UNION ALL
        SELECT r.n, 1, r.a, r.why, r.note FROM r WHERE r.a IS NOT NULL AND r.a <> ''
    )
    INSERT INTO suppressions (channel, address, reason, note, created_at)
    SELECT 'email', w.a, w.why, w.note, CAST(:now AS timestamp)
    FROM (SELECT DISTINCT ON (a) a, why, note FROM wanted ORDER BY a, n, o) AS w
    ORDER BY w.a
    ON CONFLICT DO NOTHING
""")


def opt_out_and_suppress(session: Session, rows: Sequence[Mapping[str, Any]], now: datetime
                         ) -> None:
    """Rows in order: {"c": contact id or None, "a": address, "why": reason, "note": note,
    "ev": the consent evidence (opt-outs) or None (suppression only)}."""
    if rows:
        session.execute(OPT_OUT_AND_SUPPRESS, {
            "rows": _json([{**row, "n": n} for n, row in enumerate(rows)]),
            "now": naive_utc(now)})
