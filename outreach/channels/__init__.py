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
        elif backend == "sendgrid":
            from outreach.channels.sendgrid import SendGridEmailChannel

            if not app.config.get("SENDGRID_API_KEY"):
                raise ConfigurationError("EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY")
            channel = SendGridEmailChannel(
                app.config["SENDGRID_API_KEY"],
                host=app.config.get("SENDGRID_API_HOST") or "https://api.sendgrid.com",
                timeout=float(app.config.get("PROVIDER_TIMEOUT_SECONDS") or 30))
        elif backend == "smtp":
            from outreach.channels.smtp import SmtpEmailChannel

            if not app.config.get("SMTP_URL"):
                raise ConfigurationError("EMAIL_BACKEND=smtp needs SMTP_URL, e.g. "
                                         "smtp://user:password@host:587")
            channel = SmtpEmailChannel(app.config["SMTP_URL"])
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
        elif backend == "twilio":
            from outreach.channels.twilio import TwilioSmsChannel

            config = app.config
            if not config.get("TWILIO_ACCOUNT_SID") or not config.get("TWILIO_AUTH_TOKEN"):
                raise ConfigurationError(
                    "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
            if not config.get("TWILIO_MESSAGING_SERVICE_SID") and not config.get("TWILIO_FROM"):
                raise ConfigurationError("SMS_BACKEND=twilio needs a sender: "
                                         "TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM")
            channel = TwilioSmsChannel(
                config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                api_base=config.get("TWILIO_API_BASE") or "https://api.twilio.com",
                messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
                from_number=config.get("TWILIO_FROM"),
                timeout=float(config.get("PROVIDER_TIMEOUT_SECONDS") or 30))
        else:
            raise ConfigurationError(f"SMS_BACKEND={backend} is not available in this version")
        app.extensions["sms_channel"] = channel
    return channel
