"""Abuse defences of public action pages: rate limits, the honeypot, the moderation word list.

Rate limits are Redis counters with an expiry, shared by every web process:
ACTION_RATE_LIMIT_IP submissions per IP and ACTION_RATE_LIMIT_ADDRESS per email or phone, each
per ACTION_RATE_WINDOW seconds. A Redis outage lets submissions through (logged) rather than
turning supporters away. ACTION_BLOCKED_WORDS (comma-separated) flags letters for moderation.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable

from flask import current_app
from redis.exceptions import RedisError

from outreach.queue import redis

log = logging.getLogger(__name__)
HONEYPOT_FIELD = "website"
DEFAULT_IP_LIMIT = 100  # a rally's shared Wi-Fi is one IP
DEFAULT_ADDRESS_LIMIT = 5
DEFAULT_WINDOW = 3600
KEY_PREFIX = "outreach:actions:rate"


def _setting(name: str, default: int) -> int:
    try:
        return int(current_app.config.get(name) or default)
    except (TypeError, ValueError):
        return default


def _hit(key: str, limit: int, window: int) -> bool:
    """Count one hit on a key; True while the count stays within the limit."""
    try:
        pipe = redis().pipeline()
        pipe.set(key, 0, ex=window, nx=True)  # starts the window (works on Redis 6 too)
        pipe.incr(key)
        count = int(pipe.execute()[1])
    except RedisError:
        log.exception("rate limit unavailable (Redis); letting a submission through")
        return True
    return count <= limit


def digest(value: str) -> str:
    """A hash of an address or IP, so Redis keys hold no personal data."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def allow_ip(ip: str | None) -> bool:
    """True while this IP stays within its submission limit."""
    return _hit(f"{KEY_PREFIX}:ip:{digest(ip or 'unknown')}",
                _setting("ACTION_RATE_LIMIT_IP", DEFAULT_IP_LIMIT),
                _setting("ACTION_RATE_WINDOW", DEFAULT_WINDOW))


def allow_addresses(addresses: Iterable[str | None]) -> bool:
    """True while every given email or phone stays within its submission limit."""
    limit = _setting("ACTION_RATE_LIMIT_ADDRESS", DEFAULT_ADDRESS_LIMIT)
    window = _setting("ACTION_RATE_WINDOW", DEFAULT_WINDOW)
    results = [_hit(f"{KEY_PREFIX}:addr:{digest(a)}", limit, window) for a in addresses if a]
    return all(results)


def is_bot(form: dict[str, str]) -> bool:
    """True when the hidden honeypot field, which people never see, was filled."""
    return bool((form.get(HONEYPOT_FIELD) or "").strip())


def blocked_words() -> list[str]:
    """The moderation word list from ACTION_BLOCKED_WORDS (comma-separated, any case)."""
    raw = current_app.config.get("ACTION_BLOCKED_WORDS") or ""
    if isinstance(raw, (list, tuple)):
        raw = ",".join(raw)
    return [w.strip().casefold() for w in str(raw).split(",") if w.strip()]


def flagged_words(*texts: str) -> list[str]:
    """The listed words (or phrases) found as whole words in these texts, in list order."""
    words = blocked_words()
    if not words:
        return []
    haystack = "\n".join(texts).casefold()
    return [w for w in words
            if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", haystack)]
