"""Reading the messy CSV files organizers upload: encodings, delimiters, bad rows, big files."""

import io
import tracemalloc
from pathlib import Path

import pytest

from outreach.contacts.csvfile import (
    CsvError,
    CsvRow,
    custom_columns,
    field_key,
    match_columns,
    open_csv,
)


def write(tmp_path: Path, data: bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(data: bytes) -> tuple[list[str], list[CsvRow]]:
    with open_csv(io.BytesIO(data)) as source:
        return source.header, list(source.rows())


def test_utf8_with_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffEmail,First Name\r\nanna@example.org,Anna\r\n".encode())
    with open_csv(path) as source:
        assert source.encoding == "utf-8-sig"
        assert source.header == ["Email", "First Name"]
        assert list(source.rows()) == [CsvRow(2, ["anna@example.org", "Anna"])]


def test_utf8_without_bom() -> None:
    with open_csv(io.BytesIO("name\nZoë Müller\n".encode())) as source:
        assert source.encoding == "utf-8"
        assert [row.values for row in source.rows()] == [["Zoë Müller"]]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-16-le", "utf-32"])
def test_utf16_and_utf32(codec: str) -> None:
    text = "email;name\r\nzoe@example.org;Zoë Müller €\r\n"
    # "utf-16" and "utf-32" write a BOM; the -le/-be variants have none (found by NUL pattern).
    header, rows = read_all(text.encode(codec))
    assert header == ["email", "name"]
    assert rows == [CsvRow(2, ["zoe@example.org", "Zoë Müller €"])]


def test_cp1252_fallback() -> None:
    data = "Name,City\r\nMüller,Orléans\r\n".encode("cp1252")  # 0xFC, 0xE9: not UTF-8
    with open_csv(io.BytesIO(data)) as source:
        assert source.encoding == "cp1252"
        assert [row.values for row in source.rows()] == [["Müller", "Orléans"]]


def test_cp1252_after_an_ascii_sample_switches_encoding() -> None:
    # A cp1252 export whose first 64 KB happen to be ASCII: the first accented name decides.
    filler = b"".join(b"person%d@example.org,Smith\r\n" % i for i in range(5000))
    data = b"email,name\r\n" + filler + b"zoe@example.org,M\xfcller \x80\r\n"
    with open_csv(io.BytesIO(data)) as source:
        rows = list(source.rows())
        assert source.encoding == "cp1252"
    assert rows[-1] == CsvRow(5002, ["zoe@example.org", "Müller €"])


def test_invalid_utf8_after_utf8_evidence_names_the_line() -> None:
    filler = b"".join(b"person%d@example.org,Smith\r\n" % i for i in range(5000))
    head = "email,name\r\nzoë@example.org,Zoë\r\n".encode()
    data = head + filler + b"x@example.org,M\xfcller\r\n"
    with open_csv(io.BytesIO(data)) as source:
        with pytest.raises(CsvError, match="Line 5003 is not valid UTF-8") as caught:
            list(source.rows())
    assert caught.value.line == 5003


@pytest.mark.parametrize(
    ("data", "delimiter"),
    [
        (b"email;first name;zip\n", ";"),
        (b"email\tfirst name\tzip\n", "\t"),
        (b"email,first name,zip\n", ","),
        (b'"last, first";email;zip\n', ";"),  # the comma inside quotes does not count
        (b"email\n", ","),
        (b"\n\nemail;zip\n", ";"),  # leading blank lines
    ],
)
def test_delimiter_detection(data: bytes, delimiter: str) -> None:
    with open_csv(io.BytesIO(data + b"a@example.org;x\n")) as source:
        assert source.delimiter == delimiter


def test_quoted_commas_and_newlines_keep_line_numbers() -> None:
    data = (
        b"email,note,zip\r\n"
        b'a@example.org,"one, two",10001\r\n'
        b'b@example.org,"line one\r\nline two\r\nline three",10002\r\n'
        b"\r\n"
        b"c@example.org,,10003\r\n"
        b'd@example.org,"x\ny",10004\n'
        b"e@example.org,plain,10005"
    )
    header, rows = read_all(data)
    assert [(row.line, row.values[0]) for row in rows] == [
        (2, "a@example.org"),
        (3, "b@example.org"),
        (7, "c@example.org"),
        (8, "d@example.org"),
        (10, "e@example.org"),
    ]
    assert rows[0].values[1] == "one, two"
    assert rows[1].values[1] == "line one\r\nline two\r\nline three"


def test_blank_lines_and_delimiter_only_lines_are_skipped() -> None:
    _, rows = read_all(b"email,zip\n\n  \n,,\na@example.org,10001\n\n")
    assert rows == [CsvRow(5, ["a@example.org", "10001"])]


def test_short_rows_are_padded_and_trailing_empty_values_dropped() -> None:
    _, rows = read_all(b"email,first,last\na@example.org\nb@example.org,B,C,,,\n")
    assert rows == [
        CsvRow(2, ["a@example.org", "", ""]),
        CsvRow(3, ["b@example.org", "B", "C"]),
    ]


def test_row_with_10000_values_is_an_error_on_that_row_only() -> None:
    wide = ",".join(["x"] * 10_000).encode()
    _, rows = read_all(b"a,b,c,d,e\n1,2,3,4,5\n" + wide + b"\n6,7,8,9,10\n")
    assert [row.line for row in rows] == [2, 3, 4]
    assert rows[1].error == "Row has 10000 values but the header has 5 columns"
    assert rows[0].error is None and rows[2].values == ["6", "7", "8", "9", "10"]


def test_too_long_field_is_an_error_on_its_row() -> None:
    # An unclosed quote swallows the following lines until the field limit stops it.
    data = b'email,note\na@example.org,"oops\n' + b"b@example.org,fine\n" * 80_000
    _, rows = read_all(data)
    assert rows[0].line == 2
    assert rows[0].error is not None and "longer than 1,048,576 characters" in rows[0].error
    assert all(row.error is None for row in rows[1:])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml", "looks like an Excel workbook (.xlsx)"),
        (b"PK\x03\x04mimetypeapplication/vnd.oasis.opendocument.spreadsheet", "(.ods)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00", "old Excel workbook (.xls)"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
        (b"email,name\n\x00\x01\x02\x03binary\xff\n", "binary data"),
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf", "The file is empty"),
        (b"\r\n\r\n  \r\n", "The file is empty"),
    ],
)
def test_files_that_are_not_csv(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_csv(write(tmp_path, data))


def test_xlsx_message_is_actionable() -> None:
    with pytest.raises(CsvError) as caught:
        open_csv(io.BytesIO(b"PK\x03\x04" + bytes(200)))
    assert str(caught.value) == (
        "This file looks like an Excel workbook (.xlsx); save it as CSV first"
    )


def test_header_only_file_has_no_rows() -> None:
    header, rows = read_all(b"email,phone\r\n")
    assert header == ["email", "phone"]
    assert rows == []


def test_too_many_columns() -> None:
    header = ",".join(f"c{i}" for i in range(201)).encode()
    with pytest.raises(CsvError, match="201 columns; at most 200"):
        open_csv(io.BytesIO(header + b"\n"))
    with open_csv(io.BytesIO(header + b"\n"), max_columns=300) as source:
        assert len(source.header) == 201


def test_duplicate_columns_are_warned_about() -> None:
    with open_csv(io.BytesIO(b"Email, First Name ,first_name,email\n")) as source:
        assert source.header == ["Email", "First Name", "first_name", "email"]
        assert len(source.warnings) == 2
        assert source.warnings[0].startswith('Columns 2 ("First Name") and 3 ("first_name")')


def test_passed_file_is_left_open_and_path_is_closed(tmp_path: Path) -> None:
    upload = io.BytesIO(b"email\na@example.org\n")
    with open_csv(upload) as source:
        list(source.rows())
    assert not upload.closed
    source = open_csv(write(tmp_path, b"email\n"))
    source.close()
    assert source._binary.closed


def test_rows_can_only_be_read_once() -> None:
    with open_csv(io.BytesIO(b"email\na@example.org\n")) as source:
        list(source.rows())
        with pytest.raises(RuntimeError):
            source.rows()


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Email", "email"),
        ("E-mail", "email"),
        ("Email Address", "email"),
        ("e_mail", "email"),
        ("  EMAIL  ", "email"),
        ("Mobile Phone", "phone"),
        ("Cell", "phone"),
        ("Phone Number", "phone"),
        ("mobile", "phone"),
        ("SMS", "phone"),
        ("First Name", "first_name"),
        ("firstname", "first_name"),
        ("Given name", "first_name"),
        ("fname", "first_name"),
        ("Last Name", "last_name"),
        ("Surname", "last_name"),
        ("Family name", "last_name"),
        ("lname", "last_name"),
        ("zip", "postal_code"),
        ("ZIP Code", "postal_code"),
        ("Postcode", "postal_code"),
        ("Postal Code", "postal_code"),
        ("zipcode", "postal_code"),
        ("Time zone", "timezone"),
        ("tz", "timezone"),
        ("Tags", "tags"),
        ("Labels", "tags"),
    ],
)
def test_match_columns_loosely(name: str, field: str) -> None:
    assert match_columns(["Favorite Color", name]) == {field: 1}


