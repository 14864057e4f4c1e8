"""Twilio SMS adapter: one Messages API request per text, safe to call from many threads."""

from __future__ import annotations

import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3.exceptions
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from outreach.channels.base import Outcome, SendResult, Sms
from outreach.channels.errors import ChannelConfigError

# Error codes that say the number itself can never receive texts (the suppression reason).
SUPPRESS_CODES = {21610: "stop", 21211: "invalid", 21612: "invalid", 21614: "landline"}
CONFIG_CODES = {20003, 20404}  # bad credentials; no such resource (a wrong TWILIO_API_BASE)


def _seconds(value: str | None) -> float | None:
    """A Retry-After value (seconds or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _never_sent(exc: BaseException) -> bool:
    """True when the connection itself failed (refused, DNS), so no request reached Twilio."""
    stack: list[Any] = [exc]
    seen: set[int] = set()
    while stack:
        err = stack.pop()
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return True
        stack.extend([err.__cause__, err.__context__, getattr(err, "reason", None), *err.args])
    return False


class TwilioSmsChannel:
    """SMS channel that creates each message through Twilio's Messages API."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str,
                 api_base: str = "https://api.twilio.com",
                 messaging_service_sid: str | None = None, from_number: str | None = None,
                 timeout: float = 30.0) -> None:
        if not account_sid or not auth_token:
            raise ChannelConfigError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.api_base = api_base.strip().rstrip("/")
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.timeout = timeout
        # A requests.Session is not documented as thread-safe: one SDK client per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"TwilioSmsChannel(account_sid={self.account_sid!r}, api_base={self.api_base!r})"

    def _client(self) -> Client:
        """This thread's SDK client, built on first use."""
        client = getattr(self._local, "client", None)
        if client is None:
            # The response hook keeps the last answer's headers: TwilioRestException drops
            # Retry-After, which a 429 needs.
            http = TwilioHttpClient(timeout=self.timeout,
                                    request_hooks={"response": [self._remember_headers]})
            client = Client(self.account_sid, self._auth_token, http_client=http)
            # TWILIO_EDGE/TWILIO_REGION in the environment would rewrite the host name of a
            # custom base URL; this adapter always talks to api_base as given.
            client.edge = client.region = None
            client.api.base_url = self.api_base
            self._local.client = client
        return client

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests response hook: keep the headers for this thread."""
        self._local.headers = response.headers

    def _params(self, sms: Sms) -> dict[str, Any]:
        """messages.create arguments: a per-message sender overrides the configured one."""
        params: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if sms.messaging_service_sid or (self.messaging_service_sid and not sms.from_number):
            # Twilio refuses From together with MessagingServiceSid (21606): the pool wins.
            params["messaging_service_sid"] = sms.messaging_service_sid or \
                self.messaging_service_sid
        elif sms.from_number or self.from_number:
            params["from_"] = sms.from_number or self.from_number
        else:
            raise ChannelConfigError(
                "no SMS sender: set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM")
        if sms.status_callback:
            params["status_callback"] = sms.status_callback
        return params

    def send(self, sms: Sms) -> SendResult:
        """Create one message; map Twilio's answer to an outcome."""
        params = self._params(sms)
        client = self._client()
        self._local.headers = None
        try:
            message = client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._refused(exc)
        except requests.exceptions.ConnectTimeout as exc:
            return SendResult(Outcome.RETRY, error=f"Twilio unreachable: {exc}")
        except requests.exceptions.ConnectionError as exc:
            if _never_sent(exc):
                return SendResult(Outcome.RETRY, error=f"Twilio unreachable: {exc}")
            # Reset or dropped after the request went out: Twilio may have queued the text.
            return SendResult(Outcome.UNKNOWN, error=f"no answer from Twilio: {exc}")
        except requests.exceptions.Timeout as exc:
            return SendResult(Outcome.UNKNOWN, error=f"no answer from Twilio: {exc}")
        segments = int(message.num_segments) if message.num_segments else None
        return SendResult(Outcome.ACCEPTED, provider_id=message.sid, segments=segments)

    def _refused(self, exc: TwilioRestException | TwilioServiceException) -> SendResult:
        """Map the SDK's exception (and the Retry-After this thread last received)."""
        text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
        headers = getattr(self._local, "headers", None) or {}
        status = int(exc.status or 0)
        code = int(exc.code) if exc.code is not None else status
        return error_result(status, code, text, headers.get("Retry-After"))


def error_result(status: int, code: int, message: str,
                 retry_after: str | None = None) -> SendResult:
    """Map a Twilio error (HTTP status, Twilio code) to an outcome; raise for bad settings."""
    # The SDK prefixes "Unable to create record: "; keep Twilio's own words.
    if message.startswith("Unable to ") and ": " in message:
        message = message.split(": ", 1)[1]
    if status in (401, 404) or code in CONFIG_CODES:
        raise ChannelConfigError(
            f"Twilio refused the request (HTTP {status}, code {code}): check "
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_API_BASE")
    if status == 429 or code == 20429:
        delay = _seconds(retry_after)
        return SendResult(Outcome.RETRY, error=message, error_code=str(code),
                          retry_after=1.0 if delay is None else delay)
    if status >= 500:
        return SendResult(Outcome.RETRY, error=message, error_code=str(code),
                          retry_after=_seconds(retry_after))
    return SendResult(Outcome.REJECTED, error=message, error_code=str(code),
                      suppress=SUPPRESS_CODES.get(code))
