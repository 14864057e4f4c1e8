"""Errors shared across outreach's domains."""


class OutreachError(Exception):
    """Base class of outreach's domain errors."""


class ConfigurationError(OutreachError):
    """The configuration is missing or inconsistent; the message says what to set."""


class NotFound(OutreachError):
    """A requested record does not exist."""


class ValidationError(OutreachError):
    """Input was refused; `fields` maps each bad field to what is wrong with it."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class Conflict(OutreachError):
    """The request conflicts with the current state (a duplicate, a wrong status)."""
