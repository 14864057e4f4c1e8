"""SendGrid v3 mail-send emulator: validates like the real API, records recipients, signs events."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from outreach.emulators.server import Emulator, Response, json_response, page, post_webhook

MAIL_SEND_PATH = "/v3/mail/send"
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."
RESERVED_HEADERS = frozenset(
    "to from subject reply-to cc bcc content-type content-transfer-encoding dkim-signature "
    "received x-sg-id x-sg-eid".split()
)
EVENT_KINDS = tuple(
    "processed delivered open click bounce dropped deferred spamreport unsubscribe "
    "group_unsubscribe group_resubscribe".split()
)
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINK = re.compile(r"""href=["'](https?://[^"']+)["']""")
PrivateKey = ec.EllipticCurvePrivateKey | bytes | str | None
_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"


def new_id() -> str:
    """A random 22-character URL-safe id, like SendGrid's X-Message-Id and sg_event_id."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _address(value: Any) -> bool:
    return isinstance(value, dict) and bool(_EMAIL.match(str(value.get("email") or "")))


class _Checker:
    """Collects SendGrid-style error objects while one mail-send body is validated."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.errors: list[dict[str, Any]] = []

    def err(self, message: str, field: str | None = None, anchor: str | None = None) -> None:
        """Record one error; help links to the field's section of SendGrid's error docs."""
        help_url = HELP + (anchor or field.split(".")[0]) if field else None
        self.errors.append({"message": message, "field": field, "help": help_url})

    def headers(self, headers: Any, field: str) -> None:
        """Headers are string pairs and never one of the reserved names."""
        if headers is None:
            return
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            return self.err("The headers field must be an object of string values.", field)
        for name in headers:
            if name.lower() in RESERVED_HEADERS:
                self.err(f"The '{name}' header is reserved and cannot be set.", field, "headers")

    def strings(self, values: Any, field: str) -> None:
        """custom_args: string values, under 10,000 bytes in all."""
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            self.err("The custom_args values must be strings.", field, "custom_args")
        elif values is not None and len(json.dumps(values).encode()) > 10_000:
            self.err("The custom_args must total less than 10000 bytes.", field, "custom_args")

    def send_at(self, send_at: Any, field: str) -> None:
        """send_at: a unix timestamp at most 72 hours ahead."""
        if send_at is not None and (type(send_at) is not int or send_at < 0):
            self.err("The send_at parameter must be a unix timestamp (integer).", field, "send_at")
        elif send_at is not None and send_at > self.now + 72 * 3600:
            self.err("The send_at parameter cannot be more than 72 hours ahead.", field, "send_at")

    def personalization(self, p: Any, i: int) -> tuple[int, bool, bool, bool]:
        """Validate one personalization; return (recipients, has_subject, uses_subs, uses_dtd)."""
        field = f"personalizations.{i}"
        if not isinstance(p, dict):
            self.err("Each personalization must be an object.", field)
            return 0, True, False, False
        seen: set[str] = set()
        total = 0
        for kind in ("to", "cc", "bcc"):
            addrs = p.get(kind)
            if (addrs is None and kind != "to") or (isinstance(addrs, list) and addrs):
                for j, addr in enumerate(addrs or []):
                    email = str(addr.get("email") or "").lower() if isinstance(addr, dict) else ""
                    if not _address(addr):
                        self.err("Does not contain a valid address.", f"{field}.{kind}.{j}.email")
                    elif email in seen:
                        self.err("Each email address in the personalization block should be "
                                 f"unique between to, cc, and bcc. We found the first duplicate "
                                 f"instance of [{email}] in the {field}.{kind} field.", field)
                    seen.add(email)
                total += len(addrs or [])
            else:
                self.err(f"The {kind} array is required for all personalization objects, and "
                         "must have at least one email object with a valid email address."
                         if kind == "to" else f"The {kind} field must be an array of emails.",
                         f"{field}.{kind}")
        self.headers(p.get("headers"), f"{field}.headers")
        subs = p.get("substitutions")
        if subs is not None and (
            not isinstance(subs, dict) or not all(isinstance(v, str) for v in subs.values())
        ):
            self.err("Substitutions must be string values.", f"{field}.substitutions")
        elif subs is not None and sum(len(k.encode()) + len(v.encode())
                                      for k, v in subs.items()) > 10_000:
            self.err("Substitutions must total less than 10000 bytes.", f"{field}.substitutions")
        self.strings(p.get("custom_args"), f"{field}.custom_args")
        self.send_at(p.get("send_at"), f"{field}.send_at")
        return total, _text(p.get("subject")), subs is not None, "dynamic_template_data" in p

    def content(self, content: Any) -> None:
        """content: non-empty {type, value} blocks, text/plain then text/html then others."""
        if not isinstance(content, list) or not content:
            return self.err("Unless a valid template_id is provided, the content parameter is "
                            "required. There must be at least one defined content block.",
                            "content")
        ranks = []
        for j, block in enumerate(content):
            block = block if isinstance(block, dict) else {}
            if not _text(block.get("type")):
                self.err("The content type must be a non-empty string.", f"content.{j}.type")
            if not _text(block.get("value")):
                self.err("The content value must be a string at least one character in length.",
                         f"content.{j}.value")
            ranks.append({"text/plain": 0, "text/html": 1}.get(block.get("type"), 2))
        if ranks != sorted(ranks):
            self.err("If present, text/plain and text/html may only be provided in that order, "
                     "followed by any other content.", "content")


def validate_mail_send(mail: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Check a mail-send body as SendGrid does; return its error objects (empty when valid)."""
    check = _Checker(time.time() if now is None else now)
    if not isinstance(mail, dict):
        check.err("Bad Request")
        return check.errors
    pers = mail.get("personalizations")
    if not isinstance(pers, list) or not pers or len(pers) > 1000:
        check.err("The personalizations field is required and must have at least one "
                  "personalization." if not pers or not isinstance(pers, list) else
                  "The personalizations field must have at most 1000 items.", "personalizations")
        pers = []
    templated = _text(mail.get("template_id"))
    results = [check.personalization(p, i) for i, p in enumerate(pers)]
    if sum(r[0] for r in results) > 1000:
        check.err("The total number of recipients (to, cc and bcc) must be 1000 or fewer.",
                  "personalizations")
    if pers and not templated and not _text(mail.get("subject")) and not all(
        r[1] for r in results
    ):
        check.err("The subject is required. You can get around this requirement if you use a "
                  "template with a subject defined or if every personalization has a subject "
                  "defined.", "subject")
    if not _address(mail.get("from")):
        check.err("The from object must be provided for every email send. It is an object that "
                  "requires the email parameter, but may also contain a name parameter.",
                  "from.email", "from")
    if mail.get("reply_to") is not None and not _address(mail["reply_to"]):
        check.err("Does not contain a valid address.", "reply_to.email", "reply_to")
    if mail.get("content") is not None or not templated:
        check.content(mail.get("content"))
    check.headers(mail.get("headers"), "headers")
    check.strings(mail.get("custom_args"), "custom_args")
    categories = mail.get("categories")
    if categories is not None and not (
        isinstance(categories, list)
        and all(isinstance(c, str) and 0 < len(c) <= 255 for c in categories)
    ):
        check.err("Categories must be an array of non-empty strings.", "categories")
    elif categories is not None and len(categories) > 10:
        check.err("Too many categories. An email may have at most 10 categories.", "categories")
    if any(r[2] for r in results) and any(r[3] for r in results):
        check.err("Substitutions and dynamic template data cannot be used together.",
                  "personalizations")
    check.send_at(mail.get("send_at"), "send_at")
    return check.errors


