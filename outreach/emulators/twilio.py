"""Twilio Messages API emulator: validates like the real API, records messages, signs webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from outreach.emulators.server import Emulator, Response, json_response, page, post_webhook

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each costs an escape character: two septets
KEYWORDS = {
    **dict.fromkeys("STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT".split(), "STOP"),
    **dict.fromkeys("START YES UNSTOP".split(), "START"),
    **dict.fromkeys("HELP INFO".split(), "HELP"),
}
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages(?:/(\w+))?\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SHORT_CODE = re.compile(r"^\d{5,6}$")
_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
_REALM = 'Basic realm="Twilio API"'
_INTERNAL = ("status_callback", "media_url", "encoding", "created_at")


def count_segments(body: str) -> tuple[str, int]:
    """Encoding ("GSM-7" or "UCS-2") and billed segment count of an SMS body."""
    if all(c in GSM7 or c in GSM7_EXTENSION for c in body):
        units, single, per_segment = [2 if c in GSM7_EXTENSION else 1 for c in body], 160, 153
        encoding = "GSM-7"
    else:  # UTF-16 code units: characters outside the BMP take two
        units, single, per_segment = [2 if ord(c) > 0xFFFF else 1 for c in body], 70, 67
        encoding = "UCS-2"
    if sum(units) <= single:
        return encoding, 1
    segments, used = 1, 0
    for size in units:  # an escape pair or surrogate pair is never split across segments
        if used + size > per_segment:
            segments, used = segments + 1, 0
        used += size
    return encoding, segments


def keyword(body: str) -> str | None:
    """STOP, START or HELP when an inbound body is one of Twilio's keywords, else None."""
    return KEYWORDS.get(body.strip(string.whitespace + string.punctuation).upper())


def _number(value: str) -> str:
    return value.split(":", 1)[1] if value.startswith(("whatsapp:", "sms:")) else value


