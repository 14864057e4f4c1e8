"""When a message may go out: the blast's window and SMS quiet hours, in the recipient's zone.

Recipients without a known zone wait for a window that is allowed in every continental US
zone at once (for quiet hours 8:00-21:00 that is 11:00-20:00 Eastern, because Florida and
Oklahoma end at 20:00 and the Pacific starts three hours later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CONTINENTAL = ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
               "America/Los_Angeles")
EARLY_END_STATES = {"FL", "OK"}  # quiet hours end at 20:00 there


@dataclass(frozen=True)
class Rules:
    """The daily windows a blast must respect (all optional)."""

    window: tuple[time, time] | None = None
    quiet_hours: tuple[time, time] | None = None  # the allowed part of the day for SMS
    early_end: time | None = None  # the allowed end in FL and OK


def parse_hhmm(value: str) -> time:
    """A time from "HH:MM"; ValueError otherwise."""
    hours, _, minutes = value.strip().partition(":")
    return time(int(hours), int(minutes or 0))


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _daily(rules: Rules, region: str | None) -> list[tuple[time, time]]:
    """The windows that apply to a recipient in a region, each day."""
    windows = []
    if rules.window:
        windows.append(rules.window)
    if rules.quiet_hours:
        start, end = rules.quiet_hours
        if rules.early_end and (region or "").upper() in EARLY_END_STATES:
            end = min(end, rules.early_end)
        windows.append((start, end))
    return windows


def _interval(day: date, zone: ZoneInfo, window: tuple[time, time]) -> tuple[datetime, datetime]:
    start = datetime.combine(day, window[0], zone).astimezone(UTC)
    end = datetime.combine(day, window[1], zone).astimezone(UTC)
    return start, end


def allowed_interval(now: datetime, timezone: str | None, region: str | None,
                     rules: Rules) -> tuple[datetime | None, datetime | None]:
    """The next (or current) span of UTC time in which this recipient may be messaged.

    Returns (None, None) when the blast has no window rules at all.
    """
    windows = _daily(rules, region)
    if not windows:
        return None, None
    zone = _zone(timezone)
    if zone is None:
        zones = [ZoneInfo(z) for z in CONTINENTAL]
        # An unknown recipient might be in Florida or Oklahoma: use the earlier end.
        windows = _daily(rules, "FL")
    else:
        zones = [zone]
    anchor = now.astimezone(zones[0]).date()
    for offset in range(-1, 8):
        day = anchor + timedelta(days=offset)
        start, end = now - timedelta(days=1), now + timedelta(days=30)
        for z in zones:
            for window in windows:
                # Each zone's window on the same calendar day as the anchor zone.
                w_start, w_end = _interval(day, z, window)
                start, end = max(start, w_start), min(end, w_end)
        if start < end and end > now:
            return max(start, now), end
    # No common window within a week (e.g. a window that quiet hours exclude): send as soon
    # as the recipient's own window allows, in Eastern time for unknown zones.
    fallback = zone or ZoneInfo("America/New_York")
    start, end = _interval(now.astimezone(fallback).date() + timedelta(days=1), fallback,
                           windows[-1])
    return start, end
