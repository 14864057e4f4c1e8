"""The Twilio adapter, through the official SDK, against the Twilio emulator over HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from outreach.channels import sms_channel
from outreach.channels.base import Outcome, Sms
from outreach.channels.errors import ChannelConfigError
from outreach.channels.twilio import TwilioSmsChannel, error_result
from outreach.emulators.twilio import TwilioEmulator
from outreach.exceptions import ConfigurationError
from tests.fixtures.app import build_app

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "adapter-test-token"
SERVICE = "MG" + "fedcba9876543210" * 2
FROM = "+15005550006"
TO = "+14155550123"


@pytest.fixture
def emu() -> Iterator[TwilioEmulator]:
    """A running Twilio emulator for SID/TOKEN."""
    with TwilioEmulator(account_sid=SID, auth_token=TOKEN, messaging_service_sid=SERVICE) as e:
        yield e


@pytest.fixture
def channel(emu: TwilioEmulator) -> TwilioSmsChannel:
    """The adapter pointed at the emulator, sending from a Messaging Service."""
    return TwilioSmsChannel(SID, TOKEN, emu.url, messaging_service_sid=SERVICE, timeout=10)


def test_accepted_with_sid_segments_and_callback(emu, channel) -> None:
    result = channel.send(Sms(to=TO, body="Rally at 6pm 🗳 " + "x" * 70,
                              status_callback="https://o.test/webhooks/twilio/status"))
    assert result.outcome is Outcome.ACCEPTED and result.segments == 2
    (sent,) = emu.messages
    assert result.provider_id == sent["sid"] and sent["sid"].startswith("SM")
    assert (sent["to"], sent["messaging_service_sid"], sent["from"]) == (TO, SERVICE, None)
    assert sent["status_callback"] == "https://o.test/webhooks/twilio/status"


def test_a_per_message_sender_overrides_the_default(emu, channel) -> None:
    channel.send(Sms(to=TO, body="from a number", from_number=FROM))
    other = "MG" + "ab" * 16
    channel.send(Sms(to=TO, body="other pool", messaging_service_sid=other, from_number=FROM))
    by_number = TwilioSmsChannel(SID, TOKEN, emu.url, from_number=FROM)
    by_number.send(Sms(to=TO, body="default number"))
    assert [(m["from"], m["messaging_service_sid"]) for m in emu.messages] == [
        (FROM, None), (None, other), (FROM, None)]
    assert emu.messages[0]["status_callback"] is None


def test_a_stopped_number_is_rejected_and_suppressed(emu, channel) -> None:
    emu.stopped_numbers.add(TO)
    result = channel.send(Sms(to=TO, body="hello"))
    assert (result.outcome, result.suppress, result.error_code) == (
        Outcome.REJECTED, "stop", "21610")
    assert result.error == "Attempt to send to unsubscribed recipient"


def test_an_invalid_number_is_rejected_as_invalid(channel) -> None:
    result = channel.send(Sms(to="4155550123", body="hello"))
    assert (result.outcome, result.suppress, result.error_code) == (
        Outcome.REJECTED, "invalid", "21211")


def test_other_client_errors_are_rejected_without_suppression(emu) -> None:
    emu.from_numbers = {"+15005550001"}
    result = TwilioSmsChannel(SID, TOKEN, emu.url, from_number=FROM).send(Sms(TO, "hi"))
    assert (result.outcome, result.suppress, result.error_code) == (
        Outcome.REJECTED, None, "21606")


@pytest.mark.parametrize(("status", "code", "outcome", "suppress"), [
    (400, 21610, Outcome.REJECTED, "stop"), (400, 21211, Outcome.REJECTED, "invalid"),
    (400, 21612, Outcome.REJECTED, "invalid"), (400, 21614, Outcome.REJECTED, "landline"),
    (400, 21408, Outcome.REJECTED, None), (400, 21606, Outcome.REJECTED, None),
    (403, 20403, Outcome.REJECTED, None), (429, 20429, Outcome.RETRY, None),
    (400, 20429, Outcome.RETRY, None), (503, 20503, Outcome.RETRY, None),
])
def test_error_codes_map_to_outcomes(status, code, outcome, suppress) -> None:
    result = error_result(status, code, "Unable to create record: Twilio says no")
    assert (result.outcome, result.suppress, result.error_code, result.error) == (
        outcome, suppress, str(code), "Twilio says no")


@pytest.mark.parametrize(("status", "code"), [(401, 20003), (400, 20003), (404, 20404)])
def test_credential_and_address_errors_raise(status, code) -> None:
    with pytest.raises(ChannelConfigError):
        error_result(status, code, "Authenticate")


@pytest.mark.parametrize(("headers", "expected"), [(None, 1.0), ({"Retry-After": "7"}, 7.0)])
def test_429_is_retried_after_retry_after(emu, channel, headers, expected) -> None:
    emu.fail_next(1, 429, headers)
    result = channel.send(Sms(to=TO, body="hello"))
    assert (result.outcome, result.error_code, result.retry_after) == (
        Outcome.RETRY, "20429", expected)
    assert channel.send(Sms(to=TO, body="hello")).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(emu, channel, status) -> None:
    emu.fail_next(1, status)
    result = channel.send(Sms(to=TO, body="hello"))
    assert result.outcome is Outcome.RETRY and emu.messages == []


def test_a_wrong_token_is_a_configuration_error(emu) -> None:
    wrong = TwilioSmsChannel(SID, "wrong-token", emu.url, messaging_service_sid=SERVICE)
    with pytest.raises(ChannelConfigError) as exc:
        wrong.send(Sms(to=TO, body="hello"))
    assert "wrong-token" not in str(exc.value) and "wrong-token" not in repr(wrong)


def test_a_timeout_after_sending_is_unknown(emu) -> None:
    emu.set_hang(True)
    started = time.monotonic()
    result = TwilioSmsChannel(SID, TOKEN, emu.url, from_number=FROM, timeout=0.5).send(
        Sms(to=TO, body="hello"))
    assert result.outcome is Outcome.UNKNOWN and time.monotonic() - started < 3


def test_connection_refused_is_retried(emu, channel) -> None:
    assert channel.send(Sms(to=TO, body="first")).outcome is Outcome.ACCEPTED
    emu.stop()  # the thread's pooled connection dies with it; the next one is refused
    result = channel.send(Sms(to=TO, body="second"))
    assert result.outcome is Outcome.RETRY and "unreachable" in result.error


def test_sends_from_many_threads_are_all_accepted(emu, channel) -> None:
    def send(i: int) -> str | None:
        return channel.send(Sms(to=f"+1415555{i:04d}", body=f"#{i}")).provider_id

    with ThreadPoolExecutor(8) as pool:
        sids = list(pool.map(send, range(20)))
    assert all(sids) and len(set(sids)) == 20
    assert sorted(m["to"] for m in emu.messages) == [f"+1415555{i:04d}" for i in range(20)]


def test_the_factory_builds_the_adapter_from_settings(emu, database_url, redis_url,
                                                      tmp_path) -> None:
    app = build_app(database_url, redis_url, tmp_path / "a", SMS_BACKEND="twilio",
                    TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN, TWILIO_API_BASE=emu.url,
                    TWILIO_FROM=FROM)
    channel = sms_channel(app)
    assert isinstance(channel, TwilioSmsChannel)
    assert channel.send(Sms(to=TO, body="hi")).outcome is Outcome.ACCEPTED
    assert emu.messages[0]["from"] == FROM
    no_sender = build_app(database_url, redis_url, tmp_path / "b", SMS_BACKEND="twilio",
                          TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN)
    with pytest.raises(ConfigurationError, match="sender"):
        sms_channel(no_sender)
    no_token = build_app(database_url, redis_url, tmp_path / "c", SMS_BACKEND="twilio",
                         TWILIO_ACCOUNT_SID=SID, TWILIO_FROM=FROM)
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        sms_channel(no_token)
