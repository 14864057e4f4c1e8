"""Inferring a contact's time zone and state, which decide when quiet hours end for them."""

import pytest

from outreach.contacts.timezones import (
    infer_timezone,
    state_for_phone,
    state_for_zip,
    timezone_for_phone,
    timezone_for_zip,
    valid_timezone,
)


@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        ("+12125550123", "America/New_York"),
        ("+14155550123", "America/Los_Angeles"),
        ("+16025550123", "America/Phoenix"),
        ("+13125550123", "America/Chicago"),
        ("+18085550123", "Pacific/Honolulu"),
        ("+17875550123", "America/Puerto_Rico"),
        ("+33612345678", "Europe/Paris"),
    ],
)
def test_zone_from_phone(phone: str, zone: str) -> None:
    assert infer_timezone(phone, None) == zone


@pytest.mark.parametrize(
    ("zip_code", "zone"),
    [
        ("10001", "America/New_York"),
        ("94110", "America/Los_Angeles"),
        ("85001", "America/Phoenix"),
        ("96813", "Pacific/Honolulu"),
        ("99501", "America/Anchorage"),
        ("60601", "America/Chicago"),
        ("80202", "America/Denver"),
        ("00901", "America/Puerto_Rico"),
        ("02134-1234", "America/New_York"),
        ("021341234", "America/New_York"),
        ("2134", "America/New_York"),  # Excel dropped the leading zero
        (" 10001 ", "America/New_York"),
        ("32501", "America/Chicago"),  # Pensacola: Florida's panhandle is on Central time
        ("79901", "America/Denver"),  # El Paso: Texas, but Mountain time
        ("37902", "America/New_York"),  # Knoxville: Tennessee, but Eastern time
    ],
)
def test_zone_from_zip(zip_code: str, zone: str) -> None:
    assert infer_timezone(None, zip_code) == zone
    assert timezone_for_zip(zip_code) == zone


def test_phone_wins_over_zip() -> None:
    assert infer_timezone("+14155550123", "10001") == "America/Los_Angeles"


def test_ambiguous_phone_falls_back_to_zip() -> None:
    # Alaska's 907 spans Anchorage and Adak, an hour apart: not good enough for quiet hours.
    assert timezone_for_phone("+19075550123") is None
    assert infer_timezone("+19075550123", "99501") == "America/Anchorage"
    # Some 928 exchanges are on the Navajo Nation, which keeps daylight saving time, so
    # libphonenumber answers Denver and Phoenix: equal in winter, an hour apart in summer.
    assert timezone_for_phone("+19286970123") is None


def test_zones_with_the_same_clock_count_as_one() -> None:
    # A UK mobile could be London, Guernsey, Jersey or the Isle of Man: all keep the same time.
    zone = timezone_for_phone("+447911123456")
    assert zone in {"Europe/London", "Europe/Guernsey", "Europe/Jersey", "Europe/Isle_of_Man"}


@pytest.mark.parametrize(
    ("phone", "zip_code", "country"),
    [
        (None, None, "US"),
        ("", "", "US"),
        ("+15555550123", None, "US"),  # 555: not a real area code
        ("+18005550123", None, "US"),  # toll-free: anywhere in North America
        ("not a phone", "not a zip", "US"),
        (None, "00000", "US"),
        (None, "09001", "US"),  # military mail (APO AE): no zone
        (None, "10001", "FR"),  # a French postcode is not a US ZIP
        (None, "123456", "US"),
    ],
)
def test_unknown_is_none(phone: str | None, zip_code: str | None, country: str) -> None:
    assert infer_timezone(phone, zip_code, country) is None


def test_national_number_uses_the_country() -> None:
    assert infer_timezone("(212) 555-0123", None) == "America/New_York"
    assert infer_timezone("06 12 34 56 78", None, country="FR") == "Europe/Paris"


@pytest.mark.parametrize(
    ("zip_code", "state"),
    [
        ("33101", "FL"),
        ("32099", "FL"),
        ("34997", "FL"),
        ("73102", "OK"),
        ("74101", "OK"),
        ("73301", "TX"),  # the IRS in Austin has an Oklahoma-looking ZIP
        ("75201", "TX"),
        ("10001", "NY"),
        ("00501", "NY"),
        ("20001", "DC"),
        ("96799", "AS"),
        ("96910", "GU"),
        ("abcde", None),
        ("", None),
    ],
)
def test_state_for_zip(zip_code: str, state: str | None) -> None:
    assert state_for_zip(zip_code) == state


FLORIDA = "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904"
FLORIDA += " 941 954"
OKLAHOMA = "405 539 572 580 918"


@pytest.mark.parametrize("area_code", FLORIDA.split())
def test_every_florida_area_code(area_code: str) -> None:
    assert state_for_phone(f"+1{area_code}5550123") == "FL"


@pytest.mark.parametrize("area_code", OKLAHOMA.split())
def test_every_oklahoma_area_code(area_code: str) -> None:
    assert state_for_phone(f"+1{area_code}5550123") == "OK"


@pytest.mark.parametrize(
    ("phone", "state"),
    [
        ("+12125550123", "NY"),
        ("+1 (415) 555-0123", "CA"),
        ("+12025550123", "DC"),
        ("+17875550123", "PR"),
        ("4155550123", "CA"),
        ("+14165550123", None),  # Toronto: NANP but Canada
        ("+18005550123", None),
        ("+442071234567", None),
        ("+1212555", None),
        ("", None),
    ],
)
def test_state_for_phone(phone: str, state: str | None) -> None:
    assert state_for_phone(phone) == state


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("America/New_York", True),
        ("Pacific/Honolulu", True),
        ("UTC", True),
        ("America/Nowhere", False),
        ("america/new_york", False),
        ("Etc/Unknown", False),
        ("localtime", False),
        ("", False),
    ],
)
def test_valid_timezone(name: str, valid: bool) -> None:
    assert valid_timezone(name) is valid
