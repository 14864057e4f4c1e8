"""Logging for the web app and the workers: human lines, or one JSON object per line.

LOG_FORMAT=text (the default, for `make run`) keeps the familiar
"time LEVEL logger: message" line; LOG_FORMAT=json writes one JSON object per line for a log
collector. Both carry the context of the work being done: request id, method and path for a web
request; job id, queue, function and the ids it was given (blast_id, import_id, ...) for an RQ
job. Every line goes through `redact`, so configured secrets, bearer tokens, passwords in URLs
and signature headers never reach the log, whichever code wrote them.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import g, has_request_context, request

HANDLER_MARK = "_outreach_handler"
REDACTED = "[redacted]"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Settings whose values are secrets wherever they appear in a line.
SECRET_SETTINGS = ("SECRET_KEY", "SENDGRID_API_KEY", "TWILIO_AUTH_TOKEN", "METRICS_TOKEN")
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "SMTP_URL")
_PATTERNS = [
    # Authorization headers and bearer tokens (API tokens, the metrics token).
    (re.compile(r"\b([Bb]earer|BEARER|Basic)(\s+)[A-Za-z0-9._~+/=-]{16,}"), r"\1\2" + REDACTED),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    # outreach API tokens (accounts.service.TOKEN_PREFIX) wherever they appear.
    (re.compile(r"\botk_[A-Za-z0-9_-]{16,}"), REDACTED),
    # SendGrid API keys.
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
    # name=value or "name": "value" pairs whose name says secret (form dumps, headers, reprs).
    (re.compile(r"(?i)([\w-]*(?:password|passwd|secret|secret[_-]?key|token|api[_-]?key"
                r"|signature)['\"]?\s*[:=]\s*['\"]?)[^\s'\"&,;}]+"), r"\1" + REDACTED),
]
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

_secrets: set[str] = set()
_job: ContextVar[Mapping[str, Any] | None] = ContextVar("outreach_job", default=None)
_extra: ContextVar[Mapping[str, Any] | None] = ContextVar("outreach_log_extra", default=None)


def remember_secrets(config: Mapping[str, Any]) -> None:
    """Add the configuration's secret values to those every line is scrubbed of."""
    for name in SECRET_SETTINGS:
        value = config.get(name)
        if isinstance(value, str) and len(value) >= 6:
            _secrets.add(value)
    for name in URL_SETTINGS:
        password = _url_password(config.get(name))
        if password and len(password) >= 4:
            _secrets.add(password)


def _url_password(url: Any) -> str | None:
    if not isinstance(url, str) or "@" not in url:
        return None
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact(text: str) -> str:
    """The text with known secrets and secret-looking values replaced."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=256)
def _id_parameters(func_name: str | None, func: Any) -> tuple[str, ...]:
    """The names of a job function's parameters, so its ids can be labelled (blast_id, ...)."""
    try:
        return tuple(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return ()


def job_fields(job: Any) -> dict[str, Any]:
    """Context of an RQ job: its id, queue, function, and the *_id arguments it was given."""
    fields: dict[str, Any] = {"job_id": job.id, "queue": job.origin, "job": job.func_name}
    try:
        args, kwargs = job.args, job.kwargs
        names = _id_parameters(job.func_name, job.func)
    except Exception:  # noqa: BLE001 - context is a convenience; the job itself reports errors
        return fields
    # Jobs take ids: name each positional id after its parameter (blast_id, import_id, ...).
    for name, value in [*zip(names, args, strict=False), *kwargs.items()]:
        if name.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
            fields[name] = value
    return fields


@contextlib.contextmanager
def job_context(job: Any) -> Iterator[None]:
    """Tag every line logged while this RQ job runs with its id, queue and ids."""
    token = _job.set(job_fields(job))
    try:
        yield
    finally:
        _job.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields (e.g. blast_id=) to every line logged inside the block."""
    token = _extra.set({**(_extra.get() or {}), **fields})
    try:
        yield
    finally:
        _extra.reset(token)


def context() -> dict[str, Any]:
    """The fields describing the current request or job."""
    fields: dict[str, Any] = {}
    job = _job.get()
    if job:
        fields.update(job)
    if has_request_context():
        fields["request_id"] = g.get("request_id")
        fields["method"] = request.method
        fields["path"] = request.path
    extra = _extra.get()
    if extra:
        fields.update(extra)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object, secrets removed."""
        message = record.getMessage()
        if "\x1b" in message:
            message = _ANSI.sub("", message)  # RQ colours its lines on a terminal
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": message,
            "pid": record.process,
        }
        body.update(context())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in body and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        if record.stack_info:
            body["stack"] = record.stack_info
        # Scrub each value before encoding: the patterns read quotes, which JSON escapes.
        clean = {key: redact(value) if isinstance(value, str) else value
                 for key, value in body.items()}
        return redact(json.dumps(clean, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """The human line, with the request or job context in brackets at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, its context, secrets removed."""
        line = super().format(record)
        fields = {k: v for k, v in context().items() if v is not None and k != "method"}
        if fields:
            tail = " ".join(f"{key}={value}" for key, value in fields.items())
            first, sep, rest = line.partition("\n")
            line = f"{first} [{tail}]{sep}{rest}"
        return redact(line)


def make_handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) with the formatter for LOG_FORMAT."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    setattr(handler, HANDLER_MARK, True)
    return handler


def configure(config: Mapping[str, Any]) -> None:
    """Install the root handler for LOG_FORMAT and LOG_LEVEL (idempotent).

    In text format a host that configured logging itself (pytest, a gunicorn log config) is left
    alone, as before; JSON is asked for explicitly, so it replaces nothing but takes over root.
    """
    remember_secrets(config)
    log_format = str(config.get("LOG_FORMAT") or "text")
    level = str(config.get("LOG_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        from outreach.exceptions import ConfigurationError

        raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}; got {level!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, HANDLER_MARK, False)]
    if log_format != "json" and len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)


class JobLogContext:
    """RQ worker mixin: RQ's own lines about a job ("Job OK", its traceback) carry its ids."""

    def execute_job(self, job: Any, queue: Any) -> Any:
        """Run the job (forked or in-process) inside its log context."""
        with job_context(job):
            return super().execute_job(job, queue)  # type: ignore[misc]
