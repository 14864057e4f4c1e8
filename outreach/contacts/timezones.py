"""A contact's IANA time zone and US state, inferred from the phone number or the ZIP code.

Quiet hours (47 CFR 64.1200, and Florida's and Oklahoma's stricter laws) are judged in the
recipient's local time, so a wrong guess sends texts at night: every function here returns None
rather than guess between zones that differ.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

from outreach.contacts.normalize import open_area

# First three ZIP digits -> USPS state code, as the USPS allocates them; gaps are unassigned.
# AA, AE and AP are military mail (APO/FPO), with no time zone to infer.
_ZIP3_STATES: tuple[tuple[int, int, str], ...] = (
    (5, 5, "NY"), (6, 7, "PR"), (8, 8, "VI"), (9, 9, "PR"), (10, 27, "MA"), (28, 29, "RI"),
    (30, 38, "NH"), (39, 49, "ME"), (50, 54, "VT"), (55, 55, "MA"), (56, 59, "VT"),
    (60, 69, "CT"), (70, 89, "NJ"), (90, 99, "AE"), (100, 149, "NY"), (150, 196, "PA"),
    (197, 199, "DE"), (200, 200, "DC"), (201, 201, "VA"), (202, 205, "DC"), (206, 219, "MD"),
    (220, 246, "VA"), (247, 268, "WV"), (270, 289, "NC"), (290, 299, "SC"), (300, 319, "GA"),
    (320, 339, "FL"), (340, 340, "AA"), (341, 349, "FL"), (350, 369, "AL"), (370, 385, "TN"),
    (386, 397, "MS"), (398, 399, "GA"), (400, 427, "KY"), (430, 459, "OH"), (460, 479, "IN"),
    (480, 499, "MI"), (500, 528, "IA"), (530, 549, "WI"), (550, 567, "MN"), (569, 569, "DC"),
    (570, 577, "SD"), (580, 588, "ND"), (590, 599, "MT"), (600, 629, "IL"), (630, 658, "MO"),
    (660, 679, "KS"), (680, 693, "NE"), (700, 714, "LA"), (716, 729, "AR"), (730, 732, "OK"),
    (733, 733, "TX"), (734, 749, "OK"), (750, 799, "TX"), (800, 816, "CO"), (820, 831, "WY"),
    (832, 838, "ID"), (840, 847, "UT"), (850, 865, "AZ"), (870, 884, "NM"), (885, 885, "TX"),
    (889, 898, "NV"), (900, 961, "CA"), (962, 966, "AP"), (967, 968, "HI"), (969, 969, "GU"),
    (970, 979, "OR"), (980, 994, "WA"), (995, 999, "AK"),
)  # fmt: skip
# Whole ZIP codes that the prefix table gets wrong: American Samoa sits inside Hawaii's 967,
# and Guam's 969 is shared with the freely associated states and the Northern Marianas.
_ZIP5_STATES: tuple[tuple[int, int, str], ...] = (
    (96799, 96799, "AS"), (96939, 96940, "PW"), (96941, 96944, "FM"), (96950, 96952, "MP"),
    (96960, 96970, "MH"),
)  # fmt: skip

# Each state's majority zone (by population). FM spans two offsets, so it has none.
_STATE_ZONES = {
    "America/New_York": "CT DC DE FL GA KY MA MD ME NC NH NJ NY OH PA RI SC VA VT WV",
    "America/Detroit": "MI",
    "America/Indiana/Indianapolis": "IN",
    "America/Chicago": "AL AR IA IL KS LA MN MO MS ND NE OK SD TN TX WI",
    "America/Denver": "CO MT NM UT WY",
    "America/Boise": "ID",
    "America/Phoenix": "AZ",
    "America/Los_Angeles": "CA NV OR WA",
    "America/Anchorage": "AK",
    "Pacific/Honolulu": "HI",
    "America/Puerto_Rico": "PR",
    "America/St_Thomas": "VI",
    "Pacific/Guam": "GU",
    "Pacific/Saipan": "MP",
    "Pacific/Pago_Pago": "AS",
    "Pacific/Palau": "PW",
    "Pacific/Majuro": "MH",
}
_ZONE_OF_STATE = {state: zone for zone, states in _STATE_ZONES.items() for state in states.split()}
# ZIP prefixes on the minority side of a state's time zone line, where one prefix covers it.
_ZIP3_ZONES: tuple[tuple[int, int, str], ...] = (
    (324, 325, "America/Chicago"),  # Florida panhandle: Panama City, Pensacola
    (373, 374, "America/New_York"),  # Tennessee: Chattanooga
    (376, 379, "America/New_York"),  # Tennessee: Johnson City, Knoxville
    (420, 424, "America/Chicago"),  # western Kentucky: Paducah, Bowling Green, Owensboro
    (463, 464, "America/Chicago"),  # northwest Indiana: Gary
    (476, 477, "America/Chicago"),  # southwest Indiana: Evansville
    (577, 577, "America/Denver"),  # western South Dakota: Rapid City
    (586, 586, "America/Denver"),  # southwest North Dakota: Dickinson
    (693, 693, "America/Denver"),  # Nebraska panhandle: Scottsbluff
    (798, 799, "America/Denver"),  # El Paso
    (835, 835, "America/Los_Angeles"),  # north Idaho: Lewiston
    (838, 838, "America/Los_Angeles"),  # north Idaho: Coeur d'Alene
    (865, 865, "America/Denver"),  # Navajo Nation, which keeps daylight saving time
    (885, 885, "America/Denver"),  # El Paso
    (979, 979, "America/Boise"),  # eastern Oregon: Ontario
)
_ZIP5_ZONES: tuple[tuple[int, int, str], ...] = ((99546, 99547, "America/Adak"),)
_ZIP_COUNTRIES = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})  # territories use US ZIPs
_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?|(\d{4})(?:-\d{4})?")

# NANP area codes of the US and its territories, including announced overlays.
_AREA_CODES = {
    "AL": "205 251 256 334 483 659 938", "AK": "907", "AZ": "480 520 602 623 928",
    "AR": "327 479 501 870",
    "CA": "209 213 279 310 323 341 350 357 369 408 415 424 442 510 530 559 562 619 626 628 650"
    " 657 661 669 707 714 738 747 760 805 818 820 831 837 840 858 909 916 925 949 951",
    "CO": "303 719 720 748 970 983", "CT": "203 475 860 959", "DE": "302", "DC": "202 771",
    "FL": "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904"
    " 941 954",
    "GA": "229 404 470 478 678 706 762 770 912 943", "HI": "808", "ID": "208 986",
    "IL": "217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 861 872",
    "IN": "219 260 317 463 574 765 812 930", "IA": "319 515 563 641 712",
    "KS": "316 620 785 913", "KY": "270 364 502 606 859", "LA": "225 318 337 504 985",
    "ME": "207", "MD": "227 240 301 410 443 667",
    "MA": "339 351 413 508 617 774 781 857 978",
    "MI": "231 248 269 313 517 586 616 679 734 810 906 947 989",
    "MN": "218 320 507 612 651 763 924 952", "MS": "228 601 662 769",
    "MO": "235 314 417 557 573 636 660 816 975", "MT": "406", "NE": "308 402 531",
    "NV": "702 725 775", "NH": "603", "NJ": "201 551 609 640 732 848 856 862 908 973",
    "NM": "505 575",
    "NY": "212 315 329 332 347 363 516 518 585 607 624 631 646 680 716 718 838 845 914 917"
    " 929 934",
    "NC": "252 336 472 704 743 828 910 919 980 984", "ND": "701",
    "OH": "216 220 234 283 326 330 380 419 436 440 513 567 614 740 937",
    "OK": "405 539 572 580 918", "OR": "458 503 541 971",
    "PA": "215 223 267 272 412 445 484 570 582 610 717 724 814 835 878", "RI": "401",
    "SC": "803 821 839 843 854 864", "SD": "605", "TN": "423 615 629 731 865 901 931",
    "TX": "210 214 254 281 325 346 361 409 430 432 469 512 682 713 726 737 806 817 830 832"
    " 903 915 936 940 945 956 972 979",
    "UT": "385 435 801", "VT": "802", "VA": "276 434 540 571 686 703 757 804 826 948",
    "WA": "206 253 360 425 509 564", "WV": "304 681",
    "WI": "262 274 353 414 534 608 715 920", "WY": "307",
    "PR": "787 939", "VI": "340", "GU": "671", "MP": "670", "AS": "684",
}  # fmt: skip
_STATE_OF_AREA_CODE = {
    code: state for state, codes in _AREA_CODES.items() for code in codes.split()
}

# Names zoneinfo lists that are not places: the server's own zone and the "Factory" placeholder.
_NOT_PLACES = frozenset({"localtime", "Factory"})


def infer_timezone(
    phone_e164: str | None, postal_code: str | None, country: str = "US"
) -> str | None:
    """The contact's IANA zone from the phone number first, else the ZIP code; None if unsure."""
    zone = timezone_for_phone(phone_e164, country) if phone_e164 else None
    if zone is None and postal_code and country.upper() in _ZIP_COUNTRIES:
        zone = timezone_for_zip(postal_code)
    return zone


