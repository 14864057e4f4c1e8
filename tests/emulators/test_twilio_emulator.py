"""The Twilio emulator, driven by the official Twilio SDK over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from outreach.emulators.twilio import TwilioEmulator, count_segments

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token"
SERVICE = "MG" + "fedcba9876543210" * 2
FROM = "+15005550006"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def emu() -> Iterator[TwilioEmulator]:
    """A running emulator on an ephemeral port."""
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN, messaging_service_sid=SERVICE) as e:
        yield e


def sdk(emu: TwilioEmulator, token: str = TOKEN, timeout: float = 10) -> Client:
    """The official SDK pointed at the emulator."""
    client = Client(SID, token, http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = emu.url
    return client


@pytest.fixture
def client(emu: TwilioEmulator) -> Client:
    """The official SDK pointed at the emulator."""
    return sdk(emu)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, str], dict[str, str]]]]]:
    """A local webhook endpoint recording (path, headers, form params); answers empty TwiML."""
    received: list[tuple[str, dict[str, str], dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            received.append((self.path, dict(self.headers), dict(parse_qsl(raw))))
            body = b"<Response/>"
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def control(emu: TwilioEmulator, method: str, name: str, payload: Any = None) -> Any:
    """Call an /_emulator/ endpoint over HTTP, as another process would."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{emu.url}/_emulator/{name}", data=data, method=method)
    with _LOCAL.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_create_with_from_returns_a_queued_message(emu, client) -> None:
    message = client.messages.create(to="+14155550123", from_=FROM, body="Rally at 6pm")
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.status, message.num_segments, message.num_media) == ("queued", "1", "0")
    assert (message.to, message.from_, message.body) == ("+14155550123", FROM, "Rally at 6pm")
    assert message.account_sid == SID and message.direction == "outbound-api"
    assert message.date_created is not None and message.error_code is None
    assert message.price is None and message.api_version == "2010-04-01"
    assert emu.messages[0]["sid"] == message.sid
    assert client.messages(message.sid).fetch().body == "Rally at 6pm"


def test_create_with_a_messaging_service_is_accepted(emu, client) -> None:
    message = client.messages.create(to="+14155550123", messaging_service_sid=SERVICE, body="Hi")
    assert (message.status, message.messaging_service_sid, message.from_) == (
        "accepted", SERVICE, None)


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("a" * 306, "GSM-7", 2),
     ("a" * 307, "GSM-7", 3), ("€" * 80, "GSM-7", 1), ("{" * 81, "GSM-7", 2),
     ("é ñ ü" * 10, "GSM-7", 1), ("ś" * 70, "UCS-2", 1), ("ś" * 71, "UCS-2", 2),
     ("😀" * 35, "UCS-2", 1), ("😀" * 36, "UCS-2", 2), ("Don’t" * 14, "UCS-2", 1)],
)
def test_count_segments(body: str, encoding: str, segments: int) -> None:
    assert count_segments(body) == (encoding, segments)


def test_an_emoji_body_is_billed_in_ucs2_segments(client) -> None:
    message = client.messages.create(to="+14155550123", from_=FROM, body="Vote! 🗳" + "x" * 70)
    assert message.num_segments == "2"


def test_wrong_token_is_a_401(emu) -> None:
    with pytest.raises(TwilioRestException) as exc:
        sdk(emu, token="wrong").messages.create(to="+14155550123", from_=FROM, body="x")
    assert (exc.value.status, exc.value.code) == (401, 20003)
    assert emu.messages == []


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"to": "4155550123"}, 21211), ({"to": "+1-415-555"}, 21211),
     ({"from_": None}, 21603), ({"messaging_service_sid": SERVICE}, 21606),
     ({"from_": "not a number!"}, 21212), ({"body": None}, 21602),
     ({"body": "x" * 1601}, 21617), ({"validity_period": 0}, 21624),
     ({"validity_period": 36001}, 21624)],
)
def test_invalid_requests_get_twilio_error_codes(emu, client, kwargs, code) -> None:
    args = {"to": "+14155550123", "from_": FROM, "body": "hello", **kwargs}
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(**{k: v for k, v in args.items() if v is not None})
    assert (exc.value.status, exc.value.code) == (400, code)
    assert emu.messages == [] and emu.state()["rejected"] == 1


def test_media_without_body_and_1600_chars_are_fine(client) -> None:
    assert client.messages.create(to="+14155550123", from_=FROM,
                                  media_url=["https://o.test/a.png"]).num_media == "1"
    assert client.messages.create(to="+14155550123", from_=FROM, body="x" * 1600).sid


def test_stopped_number_is_refused_with_21610(emu, client) -> None:
    emu.stopped_numbers.add("+14155550123")
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155550123", from_=FROM, body="hello")
    assert (exc.value.status, exc.value.code) == (400, 21610)
    control(emu, "POST", "stop-number", {"phone": "+14155550999"})
    with pytest.raises(TwilioRestException):
        client.messages.create(to="+14155550999", from_=FROM, body="hello")


