"""Signed, opaque tokens for public links (tracking, unsubscribe): no enumeration, no forgery."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache

from flask import current_app

SIGNATURE_BYTES = 12


@lru_cache(maxsize=32)  # a blast signs a token per recipient with the same key
def _key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"outreach-token:{purpose}:{secret}".encode()).digest()


def make_token(message_id: int, secret: str | None = None, purpose: str = "message") -> str:
    """A URL-safe token naming a message id, signed with the app's secret."""
    secret = secret or current_app.config["SECRET_KEY"]
    raw = message_id.to_bytes(8, "big")
    mac = hmac.new(_key(secret, purpose), raw, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")


def token_signer(secret: str, purpose: str = "message") -> Callable[[int], str]:
    """make_token for many ids with one secret: the keyed hash is set up once, then copied."""
    keyed = hmac.new(_key(secret, purpose), digestmod=hashlib.sha256)

    def sign(message_id: int) -> str:
        raw = message_id.to_bytes(8, "big")
        mac = keyed.copy()
        mac.update(raw)
        return base64.urlsafe_b64encode(raw + mac.digest()[:SIGNATURE_BYTES]).decode().rstrip("=")

    return sign


def read_token(token: str, secret: str | None = None, purpose: str = "message") -> int | None:
    """The message id a token names, or None when it is malformed or forged."""
    secret = secret or current_app.config["SECRET_KEY"]
    if not token or len(token) > 40:
        return None
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(data) != 8 + SIGNATURE_BYTES:
        return None
    raw, mac = data[:8], data[8:]
    expected = hmac.new(_key(secret, purpose), raw, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    return int.from_bytes(raw, "big")