def timezone_for_phone(phone: str, country: str = "US") -> str | None:
    """The one zone a number's prefix lies in, per libphonenumber; None when it spans several."""
    if phone.startswith("+1") and len(phone) == 12:
        # North American zones are set per area code and exchange at the finest: answer once
        # per area code where libphonenumber has no finer entry, else once per "+1NPANXX".
        zone = _area_zone(phone[2:5])
        return _nanp_zone(phone[:8]) if zone is _BY_EXCHANGE else zone
    return _zone_for(phone, country)


_BY_EXCHANGE = "by exchange"  # an area code whose exchanges lie in different zones


@cache
def _area_zone(npa: str) -> str | None:
    """The zone of every number of an area code, or _BY_EXCHANGE when it depends on more."""
    # Only where every exchange is a valid number (see normalize.open_area) does the area
    # code alone decide libphonenumber's answer.
    finer = any(len(prefix) > 4 and prefix.startswith("1" + npa) for prefix in _finer_prefixes())
    if finer or not npa.isdigit() or not open_area(npa):
        return _BY_EXCHANGE
    zones = {_nanp_zone(f"+1{npa}{exchange}") for exchange in ("234", "456", "678", "890")}
    # A sample number libphonenumber refuses says nothing about the others: ask per exchange.
    return zones.pop() if len(zones) == 1 and None not in zones else _BY_EXCHANGE


