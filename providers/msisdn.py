"""Togolese mobile numbers: parsing, normalising to `228XXXXXXXX`, and the default route.

libphonenumber decides what is a valid Togolese mobile number and which operator holds
its prefix. Since number portability (May 2024) a prefix is only a default: a registry
entry may override it.
"""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

from core.errors import ValidationError

_SCIENTIFIC = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$")
_ALLOWED = re.compile(r"^[\d\s.\-+()]+$")


class Operator(StrEnum):
    """Mobile-money operators Sika pays through."""

    FLOOZ = "flooz"
    TMONEY = "tmoney"


_CARRIERS = {"Moov": Operator.FLOOZ, "Togo Telecom": Operator.TMONEY, "Togocom": Operator.TMONEY}


class InvalidMsisdn(ValidationError):
    """A phone number that is not a valid Togolese mobile number."""


def normalise(text: str) -> str:
    """`+228 90 12 34 56`, `0022890123456`, `90.12.34.56`… → `22890123456`.

    Raises `InvalidMsisdn` with the reason for anything else.
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidMsisdn("phone number is empty")
    if _SCIENTIFIC.match(raw):
        raise InvalidMsisdn(
            f"{raw!r} is in scientific notation, as a spreadsheet writes long numbers: "
            "format the column as text and export again"
        )
    if not _ALLOWED.match(raw):
        raise InvalidMsisdn(f"{raw!r} contains characters a phone number cannot have")
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") or digits.startswith("00228"):
        digits = digits.removeprefix("00")
    elif len(digits) == 11 and digits.startswith("228"):
        pass
    elif len(digits) != 8:
        raise InvalidMsisdn(
            f"{raw!r} has {len(digits)} digits: a Togolese number has 8 after +228"
        )
    else:
        digits = "228" + digits
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidMsisdn(f"{raw!r} is not a phone number: {exc}") from exc
    if number.country_code != 228:
        raise InvalidMsisdn(f"{raw!r} is not a Togolese number (+228)")
    if len(str(number.national_number)) != 8:
        raise InvalidMsisdn(f"{raw!r} does not have 8 digits after +228")
    if not phonenumbers.is_valid_number(number):
        raise InvalidMsisdn(f"{raw!r} is not a number in use in Togo")
    if phonenumbers.number_type(number) != PhoneNumberType.MOBILE:
        raise InvalidMsisdn(f"{raw!r} is not a mobile number")
    return f"228{number.national_number:08d}"


def default_operator(msisdn: str) -> Operator:
    """The operator that holds the number's prefix (libphonenumber's carrier data)."""
    number = phonenumbers.parse("+" + normalise(msisdn), None)
    name = carrier.name_for_number(number, "en")
    try:
        return _CARRIERS[name]
    except KeyError:
        raise InvalidMsisdn(f"{msisdn!r}: no mobile-money operator for carrier {name!r}") from None


def route(msisdn: str, override: Operator | str | None = None) -> Operator:
    """The operator to pay `msisdn` through: a registry override, else the prefix default."""
    if override:
        return Operator(override)
    return default_operator(msisdn)


def mask(msisdn: str) -> str:
    """`22890123412` → `22890****12`, for logs and screens."""
    return f"{msisdn[:5]}****{msisdn[-2:]}" if len(msisdn) == 11 else "****"