def _substitute(text: str, subs: Mapping[str, str]) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


def _flatten(record: AcceptedRequest) -> list[dict[str, Any]]:
    """One delivered-recipient record per to/cc/bcc address of an accepted request."""
    mail, mid = record["body"], record["message_id"]
    top_args, top_headers = mail.get("custom_args") or {}, mail.get("headers") or {}
    out: list[dict[str, Any]] = []
    for i, p in enumerate(mail["personalizations"]):
        subs = p.get("substitutions") or {}
        subject = _substitute(p.get("subject") or mail.get("subject") or "", subs)
        content = {c["type"]: _substitute(c["value"], subs) for c in mail.get("content") or []}
        common = {
            "subject": subject, "content": content, "personalization": i, "message_id": mid,
            "headers": {**top_headers, **(p.get("headers") or {})},
            "custom_args": {**top_args, **(p.get("custom_args") or {})},
            "categories": list(mail.get("categories") or []), "from": mail.get("from"),
            "send_at": p.get("send_at", mail.get("send_at")), "asm": mail.get("asm"),
        }
        for kind in ("to", "cc", "bcc"):
            for addr in p.get(kind) or []:
                sg_id = f"{mid}.recv{len(out)}.filter0001.0"
                out.append({"email": addr["email"], "name": addr.get("name"), "kind": kind,
                            "sg_message_id": sg_id, **common})
    return out


