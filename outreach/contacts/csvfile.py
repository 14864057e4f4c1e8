"""Streaming reader for the messy CSV files organizers upload to import contacts."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

SAMPLE_BYTES = 64 * 1024
MAX_FIELD_CHARS = 1 << 20
DEFAULT_MAX_COLUMNS = 200
DELIMITERS = (",", ";", "\t")  # ties go to the first

# The csv module's limit is process-wide: only ever raise it, so other readers keep working, and
# check lengths ourselves too in case someone raised it further.
if csv.field_size_limit() < MAX_FIELD_CHARS:
    csv.field_size_limit(MAX_FIELD_CHARS)

_SIGNATURES = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an old Excel workbook (.xls)",
    b"%PDF-": "a PDF document",
    b"\x1f\x8b": "a compressed (gzip) file",
    b"\x89PNG": "an image",
    b"\xff\xd8\xff": "an image",
    b"{\\rtf": "a Rich Text document",
}
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of invalid UTF-8
_LATIN1_FALLBACK = "outreach-cp1252-latin1"
# A field this long is nearly always a quote that is never closed, swallowing the lines after it.
_TOO_LONG = f'A value is longer than {MAX_FIELD_CHARS:,} characters (is a quote mark " unclosed?)'


def _undefined_as_latin1(error: UnicodeError) -> tuple[str, int]:
    """Decode the five bytes cp1252 leaves undefined as Latin-1, as browsers (WHATWG) do."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN1_FALLBACK, _undefined_as_latin1)
_DECODE_ERRORS = {
    "utf-8": "surrogateescape",
    "utf-8-sig": "surrogateescape",
    "cp1252": _LATIN1_FALLBACK,
}


class CsvError(Exception):
    """The file cannot be read as CSV; the message is written for the organizer."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One record: the physical line it starts on, its values, and why it is unusable if so."""

    line: int
    values: list[str]
    error: str | None = None


