"""The SMS segment counter agrees with an independent reference built from 3GPP TS 23.038."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from outreach.content.segments import count_segments

# The GSM 03.38 default alphabet by code point (0x1B, the escape, left out), written out from
# the specification's table rather than copied from the code under test.
_BASIC_CODES = (
    [0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5,
     0xE5, 0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6,
     0xE6, 0xDF, 0xC9, 0x20, 0x21, 0x22, 0x23, 0xA4]
    + list(range(0x25, 0x40))  # % & ' ( ) * + , - . / 0-9 : ; < = > ?
    + [0xA1] + list(range(0x41, 0x5B)) + [0xC4, 0xD6, 0xD1, 0xDC, 0xA7]
    + [0xBF] + list(range(0x61, 0x7B)) + [0xE4, 0xF6, 0xF1, 0xFC, 0xE0]
)
REF_BASIC = frozenset(map(chr, _BASIC_CODES))
REF_EXTENDED = frozenset(map(chr, [0x0C, 0x5E, 0x7B, 0x7D, 0x5C, 0x5B, 0x5D, 0x7E, 0x7C, 0x20AC]))


def reference(body: str) -> tuple[str, int]:
    """(encoding, segments) by encoding to real units and cutting them into real parts."""
    if all(c in REF_BASIC or c in REF_EXTENDED for c in body):
        # Each character as its septets: an extension character is ESC followed by its code.
        chars = [[0x1B, ord(c)] if c in REF_EXTENDED else [ord(c)] for c in body]
        encoding, single, part = "GSM-7", 160, 153
    else:
        # UTF-16 code units: a character outside the BMP is a surrogate pair.
        chars = [[0] * (len(c.encode("utf-16-be")) // 2) for c in body]
        encoding, single, part = "UCS-2", 70, 67
    units = sum(len(c) for c in chars)
    if units == 0:
        return encoding, 0
    if units <= single:
        return encoding, 1
    parts: list[list[int]] = [[]]
    for unit_group in chars:  # an escape pair or surrogate pair is never split across parts
        if len(parts[-1]) + len(unit_group) > part:
            parts.append([])
        parts[-1].extend(unit_group)
    return encoding, len(parts)


GSM_TEXT = st.text(alphabet=sorted(REF_BASIC | REF_EXTENDED), max_size=700)
EXTENSION_HEAVY = st.text(alphabet=sorted(REF_EXTENDED) + ["a", "é"], max_size=400)
ANY_TEXT = st.text(max_size=400)
MIXED = st.lists(st.sampled_from(["a", "€", "{", "ł", "😀", "\u2019", "\f", " "]),
                 max_size=400).map("".join)


@given(st.one_of(GSM_TEXT, EXTENSION_HEAVY, ANY_TEXT, MIXED))
@example("a" * 160)
@example("a" * 161)
@example("a" * 152 + "€" + "a" * 10)  # the escape pair would straddle the 153 boundary
@example("ł" * 66 + "😀" + "ł" * 10)  # the surrogate pair would straddle the 67 boundary
@example("😀" * 35)
@example("")
def test_segment_count_agrees_with_the_reference(body: str) -> None:
    """Encoding and billed segments match for GSM-7, extension characters and UCS-2."""
    counted = count_segments(body)
    assert (counted.encoding, counted.segments) == reference(body)
    assert counted.characters == len(body)
    assert counted.segments <= max(1, counted.units)


@given(st.text(alphabet=sorted(REF_BASIC | REF_EXTENDED), min_size=1, max_size=300),
       st.characters(blacklist_characters=sorted(REF_BASIC | REF_EXTENDED)))
def test_one_non_gsm_character_switches_the_whole_body_to_ucs2(body: str, odd: str) -> None:
    """A single character outside GSM-7 makes the whole message UCS-2."""
    assert count_segments(body + odd).encoding == "UCS-2"
