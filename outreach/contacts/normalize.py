"""Normalizing and validating addresses: email (syntax only) and phone numbers to E.164.

Imports check a million rows, so the common cases take a fast path that gives the same answer
as the libraries (`email-validator`, `phonenumbers`); anything unusual goes to the library.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Plain ASCII addresses: dot-atom local part, hostname labels, an alphabetic TLD.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE_EMAIL = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{2,63}})")
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
# Why email-validator refused the part after the first @-sign, per such part: bad addresses
# in big files repeat a few bad domains ("gmail", "example", nothing), and the library takes
# ~100 us per address, so a file with 5% of them spends more there than on all the others.
_DOMAIN_ERRORS: dict[str, str] = {}
_DOMAIN_ERRORS_MAX = 10_000
_PHONE_JUNK = re.compile(r"[\s().\-/]+")
_SEPARATORS = str.maketrans("", "", " ().-/\t\n\r\x0b\x0c")  # ASCII ones _PHONE_JUNK drops
_NANP = re.compile(r"\+?1?([2-9]\d{2})([2-9]\d{6})")
# email-validator refuses these special-use domains even without DNS checks.
_SPECIAL_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}


class InvalidAddress(ValueError):
    """An email address or phone number that cannot be used; the message says why."""


def normalize_email(raw: str) -> str:
    """Trim, check the syntax and lower-case the domain (and, by custom, the whole address)."""
    value = raw.strip()
    if not value:
        raise InvalidAddress("empty email")
    match = _SIMPLE_EMAIL.fullmatch(value)
    if (match and len(match["local"]) <= 64 and len(value) <= 254
            and match["domain"].rsplit(".", 1)[1].lower() not in _SPECIAL_TLDS):
        return value.lower()
    key = _error_key(value)
    if key is not None and (known := _DOMAIN_ERRORS.get(key)) is not None:
        raise InvalidAddress(known)
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        if key is not None and len(_DOMAIN_ERRORS) < _DOMAIN_ERRORS_MAX:
            _remember_error(key)
        raise InvalidAddress(f"invalid email: {exc}") from None
    return result.normalized.lower()


_NO_AT_SIGN = "\0"  # the key of ASCII values without any @-sign (no part after one is "\0")


def _error_key(value: str) -> str | None:
    """What email-validator's verdict on this value depends on alone, if that is known.

    When all before the first @-sign is a plain ASCII dot-atom, the library always finds that
    part valid, and judges the part after it before anything involving the whole address (its
    length): a refusal is then the same for every address sharing that part, the key. An ASCII
    value with no @-sign (nor the "<" of a display name) is always refused the same way.
    """
    if not value.isascii():
        return None  # Unicode normalization may join characters across the @-sign
    local, at, domain = value.partition("@")
    if not at:
        return None if "<" in value else _NO_AT_SIGN
    return domain if _DOT_ATOM.fullmatch(local) and "\0" not in domain else None


def _remember_error(key: str) -> None:
    """Record why email-validator refuses the values of this key, if it does for all of them.

    A stand-in with the shortest plain part before the @-sign tells it; nothing is recorded
    when the stand-in is valid (the refusal came from the whole address) or could be too long.
    """
    if key == _NO_AT_SIGN:
        stand_in = "a"
    elif len(key) <= 250:
        stand_in = "a@" + key
    else:
        return
    try:
        validate_email(stand_in, check_deliverability=False)
    except EmailNotValidError as exc:
        _DOMAIN_ERRORS[key] = f"invalid email: {exc}"


@lru_cache(maxsize=2048)
def open_area(npa: str) -> bool:
    """Whether phonenumbers accepts every exchange of this US or Canadian area code.

    Most area codes accept any NXX exchange, so the check is done once per area code; areas
    whose metadata lists exchanges (Caribbean members, new overlays) take the library's path.
    """
    for exchange in ("200", "234", "345", "456", "555", "678", "789", "890", "999"):
        number = phonenumbers.parse(f"+1{npa}{exchange}1234", None)
        if (phonenumbers.region_code_for_number(number) not in ("US", "CA")
                or not phonenumbers.is_valid_number(number)):
            return False
    return True


def normalize_phone(raw: str, region: str = "US") -> str:
    """Parse a phone number written in any common way and return it in E.164."""
    value = raw.strip()
    if not value:
        raise InvalidAddress("empty phone")
    if region in ("US", "CA") or value.startswith(("+1", "001")):
        # str.translate drops the usual separators several times faster than the regex; the
        # regex still decides whenever anything but ASCII digits and "+" is left over.
        compact = value.translate(_SEPARATORS)
        if not (compact.isascii() and compact.lstrip("+").isdigit()):
            compact = _PHONE_JUNK.sub("", value)
        if compact.startswith("001"):
            compact = "+" + compact[2:]
        match = _NANP.fullmatch(compact)
        if match and (len(compact) == 10 or compact.startswith(("1", "+1"))):
            npa, rest = match.groups()
            if open_area(npa):
                return f"+1{npa}{rest}"
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"invalid phone: {exc._msg}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress("invalid phone: not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
