"""Provider adapters behind the email and SMS channel interfaces."""

from __future__ import annotations

from flask import Flask, current_app

from outreach.channels.base import EmailChannel, SmsChannel
from outreach.exceptions import ConfigurationError


def email_channel(app: Flask | None = None) -> EmailChannel:
    """The email adapter chosen by EMAIL_BACKEND (built once per app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    channel = app.extensions.get("email_channel")
    if channel is None:
        backend = app.config["EMAIL_BACKEND"]
        if backend == "outbox":
            from outreach.channels.outbox import OutboxEmailChannel

            channel = OutboxEmailChannel(app.extensions["db_engine"])
        else:
            raise ConfigurationError(f"EMAIL_BACKEND={backend} is not available in this version")
        app.extensions["email_channel"] = channel
    return channel


def sms_channel(app: Flask | None = None) -> SmsChannel:
    """The SMS adapter chosen by SMS_BACKEND (built once per app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    channel = app.extensions.get("sms_channel")
    if channel is None:
        backend = app.config["SMS_BACKEND"]
        if backend == "outbox":
            from outreach.channels.outbox import OutboxSmsChannel

            channel = OutboxSmsChannel(app.extensions["db_engine"],
                                       app.config.get("TWILIO_FROM") or "")
        else:
            raise ConfigurationError(f"SMS_BACKEND={backend} is not available in this version")
        app.extensions["sms_channel"] = channel
    return channel
