"""The two channel interfaces, email and SMS, that every provider adapter implements.

An email batch carries one compiled body for many recipients; each recipient brings its own
substitutions (merge fields, tracking and unsubscribe tokens) and headers. That is SendGrid's
model, and it lets the body be compiled once per blast; adapters that send one message at a
time (SMTP, the outbox) apply the substitutions themselves with `personalize`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class EmailRecipient:
    """One addressee of an email batch, with what differs for them."""

    email: str
    name: str = ""
    substitutions: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailBatch:
    """One compiled email sent to up to 1000 recipients."""

    from_email: str
    subject: str
    html: str
    text: str
    recipients: list[EmailRecipient]
    from_name: str = ""
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    custom_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sms:
    """One text message to one number."""

    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None


class Outcome(enum.StrEnum):
    """How a provider answered for one recipient."""

    ACCEPTED = "accepted"  # the provider took it; delivery events follow
    RETRY = "retry"  # throttled or a temporary failure: try again later
    REJECTED = "rejected"  # permanent: never retry this address with this content
    UNKNOWN = "unknown"  # the request may or may not have been taken (timeout mid-request)


@dataclass(frozen=True)
class SendResult:
    """The outcome for one recipient or message."""

    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    suppress: str | None = None  # a suppression reason when the address must never be tried again
    retry_after: float | None = None
    segments: int | None = None


class EmailChannel(Protocol):
    """Sends email batches."""

    name: str

    def send_batch(self, batch: EmailBatch) -> list[SendResult]:
        """Send one batch; return one result per recipient, in order."""
        ...


class SmsChannel(Protocol):
    """Sends text messages."""

    name: str

    def send(self, sms: Sms) -> SendResult:
        """Send one text message."""
        ...


def personalize(template: str, substitutions: dict[str, str]) -> str:
    """Apply a recipient's substitutions to a compiled subject or body, as SendGrid does."""
    if not substitutions:
        return template
    # Longest keys first so that a key which is a prefix of another cannot clobber it.
    for key in sorted(substitutions, key=len, reverse=True):
        template = template.replace(key, substitutions[key])
    return template
