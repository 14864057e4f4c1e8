"""Errors raised by the channel adapters."""

from __future__ import annotations

from outreach.exceptions import ConfigurationError


class ChannelConfigError(ConfigurationError):
    """The provider refused the configured credentials, host or sender: no send can succeed.

    Adapters raise it (instead of returning RETRY for every recipient) so that the job fails
    loudly and an operator fixes the setting; they raise it only before anything was sent, so no
    accepted message goes unrecorded. The message never contains a secret.
    """
