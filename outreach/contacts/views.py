"""Staff pages for contacts, lists, segments, imports, exports and suppressions."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("contacts", __name__)