def test_match_columns_prefers_mobile_and_first_of_equals() -> None:
    header = ["Home Phone", "Phone", "Mobile", "Email", "email address", "email"]
    assert match_columns(header) == {"phone": 2, "email": 3}


def test_custom_columns_get_snake_case_keys() -> None:
    header = ["Email", "Favorite Color", "Home Phone", "", "Código Postal Secundário", "ID #"]
    mapping = match_columns(header)
    assert custom_columns(header, mapping) == {
        "favorite_color": 1,
        "home_phone": 2,
        "codigo_postal_secundario": 4,
        "id": 5,
    }
    assert field_key("Favorite  Color!") == "favorite_color"


def test_streaming_200000_rows_keeps_memory_small(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,first_name,last_name,zip,note\r\n")
        for i in range(200_000):
            out.write(f'p{i}@example.org,Zoë,Person{i},{10000 + i % 90000},"a, b"\r\n')
    tracemalloc.start()
    try:
        count = 0
        last = None
        with open_csv(path) as source:
            for row in source.rows():
                count += 1
                last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last == CsvRow(200_001, ["p199999@example.org", "Zoë", "Person199999", "29999", "a, b"])
    assert path.stat().st_size > 10_000_000
    assert peak < 5 * 1024 * 1024, peak  # the file itself is over 10 MB
