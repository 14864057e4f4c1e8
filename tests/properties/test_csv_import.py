"""The CSV importer with hostile files: any bytes, encodings, quotes and columns give either a
clean import or a clear error naming the line, and a failed import writes nothing."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa
from flask import Flask
from hypothesis import example, given, settings
from hypothesis import strategies as st

from outreach import db
from outreach.contacts.csvfile import CsvError, open_csv
from outreach.contacts.models import Contact, Import, ImportRejection, ImportRow
from outreach.exceptions import ValidationError
from tests.fixtures.contacts import import_csv
from tests.fixtures.services import clean_database
from tests.properties import scaled

CELL = st.one_of(
    st.sampled_from(["", "a@example.org", "B@Example.ORG", "+1 212 555 0100", "2125550101",
                     "not an email", '"', '""', ",", ";", "\t", "\n", "\r\n", "é", "€", "😀",
                     "\ufeff", "\x00", "=cmd()", " ", "x" * 300, "America/New_York", "Mars/Base"]),
    st.text(max_size=20))
HEADER = st.lists(st.sampled_from(["email", "E-mail", "phone", "Mobile", "first name", "zip",
                                   "tags", "tz", "Notes", "", "email", "\ufeffemail", "a,b"]),
                  min_size=1, max_size=6)
DELIMITER = st.sampled_from([",", ";", "\t"])
ENCODING = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252", "latin-1"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """CSV-ish files: a header, rows of odd width, stray quotes, mixed line ends, any encoding."""
    delimiter = draw(DELIMITER)
    header = draw(HEADER)
    rows = draw(st.lists(st.lists(CELL, max_size=len(header) + 2), max_size=8))
    quote = draw(st.booleans())

    def line(cells: list[str]) -> str:
        if quote:
            cells = ['"' + c.replace('"', '""') + '"' for c in cells]
        return delimiter.join(cells)

    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = ending.join(line(r) for r in [header, *rows]) + draw(st.sampled_from(["", ending]))
    encoding = draw(ENCODING)
    data = text.encode(encoding, "replace")
    if draw(st.integers(0, 9)) == 0:  # now and then, damage a byte
        position = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:position] + draw(st.binary(min_size=1, max_size=2)) + data[position + 1:]
    return data


ANY_FILE = st.one_of(csv_files(), st.binary(max_size=300))


@given(ANY_FILE)
@example(b"")
@example(b'email\n"unclosed@example.org\nb@example.org\n')
@example(b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n\x00")
@example(b"email\na@example.org\n\xff\xfe\xfa@example.org\n")
@example(b"PK\x03\x04 spreadsheet")
def test_the_reader_returns_rows_or_a_csv_error(data: bytes) -> None:
    """open_csv and its rows raise nothing but CsvError, and each error says where."""
    try:
        with open_csv(io.BytesIO(data)) as source:
            assert isinstance(source.header, list)
            for row in source.rows():
                assert row.line >= 2
                assert row.error is None or row.error.strip()
                assert row.error is not None or len(row.values) == len(source.header)
    except CsvError as exc:
        assert str(exc).strip()
        assert exc.line is None or exc.line >= 1


def test_any_file_imports_cleanly_or_fails_whole_with_a_line(app: Flask) -> None:
    """End to end through the import job: a refusal at upload writes nothing; a failed run
    leaves no contact and no staged row and names the line; a finished run accounts for
    every row."""
    engine = app.extensions["db_engine"]

    @settings(max_examples=scaled(25))
    @given(ANY_FILE)
    @example(b"email\na@example.org\nb@example.org\n\xff\xfe\xfa@example.org\n" * 3)
    def run(data: bytes) -> None:
        clean_database(engine)
        try:
            imp = import_csv(app, data)
        except ValidationError as exc:
            assert exc.fields.get("file"), exc.fields
            with app.app_context():
                session = db.session()
                assert session.scalar(sa.select(sa.func.count()).select_from(Import)) == 0
                assert session.scalar(sa.select(sa.func.count()).select_from(Contact)) == 0
            return
        with app.app_context():
            session = db.session()
            contacts = session.scalar(sa.select(sa.func.count()).select_from(Contact))
            staged = session.scalar(sa.select(sa.func.count()).select_from(ImportRow))
            rejected = session.scalar(sa.select(sa.func.count()).select_from(ImportRejection))
        assert staged == 0
        if imp.status == "failed":
            assert contacts == 0
            assert re.search(r"\bline \d+", imp.error or "", re.I), imp.error
        else:
            assert imp.status == "done", (imp.status, imp.error)
            assert contacts == imp.created
            assert imp.created + imp.skipped + imp.updated + imp.rejected == imp.rows_total
            assert rejected == imp.rejected

    run()