def test_injected_429_is_a_twilio_20429_with_retry_after(emu, client) -> None:
    emu.fail_next(1, status=429)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155550123", from_=FROM, body="hello")
    assert (exc.value.status, exc.value.code) == (429, 20429)
    emu.fail_next(1, status=429)
    auth = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    req = urllib.request.Request(
        f"{emu.url}/2010-04-01/Accounts/{SID}/Messages.json", method="POST",
        data=b"To=%2B14155550123&From=%2B15005550006&Body=hi",
        headers={"Authorization": f"Basic {auth}"})
    with pytest.raises(urllib.error.HTTPError) as raw:
        _LOCAL.open(req, timeout=10)
    assert raw.value.code == 429 and raw.value.headers["Retry-After"] == "1"
    assert client.messages.create(to="+14155550123", from_=FROM, body="hello").sid


def test_persistent_503_and_hang(emu) -> None:
    emu.set_fault(503)
    with pytest.raises(TwilioRestException) as exc:
        sdk(emu).messages.create(to="+14155550123", from_=FROM, body="hello")
    assert exc.value.status == 503
    emu.set_fault(None)
    emu.set_hang(True)
    with pytest.raises(requests.exceptions.Timeout):
        sdk(emu, timeout=0.5).messages.create(to="+14155550123", from_=FROM, body="hello")
    emu.set_hang(False)
    assert sdk(emu).messages.create(to="+14155550123", from_=FROM, body="hello").sid


def test_status_callback_is_signed_like_twilio(emu, client, receiver) -> None:
    base, received = receiver
    url = f"{base}/webhooks/twilio/status?blast=7"
    message = client.messages.create(to="+14155550123", messaging_service_sid=SERVICE,
                                     body="hello", status_callback=url)
    assert emu.deliver(message.sid, "undelivered", error_code=30003) == 200
    _, headers, params = received[0]
    assert params["MessageSid"] == params["SmsSid"] == message.sid
    assert (params["MessageStatus"], params["ErrorCode"], params["To"]) == (
        "undelivered", "30003", "+14155550123")
    assert params["MessagingServiceSid"] == SERVICE and params["AccountSid"] == SID
    validator = RequestValidator(TOKEN)
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    assert not validator.validate(url, {**params, "MessageStatus": "delivered"},
                                  headers["X-Twilio-Signature"])
    assert RequestValidator("other").validate(url, params, headers["X-Twilio-Signature"]) is False
    assert client.messages(message.sid).fetch().status == "undelivered"
    assert emu.signature(url, params) == validator.compute_signature(url, params)


def test_inbound_stop_is_signed_and_suppresses_the_sender(emu, client, receiver) -> None:
    base, received = receiver
    url = f"{base}/webhooks/twilio/inbound"
    status, text = emu.send_inbound(url, "+14155550123", FROM, " Stop. ", opt_out_type="STOP")
    assert (status, text) == (200, "<Response/>")
    _, headers, params = received[0]
    assert (params["Body"], params["OptOutType"], params["NumMedia"]) == (" Stop. ", "STOP", "0")
    assert params["MessageSid"].startswith("SM") and params["NumSegments"] == "1"
    assert RequestValidator(TOKEN).validate(url, params, headers["X-Twilio-Signature"])
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+14155550123", from_=FROM, body="hello")
    assert exc.value.code == 21610
    emu.send_inbound(url, "+14155550123", FROM, "START")
    assert "OptOutType" not in received[1][2]
    assert client.messages.create(to="+14155550123", from_=FROM, body="welcome back").sid


def test_many_concurrent_messages_and_control_endpoints(emu) -> None:
    def send(i: int) -> str:
        return clients[i % 8].messages.create(to=f"+1415555{i:04d}", from_=FROM, body=f"#{i}").sid

    clients = [sdk(emu) for _ in range(8)]
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        sids = list(pool.map(send, range(200)))
    assert len(set(sids)) == 200 and len(emu.messages) == 200
    state = control(emu, "GET", "state")
    assert (state["requests"], state["accepted"]) == (200, 200)
    stamps = control(emu, "GET", "timestamps")
    assert stamps["count"] == 200 and min(stamps["timestamps"]) >= started
    listing = control(emu, "GET", "messages?offset=10&limit=5")
    assert listing["total"] == 200 and len(listing["messages"]) == 5
    control(emu, "POST", "fault", {"status": 503})
    with pytest.raises(TwilioRestException):
        send(0)
    control(emu, "POST", "fault", {"status": None})
    control(emu, "POST", "reset")
    assert control(emu, "GET", "state")["requests"] == 0 and emu.messages == []
