"""SMS encoding and segment counting, as carriers (and Twilio's bill) count them.

`static/js/sms-counter.js` implements the same algorithm for the live counter in the template
editor; keep the two in step (tests/content/test_segments.py runs both on the same bodies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The 3GPP TS 23.038 default alphabet in code order (0x00-0x7F), without 0x1B, the escape.
# 0x09 is Ç (capital): the spec's table says so, and so do Twilio and the carriers.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC + char, so it costs two septets.
GSM7_EXTENDED = "\f^{}\\[]~|€"

_BASIC = frozenset(GSM7_BASIC)
_EXTENDED = frozenset(GSM7_EXTENDED)
_GSM7 = _BASIC | _EXTENDED

GSM7_SINGLE = 160
GSM7_PER_PART = 153  # a 6-byte concatenation header takes 7 septets from each part
UCS2_SINGLE = 70
UCS2_PER_PART = 67


@dataclass(frozen=True, slots=True)
class SmsSegments:
    """How a body will be sent: its encoding, and how many billed segments it takes."""

    encoding: Encoding
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    per_segment: int  # capacity of each segment at this length (single or concatenated)
    characters: int  # code points, what a person counts ("👍" is one)

    @property
    def summary(self) -> str:
        """The counter line shown to organizers: "GSM-7 · 2 segments · 180 characters"."""
        return (
            f"{self.encoding} · {_plural(self.segments, 'segment')}"
            f" · {_plural(self.characters, 'character')}"
        )


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM-7 default or extension table."""
    return all(char in _GSM7 for char in text)


def count_segments(body: str) -> SmsSegments:
    """Count the encoding, units and segments an SMS body takes.

    An empty body counts 0 segments: Twilio refuses it (error 21602) rather than billing it,
    and the template and send code refuse empty bodies before they get here.
    """
    if is_gsm7(body):
        encoding: Encoding = "GSM-7"
        costs = [2 if char in _EXTENDED else 1 for char in body]
        single, per_part = GSM7_SINGLE, GSM7_PER_PART
    else:
        encoding = "UCS-2"
        # Outside the BMP a character is a surrogate pair: two UTF-16 code units.
        costs = [2 if ord(char) > 0xFFFF else 1 for char in body]
        single, per_part = UCS2_SINGLE, UCS2_PER_PART
    units = sum(costs)
    if units <= single:
        return SmsSegments(encoding, 1 if units else 0, units, single, len(body))
    return SmsSegments(encoding, _pack(costs, per_part), units, per_part, len(body))


def _pack(costs: list[int], per_part: int) -> int:
    """Number of parts when characters are packed in order without splitting any one."""
    # An escape pair or surrogate pair that would straddle a boundary moves whole to the next
    # part, leaving one unit unused, so ceil(units / per_part) can undercount.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts += 1
            used = 0
        used += cost
    return parts


def _plural(count: int, noun: str) -> str:
    """`count` followed by `noun`, with an s unless the count is exactly one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