class CsvSource:
    """An opened CSV file: its encoding, delimiter and header, with rows read on demand."""

    def __init__(
        self, binary: BinaryIO, *, owned: bool, max_columns: int = DEFAULT_MAX_COLUMNS
    ) -> None:
        self._binary, self._owned = binary, owned
        sample = _read_sample(binary)
        self.encoding = _detect_encoding(sample)
        # An ASCII-only sample proves nothing: keep UTF-8 until a line shows it is cp1252.
        self._tentative = self.encoding == "utf-8" and sample.isascii()
        self._firm_utf8 = False
        # Invalid UTF-8 bytes become lone surrogates, so _decoded() can name the line they are on.
        errors = _DECODE_ERRORS.get(self.encoding, "strict")
        self._escapes = errors == "surrogateescape"
        text_sample = codecs.getincrementaldecoder(self.encoding)("replace").decode(sample)
        self.delimiter = _sniff_delimiter(text_sample)
        stream = io.BufferedReader(_PrefixedReader(sample, binary), buffer_size=SAMPLE_BYTES)
        # newline="": the csv module sees line ends as they are, also inside quoted fields.
        self._text = io.TextIOWrapper(stream, self.encoding, errors=errors, newline="")
        self._records = self._read_records()
        first = next(self._records, None)
        if first is None:
            raise CsvError("The file is empty")
        line, values, error = first
        if error is not None:
            raise CsvError(f"Line {line}: the header row cannot be read ({error})", line=line)
        self.header = [name.replace("\ufeff", "").strip() for name in values]
        if len(self.header) > max_columns:
            raise CsvError(
                f"The header has {len(self.header)} columns; at most {max_columns} are allowed",
                line=line,
            )
        self.warnings = _duplicate_warnings(self.header)
        self._rows_started = False

    def rows(self) -> Iterator[CsvRow]:
        """Stream the records after the header, skipping blank lines; readable only once."""
        return (CsvRow(line, values, error) for line, values, error in self.records())

    def records(self, width: int = 0) -> Iterator[tuple[int, list[str], str | None]]:
        """rows() as plain (line, values, error) tuples, the fast way for big imports.

        Values are padded to the header's width, or to `width` if that is more.
        """
        if self._rows_started:
            raise RuntimeError("CsvSource.rows() can only be read once")
        self._rows_started = True
        return self._shaped_rows(max(width, len(self.header)))

    def _shaped_rows(self, pad_to: int) -> Iterator[tuple[int, list[str], str | None]]:
        """Pad short records to the header's width (or pad_to) and flag long ones."""
        width = len(self.header)
        for line, values, error in self._records:
            if error is None:
                if len(values) > width:
                    if any(value.strip() for value in values[width:]):
                        error = f"Row has {len(values)} values but the header has {width} columns"
                    else:  # spreadsheets pad rows with trailing delimiters
                        values = values[:width]
                if len(values) < pad_to and error is None:
                    values = values + [""] * (pad_to - len(values))
            yield line, values, error

    def close(self) -> None:
        """Close the file if open_csv opened it; a file passed in stays the caller's to close."""
        self._text.close()
        if self._owned:
            self._binary.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_records(self) -> Iterator[tuple[int, list[str], str | None]]:
        """Yield (starting line, values, error) for each non-blank record, header included."""
        reader = csv.reader(self._text, delimiter=self.delimiter)
        consumed = 0
        while True:
            line = consumed + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                consumed = reader.line_num
                yield line, [], _TOO_LONG if "field limit" in str(exc) else f"Not valid CSV: {exc}"
                continue
            except UnicodeDecodeError as exc:
                raise CsvError(
                    f"The file stops being valid {self.encoding} text at or after line {line}",
                    line=line,
                ) from exc
            consumed = reader.line_num
            # One joined string answers the per-value questions in C: blank, too long, ASCII.
            joined = "".join(values)
            if not joined or joined.isspace():
                continue
            if len(joined) > MAX_FIELD_CHARS and any(len(v) > MAX_FIELD_CHARS for v in values):
                yield line, [], _TOO_LONG
                continue
            if self._escapes and not joined.isascii():
                values = self._decoded(line, values, joined)
            yield line, values, None

    def _decoded(self, line: int, values: list[str], joined: str) -> list[str]:
        """Check a record's UTF-8, switching the file to cp1252 if it is the first evidence."""
        if self.encoding in ("utf-8", "utf-8-sig"):
            if not _ESCAPED_BYTE.search(joined):
                self._firm_utf8 = True
                return values
            if not self._tentative or self._firm_utf8:
                raise CsvError(
                    f"Line {line} is not valid UTF-8 text, though the lines before it are; "
                    "save the whole file as CSV UTF-8 and upload it again",
                    line=line,
                )
            self.encoding = "cp1252"
        # The escaped text encodes back to the file's exact bytes, which cp1252 then reads.
        return [
            value
            if value.isascii()
            else value.encode("utf-8", "surrogateescape").decode("cp1252", _LATIN1_FALLBACK)
            for value in values
        ]


def open_csv(
    source: str | os.PathLike[str] | BinaryIO, *, max_columns: int = DEFAULT_MAX_COLUMNS
) -> CsvSource:
    """Open a path or binary file as CSV: detect encoding and delimiter, read the header."""
    if isinstance(source, str | os.PathLike):
        binary: BinaryIO = open(source, "rb")  # closed by CsvSource.close()
        try:
            return CsvSource(binary, owned=True, max_columns=max_columns)
        except BaseException:
            binary.close()
            raise
    return CsvSource(source, owned=False, max_columns=max_columns)