class TwilioEmulator(Emulator):
    """Emulates Twilio's Messages API and its signed status and inbound webhooks."""

    name = "twilio"

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, *,
                 api_keys: Mapping[str, str] | None = None, stopped_numbers: Iterable[str] = (),
                 from_numbers: Iterable[str] | None = None,
                 messaging_service_sid: str | None = None, service_number: str = "+15005550006",
                 status_callback_url: str | None = None, inbound_url: str | None = None,
                 max_body_bytes: int = 1 << 20) -> None:
        super().__init__(host, port, max_body_bytes)
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.api_keys = dict(api_keys or {})  # API key sid -> secret, also accepted as auth
        self._initial_stopped = frozenset(stopped_numbers)
        self.stopped_numbers: set[str] = set(self._initial_stopped)
        self.from_numbers = None if from_numbers is None else set(from_numbers)
        self.messaging_service_sid = messaging_service_sid or "MG" + secrets.token_hex(16)
        self.service_number = service_number  # the pool's sender, reported in callbacks
        self.status_callback_url, self.inbound_url = status_callback_url, inbound_url
        self.messages: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._counts.update(accepted=0, rejected=0, callbacks=0, inbound=0)

    def reset(self) -> None:
        """Forget messages and timestamps, restore the initial stopped numbers, clear faults."""
        super().reset()
        with self._lock:
            self.messages.clear()
            self._by_sid.clear()
            self.stopped_numbers.clear()
            self.stopped_numbers.update(self._initial_stopped)

    def error_response(self, status: int, message: str, code: int | None = None) -> Response:
        """Twilio's error body: {"code", "message", "more_info", "status"}."""
        code = code or 20000 + status
        return json_response(status, {"code": code, "message": message, "status": status,
                                       "more_info": f"https://www.twilio.com/docs/errors/{code}"})

    def rate_limit_headers(self) -> dict[str, str]:
        """Twilio asks throttled clients to retry after a second."""
        return {"Retry-After": "1"}

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        expected = self.auth_token if user == self.account_sid else self.api_keys.get(user)
        return expected is not None and hmac.compare_digest(secret.encode(), expected.encode())

    def handle_api(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Any:
        """Authenticate, then create (POST) or fetch (GET .../Messages/SID.json) a message."""
        match = _MESSAGES.match(path)
        if not match:
            return self.error_response(404, f"The requested resource {path} was not found")
        if not self._authorized(headers.get("Authorization")) or match[1] != self.account_sid:
            self.count("rejected")
            resp = self.error_response(401, "Authenticate", 20003)
            return resp._replace(headers={**resp.headers, "WWW-Authenticate": _REALM})
        if match[2]:
            with self._lock:
                record = self._by_sid.get(match[2])
            if method != "GET" or record is None:
                return self.error_response(404, f"The requested resource {path} was not found")
            return json_response(200, self._public(record))
        if method != "POST":
            return self.error_response(405, "Method not allowed")
        params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return self._create({k: v[-1] for k, v in params.items()}, params.get("MediaUrl", []))

    def _create(self, form: dict[str, str], media: list[str]) -> Response:
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body, callback = form.get("Body"), form.get("StatusCallback")
        validity, scheduled = form.get("ValidityPeriod"), form.get("ScheduleType") == "fixed"
        rules = [  # (broken?, code, message) in the order Twilio reports them
            (lambda: not to, 21604, "A 'To' phone number is required."),
            (lambda: not _E164.match(_number(to)), 21211,
             f"The 'To' number {to} is not a valid phone number."),
            (lambda: not sender and not service, 21603, "A 'From' phone number is required."),
            (lambda: sender and service, 21606,
             "Use either 'From' or 'MessagingServiceSid', not both."),
            (lambda: sender and not (_E164.match(_number(sender)) or _SENDER_ID.match(sender)
                                     or _SHORT_CODE.match(sender)), 21212,
             f"The 'From' number {sender} is not a valid phone number, shortcode, or "
             "alphanumeric sender ID."),
            (lambda: sender and self.from_numbers is not None and sender not in self.from_numbers,
             21606, f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
             "number or short code for your account."),
            (lambda: service and not _SERVICE.match(service), 21701,
             f"The Messaging Service Sid {service} is invalid."),
            (lambda: not body and not media, 21602, "Message body is required."),
            (lambda: body and len(body) > 1600, 21617,
             "The concatenated message body exceeds the 1600 character limit."),
            (lambda: validity is not None and not (
                validity.isdigit() and 1 <= int(validity) <= 36000), 21624,
             "Invalid validity period value"),
            (lambda: callback and not callback.startswith(("http://", "https://")), 21609,
             f"The StatusCallback URL {callback} is not a valid URL."),
            (lambda: scheduled and not service, 35118,
             "MessagingServiceSid is required to schedule a message."),
            (lambda: scheduled and not _schedulable(form.get("SendAt")), 35114,
             "Scheduling does not support this timestamp."),
            (lambda: _number(to) in self.stopped_numbers, 21610,
             "Attempt to send to unsubscribed recipient"),
        ]
        for broken, code, message in rules:
            if broken():
                self.count("rejected")
                return self.error_response(400, message, code)
        sid, now = "SM" + uuid.uuid4().hex, format_datetime(datetime.now(UTC))
        encoding, segments = count_segments(body or "")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        record = {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": body or "",
            "date_created": now, "date_updated": now, "date_sent": None,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender, "messaging_service_sid": service, "num_media": str(len(media)),
            "num_segments": str(segments), "price": None, "price_unit": "USD", "sid": sid,
            "status": "scheduled" if scheduled else "accepted" if service else "queued",
            "subresource_uris": {"media": uri[:-5] + "/Media.json",
                                 "feedback": uri[:-5] + "/Feedback.json"},
            "to": to, "uri": uri, "status_callback": callback, "media_url": media,
            "encoding": encoding, "created_at": time.time(),
        }
        with self._lock:
            self.messages.append(record)
            self._by_sid[sid] = record
            self._counts["accepted"] += 1
        return json_response(201, self._public(record))

    @staticmethod
    def _public(record: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in _INTERNAL}

    # webhooks
    def signature(self, url: str, params: Mapping[str, str | list[str]]) -> str:
        """X-Twilio-Signature: base64 HMAC-SHA1 of url + sorted keys and values, keyed by token."""
        data = url + "".join(
            key + value
            for key in sorted(params)
            for value in sorted({params[key]} if isinstance(params[key], str) else set(params[key]))
        )
        digest = hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _post_form(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                   "User-Agent": "TwilioProxy/1.1", SIGNATURE_HEADER: self.signature(url, params),
                   "I-Twilio-Idempotency-Token": str(uuid.uuid4())}
        return post_webhook(url, urlencode(params).encode(), headers)

    def send_status_callback(self, url: str, sid: str, status: str,
                             error_code: int | str | None = None) -> int:
        """POST a signed status callback for message sid to url; return the HTTP status."""
        with self._lock:
            record = dict(self._by_sid.get(sid) or {})
        params = {"MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
                  "AccountSid": self.account_sid, "ApiVersion": API_VERSION,
                  "From": record.get("from") or self.service_number, "To": record.get("to") or ""}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if record.get("messaging_service_sid"):
            params["MessagingServiceSid"] = record["messaging_service_sid"]
        self.count("callbacks")
        return self._post_form(url, params)[0]

    def deliver(self, sid: str, status: str = "delivered",
                error_code: int | str | None = None) -> int | None:
        """Move message sid to status and post its StatusCallback (None when it has none)."""
        now = format_datetime(datetime.now(UTC))
        with self._lock:
            record = self._by_sid[sid]
            code = None if error_code is None else int(error_code)
            record.update(status=status, date_updated=now, error_code=code, error_message=None)
            if status in ("sent", "delivered", "read") and not record["date_sent"]:
                record["date_sent"] = now
            url = record["status_callback"] or self.status_callback_url
        return self.send_status_callback(url, sid, status, error_code) if url else None

    def send_inbound(self, url: str | None, from_: str, to: str, body: str,
                     opt_out_type: str | None = None,
                     messaging_service_sid: str | None = None) -> tuple[int, str]:
        """POST a signed inbound SMS to url; STOP/START keywords update stopped_numbers."""
        sid = "SM" + uuid.uuid4().hex
        params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
                  "AccountSid": self.account_sid, "From": from_, "To": to, "Body": body,
                  "MessagingServiceSid": messaging_service_sid or self.messaging_service_sid,
                  "NumMedia": "0", "NumSegments": str(count_segments(body)[1]),
                  "ApiVersion": API_VERSION}
        if opt_out_type:
            params["OptOutType"] = opt_out_type
        kind = (opt_out_type or keyword(body) or "").upper()
        with self._lock:
            if kind == "STOP":
                self.stopped_numbers.add(from_)
            elif kind == "START":
                self.stopped_numbers.discard(from_)
            self._counts["inbound"] += 1
        target = url or self.inbound_url
        if not target:
            raise ValueError("no inbound webhook url given")
        return self._post_form(target, params)

    # control endpoints
    def state(self) -> dict[str, Any]:
        """Counters (requests, accepted, rejected, faulted, callbacks, inbound) and faults."""
        with self._lock:
            stopped = sorted(self.stopped_numbers)
        return {**super().state(), "account_sid": self.account_sid, "stopped_numbers": stopped}

    def handle_control(self, method: str, name: str, query: dict, payload: dict) -> Response | None:
        """GET messages, POST stop-number, POST deliver, POST inbound."""
        if (method, name) == ("GET", "messages"):
            with self._lock:
                messages = [self._public(m) for m in self.messages]
            return json_response(200, page(messages, query, "messages"))
        if (method, name) == ("POST", "stop-number"):
            with self._lock:
                if payload.get("stopped", True):
                    self.stopped_numbers.add(payload["phone"])
                else:
                    self.stopped_numbers.discard(payload["phone"])
            return json_response(200, self.state())
        if (method, name) == ("POST", "deliver"):
            with self._lock:
                sids = [payload["sid"]] if payload.get("sid") else list(self._by_sid)
            sids = sids[: int(payload["limit"])] if payload.get("limit") is not None else sids
            statuses = [self.deliver(sid, payload.get("status", "delivered"),
                                     payload.get("error_code")) for sid in sids]
            return json_response(200, {"count": len(sids), "statuses": statuses})
        if (method, name) == ("POST", "inbound"):
            status, text = self.send_inbound(payload.get("url"), payload["from"], payload["to"],
                                             payload.get("body", ""), payload.get("opt_out_type"))
            return json_response(200, {"status": status, "response": text})
        return None


def _schedulable(send_at: str | None) -> bool:
    """SendAt is an ISO 8601 time 5 minutes to 35 days ahead."""
    try:
        when = datetime.fromisoformat((send_at or "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return time.time() + 300 <= when <= time.time() + 35 * 86400
