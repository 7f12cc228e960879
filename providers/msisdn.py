"""Togolese mobile numbers: parsing, normalising to `228XXXXXXXX`, and the default route.

libphonenumber decides what is a valid Togolese mobile number and which operator holds
its prefix. Since number portability (May 2024) a prefix is only a default: a registry
entry may override it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

from core.errors import ValidationError

_SCIENTIFIC = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$")
_ALLOWED = re.compile(r"^[\d\s.\-+()]+$")


class Operator(StrEnum):
    """Mobile-money operators Sika pays through."""

    FLOOZ = "flooz"
    TMONEY = "tmoney"


# libphonenumber's number types in the order it tests them: the first whose description
# matches wins, so a number is MOBILE only when none of these matched before.
_TYPES_BEFORE_MOBILE = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)

_CARRIERS = {"Moov": Operator.FLOOZ, "Togo Telecom": Operator.TMONEY, "Togocom": Operator.TMONEY}


class InvalidMsisdn(ValidationError):
    """A phone number that is not a valid Togolese mobile number."""


@cache
def _togo_mobile_test() -> Callable[[str], bool] | None:
    """A test that an 8-digit national number is a Togolese mobile, built from
    libphonenumber's own metadata, or None when the metadata has a shape it does not cover.

    It answers exactly what `parse` + `is_valid_number` + `number_type(...) == MOBILE` do
    for a canonical `228XXXXXXXX`, at a fraction of the cost: a million-row registry import
    spends most of its time there otherwise.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("TG")
    if (
        metadata is None
        or metadata.country_code != 228
        or metadata.national_prefix_for_parsing
        or metadata.same_mobile_and_fixed_line_pattern
        or phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(228) != ("TG",)
    ):
        return None

    def matcher(desc: Any) -> Callable[[str], bool] | None:
        # libphonenumber: no description or an empty pattern never matches, and a
        # description listing possible lengths is skipped for any other length
        if desc is None or not desc.national_number_pattern:
            return None
        pattern = re.compile(desc.national_number_pattern)
        lengths = tuple(desc.possible_length or ())
        return lambda nsn: (
            (not lengths or len(nsn) in lengths) and (pattern.fullmatch(nsn) is not None)
        )

    general, mobile = matcher(metadata.general_desc), matcher(metadata.mobile)
    if general is None or mobile is None:
        return None
    others = [m for m in (matcher(getattr(metadata, n)) for n in _TYPES_BEFORE_MOBILE) if m]

    def is_mobile(nsn: str) -> bool:
        return general(nsn) and mobile(nsn) and not any(other(nsn) for other in others)

    return is_mobile


def normalise(text: str) -> str:
    """`+228 90 12 34 56`, `0022890123456`, `90.12.34.56`… → `22890123456`.

    Raises `InvalidMsisdn` with the reason for anything else.
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidMsisdn("phone number is empty")
    if raw.isdigit() and raw.isascii():
        # plain ASCII digits, the usual cell: neither check below can refuse them
        digits = raw
    elif _SCIENTIFIC.match(raw):
        raise InvalidMsisdn(
            f"{raw!r} is in scientific notation, as a spreadsheet writes long numbers: "
            "format the column as text and export again"
        )
    elif not _ALLOWED.match(raw):
        raise InvalidMsisdn(f"{raw!r} contains characters a phone number cannot have")
    else:
        digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") or digits.startswith("00228"):
        digits = digits.removeprefix("00")
    elif len(digits) == 8:
        digits = "228" + digits
    elif not (len(digits) == 11 and digits.startswith("228")):
        raise InvalidMsisdn(f"{raw!r} has {len(digits)} digits: a Togolese number has 8 after +228")
    # fast path for the usual case; anything it does not accept is judged (and its error
    # worded) by the full libphonenumber path below
    if len(digits) == 11 and digits.isascii() and digits.startswith("228") and digits[3] != "0":
        is_mobile = _togo_mobile_test()
        if is_mobile is not None and is_mobile(digits[3:]):
            return digits
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


_NUMBER_IN_TEXT = re.compile(r"(?<!\d)(\+?228)?(\d{2})\d{4}(\d{2})(?!\d)")


def mask_text(text: str) -> str:
    """Every Togolese number in free text (an operator's raw answer) masked as `mask` does."""
    return _NUMBER_IN_TEXT.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(3)}", text)
