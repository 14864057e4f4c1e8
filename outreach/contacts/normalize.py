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
_PHONE_JUNK = re.compile(r"[\s().\-/]+")
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
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email: {exc}") from None
    return result.normalized.lower()


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
