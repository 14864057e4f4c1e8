"""The fast paths of address normalization give exactly the libraries' answers."""

from __future__ import annotations

import re

import pytest
from email_validator import EmailNotValidError, validate_email

from outreach.contacts import normalize
from outreach.contacts.normalize import InvalidAddress, normalize_email, normalize_phone

BAD_EMAILS = [
    "bob1@", "bob2@", "no-at-sign1.org", "no-at-sign2.org", "a1@b", "a2@b",
    "jane1@@example.com", "jane2@@example.com", "jane1@example", "jane2@example",
    "x@exa mple.com", "y@exa mple.com", "x@example.test", "y@example.test",
    "x@-bad-.com", "x@bad..com", 'x@"quoted".com', "x@<b>.com", "<x@example",
    '"unclosed@example.com', "x@example.com>", "joe..bloggs@example.com",
    ".dot@example.com", "x@example.c", "x@.example.com", "x@example.com.", "plain",
    "a b", '"a b"', "<no at>", "x@" + "a" * 64 + ".com", "x@192.168.0.1",
    "x@[192.168.0.1]", "x@localhost", "x@\u0301example.com",
]


def _library_says(value: str) -> str | None:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"invalid email: {exc}"
    return None


def _we_say(value: str) -> str | None:
    try:
        normalize_email(value)
    except InvalidAddress as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("rounds", [1, 2])  # the second round answers from what the first learned
def test_refusals_are_the_libraries_word_for_word(monkeypatch, rounds):
    monkeypatch.setattr(normalize, "_DOMAIN_ERRORS", {})
    for _ in range(rounds):
        for value in BAD_EMAILS:
            assert _we_say(value) == _library_says(value), value
    assert normalize._DOMAIN_ERRORS  # and it did learn something


def test_a_refusal_of_the_whole_address_is_not_taken_for_its_domain(monkeypatch):
    monkeypatch.setattr(normalize, "_DOMAIN_ERRORS", {})
    long_local = ".".join(["a" * 60] * 4)  # plain dot-atom, too long as a whole
    assert _we_say(long_local + "@example.org") == _library_says(long_local + "@example.org")
    assert _we_say(long_local + "@example.org") is not None
    assert normalize_email("Short@Example.org") == "short@example.org"
    assert "example.org" not in normalize._DOMAIN_ERRORS


def test_valid_addresses_still_pass(monkeypatch):
    monkeypatch.setattr(normalize, "_DOMAIN_ERRORS", {})
    with pytest.raises(InvalidAddress):
        normalize_email("x@example")  # teaches it that "example" is refused
    assert normalize_email(" Jose.Garcia+news@Gmail.COM ") == "jose.garcia+news@gmail.com"
    assert normalize_email("zoë@example.org") == "zoë@example.org"


def _regex_compact(value: str) -> str:
    return re.sub(r"[\s().\-/]+", "", value)


@pytest.mark.parametrize("raw", [
    "(212) 555-0123", "212.555.0123", "+1 212 555 0123", "1-212-555-0123", "2125550123",
    "212/555-0123", "212\t555\u00a00123", "212\u2009555\u20030123", "001 212 555 0123",
    "+44 20 7946 0958", "+", "++12125550123", "212-555-012", "(212) 555-0123 x12",
    "\uff12\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff12\uff13", "809 555 0123",
])
def test_phone_separators_are_dropped_as_the_regex_drops_them(monkeypatch, raw):
    def answer() -> str:
        try:
            return normalize_phone(raw)
        except InvalidAddress as exc:
            return f"refused: {exc}"

    fast = answer()
    compact = raw.translate(normalize._SEPARATORS)
    if compact.isascii() and compact.lstrip("+").isdigit():
        assert compact == _regex_compact(raw)
    monkeypatch.setattr(normalize, "_SEPARATORS", {})  # nothing dropped: the regex decides
    assert fast == answer(), raw
