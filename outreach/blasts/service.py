"""Blasts: creating, launching, pausing, resuming, canceling, and their counts."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from outreach.blasts.audience import audience_count
from outreach.blasts.models import Blast, BlastStatus, Message, MessageStatus
from outreach.blasts.schedule import parse_hhmm
from outreach.contacts.models import ContactList, Segment
from outreach.content.models import MessageTemplate
from outreach.content.service import current_version
from outreach.db import utcnow
from outreach.exceptions import Conflict, NotFound, ValidationError
from outreach.slow_counts import remembered


def get_blast(db: Session, blast_id: int) -> Blast:
    """A blast by id, or NotFound."""
    blast = db.get(Blast, blast_id)
    if blast is None:
        raise NotFound(f"No blast {blast_id}")
    return blast


def _ids(value: Any, field: str, model: Any, db: Session, errors: dict[str, str]) -> list[int]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        errors[field] = "must be a list of ids"
        return []
    missing = [v for v in value if db.get(model, v) is None]
    if missing:
        errors[field] = f"unknown ids {missing}"
    return sorted(set(value))


def _when(value: Any, errors: dict[str, str]) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        errors["send_at"] = "ISO 8601 date and time, e.g. 2026-12-01T15:00:00Z"
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(value: Any, errors: dict[str, str]) -> tuple[str | None, str | None]:
    if value in (None, "", {}):
        return None, None
    try:
        start, end = parse_hhmm(value["start"]), parse_hhmm(value["end"])
    except (KeyError, TypeError, ValueError):
        errors["window"] = 'an object {"start": "HH:MM", "end": "HH:MM"}'
        return None, None
    if start >= end:
        errors["window"] = "start must be before end"
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def save_blast(db: Session, data: dict[str, Any], blast_id: int | None = None,
               actor_id: int | None = None) -> Blast:
    """Create a draft blast, or change a draft or scheduled one; 422 names each bad field."""
    blast = get_blast(db, blast_id) if blast_id else Blast(created_by_id=actor_id)
    if blast_id and blast.status not in (BlastStatus.DRAFT, BlastStatus.SCHEDULED):
        raise Conflict(f"A blast that is {blast.status} cannot be changed")
    data = {**_as_data(blast), **data} if blast_id else data
    errors: dict[str, str] = {}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = "required, at most 200 characters"
    template = db.get(MessageTemplate, data["template_id"]) if isinstance(
        data.get("template_id"), int) else None
    if template is None:
        errors["template_id"] = "unknown template"
    channel = data.get("channel") or (template.channel if template else None)
    if channel not in ("email", "sms"):
        errors["channel"] = "email or sms"
    elif template is not None and template.channel != channel:
        errors["template_id"] = f"this is an {template.channel} template"
    list_ids = _ids(data.get("list_ids"), "list_ids", ContactList, db, errors)
    exclude = _ids(data.get("exclude_list_ids"), "exclude_list_ids", ContactList, db, errors)
    segment_id = data.get("segment_id")
    if segment_id not in (None, "") and (not isinstance(segment_id, int)
                                         or db.get(Segment, segment_id) is None):
        errors["segment_id"] = "unknown segment"
    if not list_ids and segment_id in (None, "") and "list_ids" not in errors:
        errors["list_ids"] = "choose at least one list or a segment"
    send_at = _when(data.get("send_at"), errors)
    start, end = _window(data.get("window"), errors)
    throttle = data.get("throttle_per_minute")
    if throttle not in (None, "") and (not isinstance(throttle, int) or throttle < 1):
        errors["throttle_per_minute"] = "a positive whole number"
    if errors:
        raise ValidationError("Invalid blast", errors)
    assert template is not None
    blast.name, blast.channel, blast.template_id = name.strip(), channel, template.id
    blast.list_ids, blast.exclude_list_ids = list_ids, exclude
    blast.segment_id = segment_id or None
    blast.send_at, blast.window_start, blast.window_end = send_at, start, end
    blast.throttle_per_minute = throttle or None
    db.add(blast)
    db.flush()
    return blast


def _as_data(blast: Blast) -> dict[str, Any]:
    window = ({"start": blast.window_start, "end": blast.window_end}
              if blast.window_start else None)
    return {"name": blast.name, "channel": blast.channel, "template_id": blast.template_id,
            "list_ids": blast.list_ids, "exclude_list_ids": blast.exclude_list_ids,
            "segment_id": blast.segment_id, "send_at": blast.send_at, "window": window,
            "throttle_per_minute": blast.throttle_per_minute}


def launch(db: Session, blast_id: int) -> Blast:
    """Freeze the template version and start the blast now, or schedule it for send_at."""
    blast = get_blast(db, blast_id)
    if blast.status not in (BlastStatus.DRAFT, BlastStatus.SCHEDULED):
        raise Conflict(f"A blast that is {blast.status} cannot be launched")
    template = db.get(MessageTemplate, blast.template_id)
    assert template is not None
    blast.template_version_id = current_version(db, template).id
    blast.launched_at = utcnow()
    later = blast.send_at is not None and blast.send_at > utcnow()
    blast.status = BlastStatus.SCHEDULED.value if later else BlastStatus.PREPARING.value
    blast.status_reason = None
    db.flush()
    return blast


def pause(db: Session, blast_id: int, reason: str = "Paused by staff") -> Blast:
    """Stop sending after the batches in flight; nothing queued is lost."""
    blast = get_blast(db, blast_id)
    if blast.status not in (BlastStatus.PREPARING, BlastStatus.SENDING, BlastStatus.SCHEDULED):
        raise Conflict(f"A blast that is {blast.status} cannot be paused")
    blast.status, blast.status_reason = BlastStatus.PAUSED.value, reason
    db.flush()
    return blast


def resume(db: Session, blast_id: int) -> Blast:
    """Continue a paused blast where it stopped."""
    blast = get_blast(db, blast_id)
    if blast.status != BlastStatus.PAUSED:
        raise Conflict(f"A blast that is {blast.status} cannot be resumed")
    prepared = blast.prepared_through is None and (db.scalar(
        sa.select(Message.id).where(Message.blast_id == blast.id).limit(1)) is not None
        or blast.total)  # a preparation paused between chunks has a mark: it goes on
    blast.status = BlastStatus.SENDING.value if prepared else BlastStatus.PREPARING.value
    blast.status_reason = None
    db.flush()
    return blast


def cancel(db: Session, blast_id: int) -> Blast:
    """Stop the blast for good: messages not yet sent are canceled."""
    blast = get_blast(db, blast_id)
    if blast.status in (BlastStatus.DONE, BlastStatus.CANCELED):
        raise Conflict(f"A blast that is {blast.status} cannot be canceled")
    blast.status, blast.finished_at = BlastStatus.CANCELED.value, utcnow()
    db.execute(sa.update(Message).where(Message.blast_id == blast.id,
                                        Message.status == MessageStatus.QUEUED.value)
               .values(status=MessageStatus.CANCELED.value, updated_at=utcnow()))
    db.flush()
    return blast


def counts(db: Session, blast: Blast) -> dict[str, int]:
    """Messages per status, counted as the metrics count them (fast on big blasts)."""
    return counts_of(db, [blast])[blast.id]


def counts_of(db: Session, blasts: list[Blast]) -> dict[int, dict[str, int]]:
    """Messages per status of several blasts (one rollup query for them all)."""
    from outreach.metrics.service import message_counts  # metrics builds on blasts

    return message_counts(db, blasts)


def blast_json(db: Session, blast: Blast) -> dict[str, Any]:
    """A blast as the API shows it."""
    window = ({"start": blast.window_start, "end": blast.window_end}
              if blast.window_start else None)
    return {
        "id": blast.id, "name": blast.name, "channel": blast.channel,
        "template_id": blast.template_id, "template_version_id": blast.template_version_id,
        "list_ids": blast.list_ids or [], "segment_id": blast.segment_id,
        "exclude_list_ids": blast.exclude_list_ids or [],
        "send_at": blast.send_at.isoformat() if blast.send_at else None, "window": window,
        "throttle_per_minute": blast.throttle_per_minute, "status": blast.status,
        "status_reason": blast.status_reason, "counts": counts(db, blast),
        "created_at": blast.created_at.isoformat(),
        "launched_at": blast.launched_at.isoformat() if blast.launched_at else None,
        "finished_at": blast.finished_at.isoformat() if blast.finished_at else None,
    }


def preview_audience(db: Session, blast: Blast) -> int:
    """The audience count before launch, after consent and suppression.

    Counting a million contacts through consent and suppression takes seconds; a draft's page
    viewed by many staff members counts it once per moment (outreach.slow_counts), keyed by
    what defines the audience, so an edited audience counts afresh at once.
    """
    shape = json.dumps([blast.channel, sorted(blast.list_ids or []), blast.segment_id,
                        sorted(blast.exclude_list_ids or [])])
    key = f"audience:{blast.id}:{hashlib.sha256(shape.encode()).hexdigest()[:16]}"
    return remembered(key, lambda: audience_count(db, blast), rows=lambda n: n)
