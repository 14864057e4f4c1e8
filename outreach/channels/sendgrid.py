"""SendGrid email adapter: one v3 mail-send request per batch of up to 1000 recipients."""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, SendResult
from outreach.channels.errors import ChannelConfigError

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000
DEFAULT_RETRY_AFTER = 60.0
# Headers SendGrid refuses to take from the request (PROVIDERS.md); it sets them itself.
RESERVED_HEADERS = frozenset(
    "to from subject reply-to cc bcc content-type content-transfer-encoding dkim-signature "
    "received x-sg-id x-sg-eid".split()
)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")


class _RedactAuthorization(logging.Filter):
    """python_http_client logs request headers at DEBUG, Authorization (the API key) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg, record.args = _BEARER.sub(r"\1[redacted]", message), ()
        return True


_sdk_log = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _RedactAuthorization) for f in _sdk_log.filters):
    _sdk_log.addFilter(_RedactAuthorization())


def _address(value: str, name: str = "") -> dict[str, str]:
    """SendGrid's {email, name?} from a bare address or a "Name <address>" string."""
    parsed_name, email = parseaddr(value)
    name = name or parsed_name
    return {"email": email or value, "name": name} if name else {"email": email or value}


def _allowed(headers: dict[str, str]) -> dict[str, str]:
    """Headers SendGrid will accept: reserved names are dropped, values made strings."""
    return {k: str(v) for k, v in headers.items() if k.lower() not in RESERVED_HEADERS}


def _personalization(recipient: EmailRecipient) -> dict[str, Any]:
    """One personalization: the recipient, their merge values, headers and custom args."""
    to: dict[str, str] = {"email": recipient.email}
    if recipient.name:
        to["name"] = recipient.name
    entry: dict[str, Any] = {"to": [to]}
    if recipient.substitutions:
        entry["substitutions"] = {k: str(v) for k, v in recipient.substitutions.items()}
    if headers := _allowed(recipient.headers):
        entry["headers"] = headers
    if recipient.custom_args:
        entry["custom_args"] = {k: str(v) for k, v in recipient.custom_args.items()}
    return entry


def mail_body(batch: EmailBatch) -> dict[str, Any]:
    """The v3 mail-send JSON for a batch, built as plain dicts (the Mail helpers are slow)."""
    body: dict[str, Any] = {
        "personalizations": [_personalization(r) for r in batch.recipients],
        "from": _address(batch.from_email, batch.from_name),
        "subject": batch.subject,
        # SendGrid requires text/plain before text/html and refuses an empty block.
        "content": [{"type": kind, "value": value}
                    for kind, value in (("text/plain", batch.text), ("text/html", batch.html))
                    if value],
    }
    if batch.reply_to:
        body["reply_to"] = _address(batch.reply_to)
    if headers := _allowed(batch.headers):
        body["headers"] = headers
    if batch.categories:
        body["categories"] = list(batch.categories)
    if batch.custom_args:
        body["custom_args"] = {k: str(v) for k, v in batch.custom_args.items()}
    return body


def _error_messages(body: bytes | str | None) -> str:
    """The messages of SendGrid's {"errors": [{"message", ...}]}, joined; raw text otherwise."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(text)["errors"]
        return "; ".join(str(e.get("message")) for e in errors if e.get("message")) or text
    except (ValueError, KeyError, TypeError, AttributeError):
        return text.strip()[:500]


def _reset_delay(headers: Any, now: float | None = None) -> float:
    """Seconds until X-RateLimit-Reset (unix seconds), at least 1; 60 when absent or garbled."""
    raw = headers.get("X-RateLimit-Reset") if headers is not None else None
    try:
        reset = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return max(1.0, reset - (time.time() if now is None else now))


class SendGridEmailChannel:
    """Email channel that sends each batch as one SendGrid v3 mail-send request."""

    name = "sendgrid"

    def __init__(self, api_key: str, host: str = "https://api.sendgrid.com",
                 timeout: float = 30.0) -> None:
        if not api_key:
            raise ChannelConfigError("SENDGRID_API_KEY is empty")
        # The SDK appends /v3 itself: accept a host configured with it or a trailing slash.
        self.host = re.sub(r"(/v3)?/*$", "", host.strip())
        self.timeout = timeout
        self._client = SendGridAPIClient(api_key, host=self.host)
        self._client.client.timeout = timeout  # send() has no timeout of its own

    def __repr__(self) -> str:
        return f"SendGridEmailChannel(host={self.host!r}, timeout={self.timeout!r})"

    def send_batch(self, batch: EmailBatch) -> list[SendResult]:
        """Send one batch in one request; return one result per recipient, in order."""
        count = len(batch.recipients)
        if count > MAX_RECIPIENTS:
            raise ValueError(f"a SendGrid batch holds at most {MAX_RECIPIENTS} recipients, "
                             f"got {count}")
        if not count:
            return []
        result = self._post(mail_body(batch))
        return [result] * count

    def _post(self, body: dict[str, Any]) -> SendResult:
        """POST /v3/mail/send and map the answer to the outcome shared by the whole batch."""
        try:
            response = self._client.client.mail.send.post(request_body=body)
        except HTTPError as exc:
            return self._refused(exc.status_code, exc.body, exc.headers)
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting or writing the request, so SendGrid
            # never got a whole request and cannot have accepted it.
            return SendResult(Outcome.RETRY, error=f"SendGrid unreachable: {exc.reason}")
        except (OSError, http.client.HTTPException) as exc:
            # A timeout or reset while awaiting the answer: the request was sent and may have
            # been accepted, so resending could deliver twice.
            log.warning("SendGrid answer lost after sending: %s", type(exc).__name__)
            return SendResult(Outcome.UNKNOWN, error=f"no answer from SendGrid: {exc!r}")
        if 200 <= response.status_code < 300:
            message_id = response.headers.get("X-Message-Id") if response.headers else None
            return SendResult(Outcome.ACCEPTED, provider_id=message_id)
        return self._refused(response.status_code, response.body, response.headers)

    def _refused(self, status: int, body: bytes | str | None, headers: Any) -> SendResult:
        """Map an error status to an outcome, or raise when the configuration is at fault."""
        message = _error_messages(body)
        if status in (401, 403):
            raise ChannelConfigError(
                f"SendGrid refused SENDGRID_API_KEY (HTTP {status}): {message}")
        if status == 404:
            raise ChannelConfigError(
                f"SendGrid has no mail-send endpoint at {self.host}/v3/mail/send: check "
                "SENDGRID_API_HOST")
        if status == 429:
            return SendResult(Outcome.RETRY, error=message or "rate limited",
                              error_code="429", retry_after=_reset_delay(headers))
        if status >= 500 or status == 408:
            return SendResult(Outcome.RETRY, error=message, error_code=str(status))
        # 400, 413 and the rest: the request itself is wrong and would fail again.
        return SendResult(Outcome.REJECTED, error=message, error_code=str(status))
