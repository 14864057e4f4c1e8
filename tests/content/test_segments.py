"""SMS encoding and segment counts at every boundary an organizer could be billed for."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from outreach.content.segments import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SmsSegments,
    count_segments,
    is_gsm7,
)

COUNTER_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "sms-counter.js"

EMOJI = "\U0001f44d"  # 👍, outside the BMP


@pytest.mark.parametrize(
    ("body", "encoding", "segments", "units"),
    [
        ("", "GSM-7", 0, 0),
        ("a", "GSM-7", 1, 1),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 153 * 2, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        ("a" * 153 * 3, "GSM-7", 3, 459),
        ("€" * 80, "GSM-7", 1, 160),
        ("€" * 80 + "a", "GSM-7", 2, 161),
        ("é" * 70 + "ł", "UCS-2", 2, 71),
        ("ł" * 70, "UCS-2", 1, 70),
        ("ł" * 71, "UCS-2", 2, 71),
        ("ł" * 67 * 2, "UCS-2", 2, 134),
        ("ł" * 135, "UCS-2", 3, 135),
        (EMOJI * 35, "UCS-2", 1, 70),
        (EMOJI * 35 + "a", "UCS-2", 2, 71),
    ],
)
def test_boundaries(body: str, encoding: str, segments: int, units: int) -> None:
    counted = count_segments(body)
    assert (counted.encoding, counted.segments, counted.units) == (encoding, segments, units)


def test_extension_char_at_153_boundary_moves_whole_to_next_segment() -> None:
    # 152 septets then an escape pair: 154 would fit in ceil(155/153) = 2 parts by arithmetic,
    # but the pair cannot straddle, so part one holds 152 and part two starts with the "€".
    body = "a" * 152 + "€" + "a" * 152
    counted = count_segments(body)
    assert counted.units == 306
    assert counted.segments == 3
    assert count_segments("a" * 151 + "€" + "a" * 153).segments == 2


def test_emoji_straddling_67_moves_whole_to_next_segment() -> None:
    body = "ł" * 66 + EMOJI + "ł" * 66
    counted = count_segments(body)
    assert (counted.encoding, counted.units) == ("UCS-2", 134)
    assert counted.segments == 3
    assert count_segments("ł" * 65 + EMOJI + "ł" * 67).segments == 2


def test_curly_quotes_switch_to_ucs2() -> None:
    straight = count_segments('Don\'t forget: "Rally" at 5pm')
    curly = count_segments("Don\u2019t forget: \u201cRally\u201d at 5pm")
    assert straight.encoding == "GSM-7"
    assert curly.encoding == "UCS-2"
    assert curly.per_segment == 70


def test_euro_and_extension_chars_count_two() -> None:
    assert count_segments("€").units == 2
    assert count_segments(GSM7_EXTENDED).units == 2 * len(GSM7_EXTENDED)
    assert count_segments("{a}").units == 5


def test_per_segment_and_characters() -> None:
    assert count_segments("a" * 160) == SmsSegments("GSM-7", 1, 160, 160, 160)
    assert count_segments("a" * 161).per_segment == 153
    assert count_segments(EMOJI * 2).characters == 2


def test_summary_reads_like_the_counter() -> None:
    assert count_segments("a" * 180).summary == "GSM-7 · 2 segments · 180 characters"
    assert count_segments("é").summary == "GSM-7 · 1 segment · 1 character"
    assert count_segments("").summary == "GSM-7 · 0 segments · 0 characters"


def test_gsm7_alphabet_is_the_default_table() -> None:
    assert len(GSM7_BASIC) == 127 and len(set(GSM7_BASIC)) == 127  # 128 minus the escape
    assert is_gsm7(GSM7_BASIC + GSM7_EXTENDED)
    assert is_gsm7("Ça coûte 5€") is False  # û is not in the table
    assert is_gsm7("Ça côute") is False
    assert is_gsm7("Çà et là: ¿Qué?")
    # ç, á, backtick, tab, no-break space, OHM SIGN (not the Greek capital omega), emoji
    for outside in ["ç", "á", "`", "\t", "\u00a0", "\u2126", EMOJI]:
        assert not is_gsm7(outside), outside
    assert is_gsm7("\u03a9\u0394")  # Greek capitals omega and delta are in the table


PARITY_BODIES = [
    "",
    "Hi {first_name}, rally at 5pm!",
    "a" * 161,
    "a" * 152 + "€" + "a" * 152,
    "ł" * 66 + EMOJI + "ł" * 66,
    "Don\u2019t miss it \U0001f1fa\U0001f1f8",
    "Line one\nLine two\r\n[brackets] ~tilde~ |pipe| \\ ^",
    "é" * 200,
    GSM7_BASIC + GSM7_EXTENDED,  # the two alphabets must match character for character
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_counter_agrees_with_python() -> None:
    script = (
        "const c = require(process.argv[1]);"
        "const bodies = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(bodies.map(b => [c.countSegments(b), c.summary("
        "c.countSegments(b))])));"
    )
    result = subprocess.run(
        ["node", "-e", script, str(COUNTER_JS)],
        input=json.dumps(PARITY_BODIES),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    for body, (counted, summary) in zip(PARITY_BODIES, json.loads(result.stdout), strict=True):
        expected = count_segments(body)
        assert counted == {
            "encoding": expected.encoding,
            "segments": expected.segments,
            "units": expected.units,
            "per_segment": expected.per_segment,
            "characters": expected.characters,
        }, body
        assert summary == expected.summary
