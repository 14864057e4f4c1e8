"""The SendGrid adapter, through the official SDK, against the SendGrid emulator over HTTP."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import pytest

from outreach.channels import email_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome
from outreach.channels.errors import ChannelConfigError
from outreach.channels.sendgrid import SendGridEmailChannel, mail_body
from outreach.emulators.sendgrid import SendGridEmulator
from outreach.exceptions import ConfigurationError
from tests.fixtures.app import build_app

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
KEY = "SG.adapter-test-key"


@pytest.fixture
def emu() -> Iterator[SendGridEmulator]:
    """A running SendGrid emulator accepting KEY."""
    with SendGridEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def channel(emu: SendGridEmulator) -> SendGridEmailChannel:
    """The adapter pointed at the emulator."""
    return SendGridEmailChannel(KEY, host=emu.url, timeout=10)


def batch(n: int = 3, **overrides: object) -> EmailBatch:
    """A blast-like batch: merge fields and tokens in substitutions, unsubscribe headers."""
    recipients = [
        EmailRecipient(
            email=f"user{i}@example.org", name=f"User {i}" if i else "",
            substitutions={"-first_name-": f"Ann{i}", "-token-": f"tok{i}"},
            headers={"List-Unsubscribe": f"<https://o.test/u/tok{i}>"},
            custom_args={"outreach_message_id": str(100 + i)})
        for i in range(n)
    ]
    fields: dict = dict(
        from_email="team@example.org", from_name="The Team", subject="Hi -first_name-",
        html="<p>Dear -first_name-, <a href='https://o.test/c/-token-'>act</a></p>",
        text="Dear -first_name-, https://o.test/c/-token-", recipients=recipients,
        reply_to="replies@example.org", categories=["blast-7"],
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        custom_args={"outreach_blast_id": "7"})
    fields.update(overrides)
    return EmailBatch(**fields)  # type: ignore[arg-type]


def test_one_request_delivers_each_recipient_personalized(emu, channel) -> None:
    results = channel.send_batch(batch(3))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 3
    assert len(emu.accepted_requests) == 1
    message_id = emu.accepted_requests[0]["message_id"]
    assert {r.provider_id for r in results} == {message_id}
    got = emu.recipients
    assert [r["email"] for r in got] == ["user0@example.org", "user1@example.org",
                                         "user2@example.org"]
    second = got[1]
    assert second["name"] == "User 1" and got[0]["name"] is None
    assert second["subject"] == "Hi Ann1"
    assert second["content"]["text/plain"] == "Dear Ann1, https://o.test/c/tok1"
    assert "href='https://o.test/c/tok1'" in second["content"]["text/html"]
    assert second["headers"] == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                                 "List-Unsubscribe": "<https://o.test/u/tok1>"}
    assert second["custom_args"] == {"outreach_blast_id": "7", "outreach_message_id": "101"}
    assert second["categories"] == ["blast-7"]
    assert second["from"] == {"email": "team@example.org", "name": "The Team"}
    body = emu.accepted_requests[0]["body"]
    assert body["reply_to"] == {"email": "replies@example.org"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]


def test_an_empty_part_is_left_out_and_a_named_sender_is_split() -> None:
    body = mail_body(batch(1, html="", from_email="Org Name <org@example.org>", from_name=""))
    assert body["content"] == [{"type": "text/plain",
                                "value": "Dear -first_name-, https://o.test/c/-token-"}]
    assert body["from"] == {"email": "org@example.org", "name": "Org Name"}


def test_reserved_headers_are_dropped_not_sent(emu, channel) -> None:
    results = channel.send_batch(batch(1, headers={"To": "x@example.org", "X-Campaign": "7"}))
    assert results[0].outcome is Outcome.ACCEPTED
    assert emu.recipients[0]["headers"] == {"X-Campaign": "7",
                                            "List-Unsubscribe": "<https://o.test/u/tok0>"}


def test_oversized_substitutions_are_rejected_with_sendgrids_message(emu, channel) -> None:
    big = EmailRecipient("big@example.org", substitutions={"-blob-": "x" * 10_001})
    results = channel.send_batch(batch(1, recipients=[big]))
    assert results[0].outcome is Outcome.REJECTED and results[0].error_code == "400"
    assert results[0].error == "Substitutions must total less than 10000 bytes."
    assert emu.accepted_requests == []


def test_payload_too_large_is_rejected() -> None:
    with SendGridEmulator(api_key=KEY, max_body_bytes=2000) as small:
        results = SendGridEmailChannel(KEY, small.url, timeout=10).send_batch(batch(30))
    assert {r.outcome for r in results} == {Outcome.REJECTED}
    assert results[0].error_code == "413"


def test_429_retries_after_the_rate_limit_reset(emu, channel) -> None:
    reset = int(time.time()) + 30
    emu.fail_next(1, 429, {"X-RateLimit-Reset": str(reset)})
    results = channel.send_batch(batch(2))
    assert [r.outcome for r in results] == [Outcome.RETRY] * 2
    assert 28 <= results[0].retry_after <= 31
    emu.fail_next(1, 429, {"X-RateLimit-Reset": "soon"})
    assert channel.send_batch(batch(1))[0].retry_after == 60
    assert channel.send_batch(batch(1))[0].outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(emu, channel, status) -> None:
    emu.fail_next(1, status)
    result = channel.send_batch(batch(2))[1]
    assert (result.outcome, result.retry_after, result.error_code) == (
        Outcome.RETRY, None, str(status))


def test_a_timeout_after_sending_is_unknown(emu) -> None:
    emu.set_hang(True)
    started = time.monotonic()
    results = SendGridEmailChannel(KEY, emu.url, timeout=0.5).send_batch(batch(3))
    assert [r.outcome for r in results] == [Outcome.UNKNOWN] * 3
    assert time.monotonic() - started < 3
    assert emu.state()["requests"] == 1  # it was sent once and never again


def test_connection_refused_is_retried(emu, channel) -> None:
    emu.stop()
    results = channel.send_batch(batch(2))
    assert [r.outcome for r in results] == [Outcome.RETRY] * 2
    assert "unreachable" in results[0].error


def test_bad_key_is_a_configuration_error_that_never_shows_the_key(emu, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "SG.wrong-secret-key"
    with pytest.raises(ChannelConfigError) as exc:
        SendGridEmailChannel(wrong, emu.url, timeout=10).send_batch(batch(1))
    assert "401" in str(exc.value) and wrong not in str(exc.value)
    assert isinstance(exc.value, ConfigurationError)
    SendGridEmailChannel(KEY, emu.url, timeout=10).send_batch(batch(1))
    assert KEY not in caplog.text and wrong not in caplog.text
    assert "Bearer [redacted]" in caplog.text  # the SDK's DEBUG header dump, redacted
    assert KEY not in repr(SendGridEmailChannel(KEY, emu.url))


def test_batches_hold_at_most_1000_recipients(emu, channel) -> None:
    with pytest.raises(ValueError):
        channel.send_batch(batch(1001))
    results = channel.send_batch(batch(1000))
    assert len(results) == 1000 and {r.outcome for r in results} == {Outcome.ACCEPTED}
    assert len(emu.accepted_requests) == 1 and len(emu.recipients) == 1000
    assert channel.send_batch(batch(0)) == []


def test_the_factory_builds_the_adapter_from_settings(emu, database_url, redis_url,
                                                      tmp_path) -> None:
    app = build_app(database_url, redis_url, tmp_path / "a", EMAIL_BACKEND="sendgrid",
                    SENDGRID_API_KEY=KEY, SENDGRID_API_HOST=emu.url + "/v3/")
    channel = email_channel(app)
    assert isinstance(channel, SendGridEmailChannel) and email_channel(app) is channel
    assert channel.send_batch(batch(1))[0].outcome is Outcome.ACCEPTED
    bare = build_app(database_url, redis_url, tmp_path / "b", EMAIL_BACKEND="sendgrid")
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY"):
        email_channel(bare)
