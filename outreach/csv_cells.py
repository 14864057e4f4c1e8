"""Values as CSV cells that a spreadsheet opens as text, never as a formula.

Every CSV outreach writes (contact and suppression exports, a blast's recipients) may hold
text a supporter typed. Excel, LibreOffice and Google Sheets run a cell that starts with =, +,
-, @, a tab or a carriage return as a formula (CSV injection), so such text gets a leading
apostrophe, which they show as text. An E.164 phone number starts with + but is a number,
not a formula: it stays as it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def cell(value: Any) -> str:
    """A value as CSV text: None empty, times in ISO 8601, dicts and lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif hasattr(value, "isoformat"):
        return str(value.isoformat())
    elif isinstance(value, bool | int | float):
        return str(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    if text.startswith(FORMULA_START) and not _E164.match(text):
        return "'" + text
    return text