CONTACT_FIELDS: dict[str, tuple[str, ...]] = {
    # Loose keys (see _match_key) in order of preference: a "Mobile" column beats "Phone".
    "email": ("email", "emailaddress", "emailaddr", "primaryemail"),
    "phone": (
        "mobilephone", "mobile", "mobilenumber", "mobilephonenumber", "cellphone", "cell",
        "cellnumber", "cellphonenumber", "sms", "smsnumber", "smsphone", "phone", "phonenumber",
        "primaryphone", "telephone", "tel",
    ),
    "first_name": ("firstname", "first", "givenname", "fname", "forename"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    "postal_code": (
        "zip", "zipcode", "zip5", "postcode", "postalcode", "postal", "zippostalcode",
    ),
    "timezone": ("timezone", "tz"),
    "tags": ("tags", "tag", "labels", "label"),
}  # fmt: skip


def match_columns(header: list[str]) -> dict[str, int]:
    """Map each contact field found in `header` to its column index, matching loosely."""
    keys = [_match_key(name) for name in header]
    mapping: dict[str, int] = {}
    for field_name, synonyms in CONTACT_FIELDS.items():
        ranked = [(synonyms.index(key), index) for index, key in enumerate(keys) if key in synonyms]
        if ranked:
            mapping[field_name] = min(ranked)[1]
    return mapping


def custom_columns(header: list[str], mapping: dict[str, int]) -> dict[str, int]:
    """Map the columns `mapping` leaves out to snake_case custom field keys (first one wins)."""
    used = set(mapping.values())
    custom: dict[str, int] = {}
    for index, name in enumerate(header):
        key = field_key(name)
        if index not in used and key and key not in custom:
            custom[key] = index
    return custom


def field_key(name: str) -> str:
    """A column name as a custom field key: "Favorite Color" -> "favorite_color"."""
    return re.sub(r"[\W_]+", "_", _fold(name)).strip("_")


def _match_key(name: str) -> str:
    """A column name with case, accents, spaces and punctuation gone: "E-mail" -> "email"."""
    return re.sub(r"[\W_]+", "", _fold(name))


def _fold(name: str) -> str:
    """Lower-case `name` and strip its accents, so "Código" and "codigo" compare equal."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def _duplicate_warnings(header: list[str]) -> list[str]:
    """Warn about columns whose names collide once normalized; the first one is used."""
    first_seen: dict[str, int] = {}
    warnings = []
    for index, name in enumerate(header):
        first = first_seen.setdefault(field_key(name) or f"#{index}", index)
        if first != index:
            warnings.append(
                f'Columns {first + 1} ("{header[first]}") and {index + 1} ("{name}") have the '
                f"same name; only column {first + 1} is used"
            )
    return warnings


def _read_sample(binary: BinaryIO) -> bytes:
    """Read up to SAMPLE_BYTES from the start, refusing files that are not text."""
    chunks: list[bytes] = []
    size = 0
    while size < SAMPLE_BYTES:
        chunk = binary.read(SAMPLE_BYTES - size)
        if isinstance(chunk, str):
            raise TypeError("open_csv needs a binary file, e.g. open(path, 'rb')")
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    sample = b"".join(chunks)
    if sample.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a ZIP: XLSX, or ODS from LibreOffice
        ods = b"opendocument.spreadsheet" in sample
        kind = "an OpenDocument spreadsheet (.ods)" if ods else "an Excel workbook (.xlsx)"
        raise CsvError(f"This file looks like {kind}; save it as CSV first")
    for signature, kind in _SIGNATURES.items():
        if sample.startswith(signature):
            raise CsvError(f"This file looks like {kind}, not a CSV file; save it as CSV first")
    return sample


def _detect_encoding(sample: bytes) -> str:
    """Name the codec for the file from its first bytes."""
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return encoding
    if b"\x00" in sample:
        # UTF-16 without a mark: mostly-ASCII text has a NUL in every other byte.
        half = len(sample) // 2
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd >= 0.4 * half and even <= 0.05 * half:
            return "utf-16-le"
        if even >= 0.4 * half and odd <= 0.05 * half:
            return "utf-16-be"
        raise CsvError("This file contains binary data, not text; save it as CSV first")
    try:
        # Not final: the sample may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8")().decode(sample)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter used most in the header line, outside quotes; comma by default."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = started = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "\r\n":
            if started:
                break
        elif char in counts:
            counts[char] += 1
            started = True
        elif not char.isspace():
            started = True
    best = max(DELIMITERS, key=counts.__getitem__)
    return best if counts[best] else ","


class _PrefixedReader(io.RawIOBase):
    """The sampled bytes, then the rest of the file: works for unseekable uploads too."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
