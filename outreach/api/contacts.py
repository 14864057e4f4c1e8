"""The JSON API for contacts, lists, segments, imports, exports and suppressions."""

from __future__ import annotations

from outreach.api import bp  # noqa: F401 - routes register on the API blueprint
