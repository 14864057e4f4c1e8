"""The demo's fictitious supporters, as a CSV an organizer could have exported from a sign-up sheet.

Every address is at example.org or example.com (reserved for documentation, RFC 2606) and every
phone number is a 555-01xx number (reserved for fiction in the North American plan), so nothing
the demo sends can ever reach a real person.
"""

from __future__ import annotations

import csv
import io
import random

FIRST = ["Ada", "Amara", "Ángel", "Beatriz", "Chen", "Chloé", "D'Andre", "Dmitri", "Elif", "Fatima",
         "Grace", "Hiroshi", "Imani", "Jamal", "José", "Kai", "Keisha", "Leila", "Luis", "Maya",
         "Mohammed", "Nadia", "Ngọc", "Oliver", "Priya", "Rosa", "Samuel", "Siobhán", "Tariq",
         "Wei", "Yusuf", "Zoë"]
LAST = ["Abbott", "Alvarez", "Brooks", "Chen", "Díaz", "Evans", "Fischer", "García", "Hughes",
        "Ibrahim", "Johnson", "Kowalski", "Lee", "Martínez", "Müller", "Nguyễn", "O'Brien",
        "Okafor", "Patel", "Quinn", "Rossi", "Schmidt", "Tanaka", "Usman", "Vargas",
        "Washington", "Young", "Zhang"]
# (area code, a ZIP code in the same place): numbers 555-0100..0199 of each area code.
AREAS = [("212", "10027"), ("718", "11215"), ("213", "90012"), ("415", "94110"),
         ("312", "60614"), ("713", "77004"), ("305", "33130"), ("404", "30303"),
         ("206", "98122"), ("503", "97214"), ("303", "80205"), ("602", "85004"),
         ("617", "02139"), ("202", "20001"), ("215", "19104"), ("612", "55406"),
         ("313", "48201"), ("504", "70119"), ("512", "78702"), ("801", "84102")]
HEADER = ["Email", "Mobile", "First name", "Last name", "ZIP", "Tags", "Neighborhood"]
NEIGHBORHOODS = ["Riverside", "Old Town", "Eastgate", "Hillcrest", "Northside", "the Flats"]
TAGS = ["volunteer", "donor", "member", "event-2025"]
PHONE_SHARE = 0.7  # most sign-up sheets have a mobile number for about two people in three


def supporters_csv(count: int, rng: random.Random) -> bytes:
    """A UTF-8 CSV of `count` distinct fictitious supporters (at most 2,000 with phones)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    phones = 0
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = "example.org" if i % 3 else "example.com"
        local = f"{_ascii(first)}.{_ascii(last)}{i}".lower()
        area, zip_code = AREAS[i % len(AREAS)]
        phone = ""
        if rng.random() < PHONE_SHARE and phones < 100 * len(AREAS):
            area = AREAS[phones // 100][0]
            phone = f"({area}) 555-{100 + phones % 100:04d}"
            phones += 1
        tags = "|".join(sorted(rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2]))))
        writer.writerow([f"{local}@{domain}", phone, first, last, zip_code, tags,
                         rng.choice(NEIGHBORHOODS)])
    return out.getvalue().encode("utf-8")


def _ascii(name: str) -> str:
    """A name as it would appear in an email address (no accents, no apostrophes)."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain if ch.isalnum())
