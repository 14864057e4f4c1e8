"""The SendGrid emulator, driven by the official SendGrid SDK over real HTTP."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from outreach.emulators.sendgrid import EVENT_KINDS, SendGridEmulator

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

KEY = "SG.test-key"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def emu() -> Iterator[SendGridEmulator]:
    """A running emulator on an ephemeral port."""
    with SendGridEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def client(emu: SendGridEmulator) -> SendGridAPIClient:
    """The official SDK pointed at the emulator."""
    sg = SendGridAPIClient(KEY, host=emu.url)
    sg.client.timeout = 10
    return sg


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local webhook endpoint that records (headers, raw body) of each POST."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append((dict(self.headers), self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/sendgrid", received
    server.shutdown()
    server.server_close()


def mail(n: int = 3, **top: Any) -> dict[str, Any]:
    """A mail-send body with n personalised recipients."""
    return {
        "personalizations": [
            {"to": [{"email": f"user{i}@example.org", "name": f"User {i}"}],
             "substitutions": {"-first-": f"Ann{i}", "-token-": f"tok{i}"},
             "headers": {"List-Unsubscribe": f"<https://outreach.test/u/tok{i}>"},
             "custom_args": {"contact_id": str(i)}}
            for i in range(n)
        ],
        "from": {"email": "news@outreach.test", "name": "Outreach"},
        "subject": "Hello -first-",
        "content": [
            {"type": "text/plain", "value": "Hi -first-, see https://o.test/c/-token-"},
            {"type": "text/html", "value": '<a href="https://o.test/c/-token-">Hi -first-</a>'},
        ],
        "custom_args": {"blast_id": "42", "contact_id": "top"},
        "categories": ["blast-42"],
        **top,
    }


def control(emu: SendGridEmulator, method: str, name: str, payload: Any = None) -> Any:
    """Call an /_emulator/ endpoint over HTTP, as another process would."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{emu.url}/_emulator/{name}", data=data, method=method)
    with _LOCAL.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def errors_of(exc: pytest.ExceptionInfo) -> list[dict[str, Any]]:
    """The SendGrid error objects carried by an SDK exception."""
    return json.loads(exc.value.body)["errors"]


def test_send_records_each_recipient_with_substitutions(emu, client) -> None:
    response = client.send(mail(3))
    message_id = response.headers["X-Message-Id"]
    assert response.status_code == 202 and response.body == b""
    assert len(message_id) == 22
    assert emu.accepted_requests[0]["message_id"] == message_id
    recipients = emu.recipients
    assert [r["email"] for r in recipients] == [f"user{i}@example.org" for i in range(3)]
    second = recipients[1]
    assert second["subject"] == "Hello Ann1"
    assert second["content"]["text/plain"] == "Hi Ann1, see https://o.test/c/tok1"
    assert second["content"]["text/html"] == '<a href="https://o.test/c/tok1">Hi Ann1</a>'
    assert second["headers"]["List-Unsubscribe"] == "<https://outreach.test/u/tok1>"
    assert second["custom_args"] == {"blast_id": "42", "contact_id": "1"}
    assert all(r["sg_message_id"].startswith(message_id + ".") for r in recipients)
    assert len({r["sg_message_id"] for r in recipients}) == 3
    assert emu.state()["recipients"] == 3


def test_wrong_or_missing_key_is_unauthorized(emu) -> None:
    for key in ("SG.wrong", ""):
        with pytest.raises(UnauthorizedError) as exc:
            SendGridAPIClient(key, host=emu.url).send(mail(1))
        assert exc.value.status_code == 401 and errors_of(exc)[0]["message"]
    assert emu.accepted_requests == []


def test_more_than_1000_personalizations_is_a_bad_request(emu, client) -> None:
    with pytest.raises(BadRequestsError) as exc:
        client.send(mail(1001))
    assert errors_of(exc)[0]["field"] == "personalizations"
    assert client.send(mail(1000)).status_code == 202
    assert len(emu.recipients) == 1000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["headers"].update({"reply-to": "x@y.org"}), "headers"),
        (lambda m: m["personalizations"][0]["headers"].update({"DKIM-Signature": "x"}),
         "personalizations.0.headers"),
        (lambda m: m.pop("from"), "from.email"),
        (lambda m: m.pop("subject"), "subject"),
        (lambda m: m["content"].reverse(), "content"),
        (lambda m: m.update(content=[]), "content"),
        (lambda m: m.update(categories=[f"c{i}" for i in range(11)]), "categories"),
        (lambda m: m["personalizations"][1]["custom_args"].update(n=1),
         "personalizations.1.custom_args"),
        (lambda m: m["personalizations"][0]["substitutions"].update(big="x" * 10_000),
         "personalizations.0.substitutions"),
        (lambda m: m["personalizations"][2].update(dynamic_template_data={"a": 1}),
         "personalizations"),
        (lambda m: m["personalizations"][0].update(to=[]), "personalizations.0.to"),
        (lambda m: m["personalizations"][0]["to"].append({"email": "not-an-address"}),
         "personalizations.0.to.1.email"),
    ],
)
def test_invalid_bodies_are_refused_like_sendgrid(emu, client, change, field) -> None:
    body = mail(3, headers={"X-Campaign": "42"})
    change(body)
    with pytest.raises(BadRequestsError) as exc:
        client.send(body)
    errors = errors_of(exc)
    assert field in [e["field"] for e in errors]
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    assert emu.accepted_requests == []