@cache
def _finer_prefixes() -> tuple[str, ...]:
    """libphonenumber's North American time zone prefixes longer than "1" + area code."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    return tuple(prefix for prefix in TIMEZONE_DATA if prefix[0] == "1" and len(prefix) > 4)


@lru_cache(maxsize=65536)
def _nanp_zone(prefix: str) -> str | None:
    return _zone_for(prefix + "2345", "US")


def _zone_for(phone: str, country: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, country.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    zones = tuple(z for z in phone_timezones.time_zones_for_number(number) if valid_timezone(z))
    if not zones:
        return None  # libphonenumber answers ("Etc/Unknown",) when it does not know
    # Several zones are as good as one only when their clocks agree all year (Guernsey and
    # London do; Denver and Phoenix share an offset in winter only).
    year = datetime.now(UTC).year
    if all(_clock(zone, year) == _clock(zones[0], year) for zone in zones[1:]):
        return zones[0]
    return None


def timezone_for_zip(postal_code: str) -> str | None:
    """The zone most of a US ZIP code's prefix area lives in; None if unknown or military."""
    zip5 = _zip5(postal_code)
    if zip5 is None:
        return None
    zone = _lookup(_ZIP5_ZONES, zip5) or _lookup(_ZIP3_ZONES, zip5 // 100)
    if zone is None:
        state = state_for_zip(postal_code)
        zone = _ZONE_OF_STATE.get(state) if state else None
    return zone


def state_for_zip(postal_code: str) -> str | None:
    """The USPS state (or territory, or military) code a US ZIP or ZIP+4 code belongs to."""
    zip5 = _zip5(postal_code)
    if zip5 is None:
        return None
    return _lookup(_ZIP5_STATES, zip5) or _lookup(_ZIP3_STATES, zip5 // 100)


def state_for_phone(phone_e164: str) -> str | None:
    """The US state (or territory) of a +1 number's area code; None outside the US."""
    if len(phone_e164) == 12 and phone_e164.startswith("+1"):  # E.164, as imports give it
        return _STATE_OF_AREA_CODE.get(phone_e164[2:5]) if phone_e164[2:].isdigit() else None
    digits = re.sub(r"\D", "", phone_e164)
    if len(digits) == 10 and not phone_e164.lstrip().startswith("+"):
        digits = "1" + digits  # a national number with the country code left off
    if len(digits) != 11 or digits[0] != "1":
        return None
    return _STATE_OF_AREA_CODE.get(digits[1:4])


def valid_timezone(name: str) -> bool:
    """True for an IANA zone name this machine's tz database knows, e.g. "America/Chicago"."""
    return name in _available_timezones()


@cache
def _available_timezones() -> frozenset[str]:
    """The zone names, read once: available_timezones() walks the tz database on each call."""
    return frozenset(available_timezones()) - _NOT_PLACES


@cache
def _clock(zone: str, year: int) -> tuple[float, ...]:
    """A zone's UTC offsets (hours) on the 1st and 15th of each month: its yearly pattern."""
    tz = ZoneInfo(zone)
    days = (datetime(year, month, day, 12, tzinfo=UTC) for month in range(1, 13) for day in (1, 15))
    return tuple(tz.utcoffset(day).total_seconds() / 3600 for day in days)


def _zip5(postal_code: str) -> int | None:
    """The five-digit ZIP as an int, from "02134", "02134-1234", or Excel's mangled "2134"."""
    match = _ZIP.fullmatch(postal_code.strip())
    if match is None:
        return None
    # Spreadsheets store ZIPs as numbers and drop New England's leading zero.
    return int(match.group(1) or match.group(2))


def _lookup(ranges: tuple[tuple[int, int, str], ...], value: int) -> str | None:
    """The label of the (low, high, label) range holding `value`, if any."""
    index = bisect_right(ranges, value, key=lambda entry: entry[0]) - 1
    if index >= 0 and ranges[index][0] <= value <= ranges[index][1]:
        return ranges[index][2]
    return None
