"""Configuration: one class read from the environment (the public contract in DESIGN.md)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from outreach.exceptions import ConfigurationError

# Settings read from the environment, with their defaults. Adding a setting here documents it:
# the README's configuration table mirrors this list.
ENV_SETTINGS: dict[str, Any] = {
    "SECRET_KEY": None,
    "DATABASE_URL": None,
    "REDIS_URL": None,
    "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    "OUTREACH_ENV": None,
    "EMAIL_BACKEND": "outbox",
    "EMAIL_FROM": "Outreach <outreach@example.org>",
    "SENDGRID_API_KEY": None,
    "SENDGRID_API_HOST": "https://api.sendgrid.com",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": None,
    "SMTP_URL": None,
    "SMS_BACKEND": "outbox",
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_API_BASE": "https://api.twilio.com",
    "TWILIO_MESSAGING_SERVICE_SID": None,
    "TWILIO_FROM": None,
    "SMS_RATE_PER_SECOND": "0",
    "DEFAULT_REGION": "US",
    "MAX_UPLOAD_MB": "512",
    "LOGIN_MAX_FAILURES": "5",
    "LOGIN_LOCKOUT_SECONDS": "900",
    "SMS_QUIET_START": "08:00",
    "SMS_QUIET_END": "21:00",
    "SMS_QUIET_END_FL_OK": "20:00",
    "SMS_RATE_PER_SENDER": None,
    "SMS_CONCURRENCY": "16",
    "SEND_STALE_SECONDS": "600",
    "RECONCILE_SECONDS": "60",
    "WORKER_NICE": "10",
    "PROVIDER_TIMEOUT_SECONDS": "30",
    "BREAKER_WINDOW": "500",
    "BREAKER_MAX_FAILURE_RATE": "0.05",
    "BREAKER_MAX_OPTOUT_RATE": "0.02",
    "SMS_HELP_TEXT": "Reply STOP to opt out. Msg&data rates may apply.",
    "MACHINE_OPEN_SECONDS": "2",
    "MACHINE_CLICK_SECONDS": "2",
    "TRUST_PROXY": "0",
    "SMS_SEGMENT_PRICE": "0.0079",
    "ACTION_BLOCKED_WORDS": None,
    "ACTION_FRAME_ANCESTORS": "*",
    "ACTION_RATE_LIMIT_IP": "100",
    "ACTION_RATE_LIMIT_ADDRESS": "5",
    "ACTION_RATE_WINDOW": "3600",
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    "METRICS_TOKEN": None,
}

INT_SETTINGS = {"MAX_UPLOAD_MB", "LOGIN_MAX_FAILURES", "LOGIN_LOCKOUT_SECONDS",
                "SMS_CONCURRENCY", "SEND_STALE_SECONDS", "BREAKER_WINDOW", "TRUST_PROXY",
                "RECONCILE_SECONDS", "WORKER_NICE", "ACTION_RATE_LIMIT_IP",
                "ACTION_RATE_LIMIT_ADDRESS", "ACTION_RATE_WINDOW"}
FLOAT_SETTINGS = {"SMS_RATE_PER_SECOND", "BREAKER_MAX_FAILURE_RATE", "BREAKER_MAX_OPTOUT_RATE",
                  "PROVIDER_TIMEOUT_SECONDS", "MACHINE_OPEN_SECONDS", "MACHINE_CLICK_SECONDS",
                  "SMS_SEGMENT_PRICE"}
CHOICES = {
    "EMAIL_BACKEND": {"outbox", "sendgrid", "smtp"},
    "SMS_BACKEND": {"outbox", "twilio"},
    "OUTREACH_ENV": {"development", "production", "testing"},
    "LOG_FORMAT": {"text", "json"},
}


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read every contract setting from the environment, typed, with defaults."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, default in ENV_SETTINGS.items():
        raw = env.get(name)
        value: Any = default if raw in (None, "") else raw
        if value is not None and name in INT_SETTINGS:
            value = _number(name, value, int)
        elif value is not None and name in FLOAT_SETTINGS:
            value = _number(name, value, float)
        config[name] = value
    return config


def _number(name: str, value: Any, kind: type) -> Any:
    """Parse a numeric setting, naming it when it is not a number."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from None


def finalize(config: dict[str, Any], instance_path: Path) -> None:
    """Fill derived settings and refuse an unsafe or inconsistent configuration."""
    for name, allowed in CHOICES.items():
        value = config.get(name)
        if value is not None and value not in allowed:
            choices = ", ".join(sorted(allowed))
            raise ConfigurationError(f"{name} must be one of {choices}; got {value!r}")
    if not 0 <= int(config.get("WORKER_NICE") or 0) <= 19:
        raise ConfigurationError(f"WORKER_NICE must be from 0 to 19; got {config['WORKER_NICE']}")
    embedded = not config.get("DATABASE_URL")
    if config.get("OUTREACH_ENV") is None:
        # With no DATABASE_URL this is the one-machine embedded setup, a development install.
        config["OUTREACH_ENV"] = "testing" if config.get("TESTING") else (
            "development" if embedded else "production")
    env = config["OUTREACH_ENV"]
    if not config.get("SECRET_KEY"):
        if env == "production":
            raise ConfigurationError(
                "SECRET_KEY is not set. Outside development outreach refuses to start without "
                "it: set SECRET_KEY to a long random string (python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')."
            )
        config["SECRET_KEY"] = _persistent_secret(instance_path)
    if embedded:
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'outreach.sqlite3'}"
    config["DATABASE_URL"] = normalize_database_url(config["DATABASE_URL"])
    https = str(config.get("PUBLIC_BASE_URL", "")).startswith("https://")
    # Flask ships defaults for these keys, so they are assigned rather than defaulted.
    config["SESSION_COOKIE_SECURE"] = https or (env == "production" and not _loopback(config))
    if https:
        config["PREFERRED_URL_SCHEME"] = "https"  # external URLs, and HSTS (outreach/web.py)
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_NAME"] = "outreach_session"
    config["PERMANENT_SESSION_LIFETIME"] = 12 * 3600
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    config.setdefault("WTF_CSRF_SSL_STRICT", https)


def _loopback(config: dict[str, Any]) -> bool:
    """True when the public URL is plain http on this machine (a local trial of production)."""
    return str(config.get("PUBLIC_BASE_URL", "")).startswith(
        ("http://127.0.0.1", "http://localhost"))


def _persistent_secret(instance_path: Path) -> str:
    """Generate a secret key once and keep it in the instance folder (embedded default)."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_name(f"secret_key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    try:
        # link() fails if another process (web and worker start together) won the race.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
