"""CSV cells a spreadsheet opens as text: one rule for every CSV outreach writes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outreach.csv_cells import cell


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""),
    ("Ana", "Ana"),
    ("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"),
    ("+1+1", "'+1+1"),
    ("-2", "'-2"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("+12125550143", "+12125550143"),  # an E.164 number is a number, not a formula
    (7, "7"),
    (True, "True"),
    (datetime(2026, 11, 28, 12, 0, tzinfo=UTC), "2026-11-28T12:00:00+00:00"),
    ({"a": "é"}, '{"a": "é"}'),
    (["=x"], '["=x"]'),
])
def test_cells(value, expected):
    assert cell(value) == expected