def test_subject_may_live_in_every_personalization(client) -> None:
    body = mail(2)
    body.pop("subject")
    for p in body["personalizations"]:
        p["subject"] = "Per person -first-"
    assert client.send(body).status_code == 202


def test_oversized_body_is_payload_too_large() -> None:
    with SendGridEmulator(api_key=KEY, max_body_bytes=2000) as emu:
        with pytest.raises(PayloadTooLargeError) as exc:
            SendGridAPIClient(KEY, host=emu.url).send(mail(50))
        assert exc.value.status_code == 413


def test_injected_429_carries_rate_limit_headers(emu, client) -> None:
    emu.fail_next(2, status=429)
    for _ in range(2):
        with pytest.raises(TooManyRequestsError) as exc:
            client.send(mail(1))
        headers = exc.value.headers
        assert headers["X-RateLimit-Remaining"] == "0"
        assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
    assert client.send(mail(1)).status_code == 202
    assert emu.state()["faulted"] == 2


def test_persistent_503_until_cleared(emu, client) -> None:
    emu.set_fault(503)
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError):
            client.send(mail(1))
    emu.set_fault(None)
    assert client.send(mail(1)).status_code == 202


def test_hang_makes_the_client_time_out(emu, client) -> None:
    emu.set_hang(True)
    client.client.timeout = 0.5
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        client.send(mail(1))
    assert time.monotonic() - started < 5
    emu.set_hang(False)
    client.client.timeout = 10
    assert client.send(mail(1)).status_code == 202


def test_delay_slows_answers(emu, client) -> None:
    emu.set_delay(0.3)
    started = time.monotonic()
    assert client.send(mail(1)).status_code == 202
    assert time.monotonic() - started >= 0.3


def test_control_endpoints_drive_faults_and_report_state(emu, client) -> None:
    control(emu, "POST", "fault", {"status": 429, "count": 1})
    with pytest.raises(TooManyRequestsError):
        client.send(mail(1))
    client.send(mail(2))
    state = control(emu, "GET", "state")
    counts = [state[k] for k in ("requests", "accepted", "recipients", "faulted")]
    assert counts == [2, 1, 2, 1]
    assert state["public_key"] == emu.public_key_b64
    page = control(emu, "GET", "recipients?offset=1&limit=5")
    assert page["total"] == 2 and [r["email"] for r in page["recipients"]] == ["user1@example.org"]
    assert control(emu, "GET", "requests/timestamps")["count"] == 2
    control(emu, "POST", "fault", {"status": 503})
    with pytest.raises(ServiceUnavailableError):
        client.send(mail(1))
    control(emu, "POST", "fault", {"status": None})
    control(emu, "POST", "reset")
    assert (emu.state()["requests"], emu.recipients) == (0, [])


def test_concurrent_sends_are_all_recorded(emu) -> None:
    def send(_: int) -> int:
        return SendGridAPIClient(KEY, host=emu.url).send(mail(10)).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(send, range(64))) == {202}
    assert len(emu.accepted_requests) == 64 and len(emu.recipients) == 640


def test_signed_events_verify_and_tampering_is_detected(emu, client, receiver) -> None:
    url, received = receiver
    client.send(mail(3))
    assert emu.post_events(url, emu.build_events("delivered")) == 200
    headers, raw = received[0]
    signature = headers[EventWebhookHeader.SIGNATURE]
    timestamp = headers[EventWebhookHeader.TIMESTAMP]
    webhook = EventWebhook()
    key = webhook.convert_public_key_to_ecdsa(emu.public_key_b64)
    assert headers["Content-Type"] == "application/json"
    assert webhook.verify_signature(raw.decode(), signature, timestamp, key)
    assert not webhook.verify_signature(raw.decode().replace("delivered", "bounce"), signature,
                                        timestamp, key)
    assert not webhook.verify_signature(raw.decode(), signature, str(int(timestamp) + 1), key)
    events = json.loads(raw)
    assert [e["email"] for e in events] == [f"user{i}@example.org" for i in range(3)]
    assert events[0]["blast_id"] == "42" and events[2]["contact_id"] == "2"
    assert len({e["sg_event_id"] for e in events}) == 3


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_every_event_kind_has_the_common_fields(emu, client, kind) -> None:
    message_id = client.send(mail(2)).headers["X-Message-Id"]
    events = emu.build_events(kind, ["user1@example.org"])
    (event,) = events
    assert event["event"] == kind and event["email"] == "user1@example.org"
    assert event["sg_message_id"].startswith(message_id)
    assert event["category"] == ["blast-42"] and event["contact_id"] == "1"
    assert isinstance(event["timestamp"], int) and event["sg_event_id"]


def test_event_details_and_overrides(emu, client) -> None:
    client.send(mail(1))
    assert emu.build_events("open")[0]["sg_machine_open"] is False
    assert emu.build_events("open", sg_machine_open=True)[0]["sg_machine_open"] is True
    assert emu.build_events("click")[0]["url"] == "https://o.test/c/tok0"
    assert emu.build_events("bounce")[0]["type"] == "bounce"
    assert emu.build_events("bounce", type="blocked")[0]["status"].startswith("5.7")
    with pytest.raises(ValueError):
        emu.build_events("teleported")


def test_webhooks_control_endpoint_posts_signed_batches(emu, client, receiver) -> None:
    url, received = receiver
    client.send(mail(3))
    result = control(emu, "POST", "webhooks", {"url": url, "event": "open", "limit": 2})
    assert result == {"count": 2, "statuses": [200]}
    events = json.loads(received[0][1])
    assert [e["event"] for e in events] == ["open", "open"]