class AcceptedRequest:
    """One accepted mail-send request: `req["message_id"]`, `req["body"]`, `req["received_at"]`.

    The body is kept as the bytes that arrived and parsed when read. Parsed, a million
    recipients are tens of millions of dicts and strings, which the cyclic garbage collector
    walked at every full collection while a big blast was arriving (about a quarter of the
    emulator's CPU, on the cores the benchmarks share), in five times the memory.
    """

    __slots__ = ("message_id", "raw", "received_at")

    def __init__(self, message_id: str, raw: bytes, received_at: float) -> None:
        self.message_id, self.raw, self.received_at = message_id, raw, received_at

    def __getitem__(self, key: str) -> Any:
        if key == "body":
            return json.loads(self.raw)
        if key in self.__slots__:
            return getattr(self, key)
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "body": self["body"],
                "received_at": self.received_at}


class SendGridEmulator(Emulator):
    """Emulates SendGrid's POST /v3/mail/send and its signed Event Webhook."""

    name = "sendgrid"

    def __init__(self, api_key: str = "SG.emulator", host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = 30 * 1024 * 1024, private_key: PrivateKey = None,
                 webhook_url: str | None = None) -> None:
        super().__init__(host, port, max_body_bytes)
        self.api_key, self.webhook_url = api_key, webhook_url
        if isinstance(private_key, str | bytes):
            pem = private_key.encode() if isinstance(private_key, str) else private_key
            private_key = serialization.load_pem_private_key(pem, password=None)  # type: ignore
        self.private_key: ec.EllipticCurvePrivateKey = private_key or ec.generate_private_key(
            ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode()
        self.accepted_requests: list[AcceptedRequest] = []
        self._recipients: list[dict[str, Any]] = []
        self._flattened = 0  # accepted requests already expanded into _recipients
        self._counts.update(accepted=0, rejected=0, recipients=0)

    @property
    def recipients(self) -> list[dict[str, Any]]:
        """Delivered recipients (one per to/cc/bcc address), substitutions applied; a snapshot."""
        with self._lock:  # expanded lazily so that sending stays cheap
            while self._flattened < len(self.accepted_requests):
                self._recipients.extend(_flatten(self.accepted_requests[self._flattened]))
                self._flattened += 1
            return list(self._recipients)

    def reset(self) -> None:
        """Forget accepted requests, recipients and timestamps; clear faults."""
        super().reset()
        with self._lock:
            self.accepted_requests.clear()
            self._recipients.clear()
            self._flattened = 0

    def error_response(self, status: int, message: str, field: str | None = None) -> Response:
        """SendGrid's error body: {"errors": [{"message", "field", "help"}]}."""
        return json_response(status, {"errors": [{"message": message, "field": field,
                                                  "help": None}]})

    def rate_limit_headers(self) -> dict[str, str]:
        """X-RateLimit-* headers of a 429: nothing left until the next second."""
        return {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 1)}

    def handle_api(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Any:
        """Authenticate, validate and record one mail-send request."""
        if path.rstrip("/") != MAIL_SEND_PATH:
            return self.error_response(404, "not found")
        if method != "POST":
            return self.error_response(405, "method not allowed")
        auth = headers.get("Authorization") or ""
        if auth != f"Bearer {self.api_key}":
            self.count("rejected")
            return self.error_response(401, "The provided authorization grant is invalid, "
                                       "expired, or revoked" if auth else "authorization required")
        try:
            mail = json.loads(body)
        except ValueError:
            mail = None
        errors = validate_mail_send(mail)
        if errors:
            self.count("rejected")
            return json_response(400, {"errors": errors})
        if ((mail.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return Response(200)  # sandbox mode: validated, never delivered
        mid = new_id()
        pers = mail["personalizations"]
        total = sum(len(p.get(k) or []) for p in pers for k in ("to", "cc", "bcc"))
        with self._lock:
            self.accepted_requests.append(AcceptedRequest(mid, body, time.time()))
            self._counts["accepted"] += 1
            self._counts["recipients"] += total
        return Response(202, b"", {"X-Message-Id": mid})

    # event webhook
    def sign(self, body: bytes, timestamp: str | None = None) -> tuple[str, str]:
        """ECDSA P-256/SHA-256 signature (base64 DER) of timestamp + body, and the timestamp."""
        timestamp = timestamp or str(int(time.time()))
        signature = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode(), timestamp

    def build_events(
        self, kind: str, recipients: Iterable[Mapping[str, Any] | str] | None = None,
        **overrides: Any,
    ) -> list[dict[str, Any]]:
        """Realistic events of one kind for accepted recipients (all by default)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        known = self.recipients
        if recipients is None:
            targets: list[Mapping[str, Any]] = known
        else:
            by_email = {r["email"].lower(): r for r in reversed(known)}
            targets = [r if isinstance(r, Mapping) else by_email.get(r.lower(), {"email": r})
                       for r in recipients]
        now = int(time.time())
        return [self._event(kind, r, now, overrides) for r in targets]

    def _event(self, kind: str, rec: Mapping[str, Any], now: int, overrides: dict) -> dict:
        event: dict[str, Any] = {**rec.get("custom_args", {}), "email": rec["email"],
                                 "timestamp": now, "event": kind, "sg_event_id": new_id(),
                                 "category": list(rec.get("categories") or [])}
        if rec.get("sg_message_id"):
            event["sg_message_id"] = rec["sg_message_id"]
            event["smtp-id"] = f"<{rec['message_id']}@ismtpd0001p1.sendgrid.net>"
        seen = {"useragent": _UA, "ip": "203.0.113.7"}
        html = (rec.get("content") or {}).get("text/html", "")
        links = _LINK.findall(html)
        asm_group = (rec.get("asm") or {}).get("group_id", 1)
        blocked = overrides.get("type") == "blocked"
        extra: dict[str, Any] = {
            "delivered": {"response": "250 2.0.0 OK", "ip": "149.72.0.1", "tls": 1},
            "open": {**seen, "sg_machine_open": False},
            "click": {**seen, "url": links[0] if links else "https://example.com/",
                      "url_offset": {"index": 0, "type": "html"}},
            "bounce": {"type": "blocked", "status": "5.7.1", "bounce_classification": "Reputation",
                       "reason": "550 5.7.1 Message rejected due to sender reputation"} if blocked
            else {"type": "bounce", "status": "5.1.1", "bounce_classification": "Invalid Address",
                  "reason": "550 5.1.1 The email account that you tried to reach does not exist."},
            "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
            "deferred": {"response": "421 4.7.0 Try again later", "attempt": "1"},
            "group_unsubscribe": {**seen, "asm_group_id": asm_group},
            "group_resubscribe": {**seen, "asm_group_id": asm_group},
        }.get(kind, {})
        event.update(extra)
        event.update(overrides)
        return event

    def post_events(self, url: str | None, events: list[dict[str, Any]]) -> int:
        """POST events as one signed JSON batch to url (default webhook_url); return the status."""
        target = url or self.webhook_url
        if not target:
            raise ValueError("no webhook url given")
        body = json.dumps(events).encode()
        signature, timestamp = self.sign(body)
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API",
                   SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: timestamp}
        return post_webhook(target, body, headers)[0]

    # control endpoints
    def state(self) -> dict[str, Any]:
        """Counters (requests, accepted, rejected, recipients, faulted) and faults."""
        return {**super().state(), "public_key": self.public_key_b64}

    def handle_control(self, method: str, name: str, query: dict, payload: dict) -> Response | None:
        """GET recipients, GET requests, POST webhooks."""
        if (method, name) == ("GET", "recipients"):
            return json_response(200, page(self.recipients, query, "recipients"))
        if (method, name) == ("GET", "requests"):
            with self._lock:
                accepted = list(self.accepted_requests)
            listed = page(accepted, query, "requests")  # parse only the page's bodies
            listed["requests"] = [r.as_dict() for r in listed["requests"]]
            return json_response(200, listed)
        if (method, name) == ("POST", "webhooks"):
            return self._control_webhooks(payload)
        return None

    def _control_webhooks(self, payload: dict[str, Any]) -> Response:
        offset, limit = int(payload.get("offset") or 0), payload.get("limit")
        targets = self.recipients[offset:]
        targets = targets[: int(limit)] if limit is not None else targets
        events = self.build_events(payload.get("event", "delivered"), targets,
                                   **(payload.get("overrides") or {}))
        size = max(1, int(payload.get("batch_size") or 1000))
        try:
            statuses = [self.post_events(payload.get("url"), events[i : i + size])
                        for i in range(0, len(events), size)]
        except OSError as exc:
            return json_response(502, {"error": f"webhook post failed: {exc}"})
        return json_response(200, {"count": len(events), "statuses": statuses})
