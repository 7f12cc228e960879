"""Bounds on what Sika accepts from people and operators: amounts in francs, and text that
a person will read (names, places). Python refuses with a sentence naming the field; the
CHECK constraints of migrations/sql/bounds_001_checks.sql refuse the same in the database.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import ValidationError

# The largest amount, budget or price Sika takes: far above any real subsidy (Togo's
# whole state budget is about 2 x 10^12 francs a year), far below BIGINT's 9.2 x 10^18.
MAX_AMOUNT = 10**15
# The largest value of a ledger counter (and of any stored sum of amounts). Below 2^53
# (about 9.007 x 10^15), so a counter survives a JSON reader that holds numbers as
# doubles; and two counters, or a counter and thousands of amounts, add up without
# overflowing BIGINT, so the limit CHECKs' own sums never fail.
MAX_COUNTER = 9 * 10**15

# Characters that whitespace folding (str.split) would silently turn into a space, and
# so hide from str.isprintable: ASCII and C1 controls, line and paragraph separators.
_HIDDEN_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_amount(value: object, what: str, *, allow_zero: bool = False) -> int:
    """`value` if it is a whole number of francs from 1 (or 0) to 10^15, else a
    ValidationError naming `what` (an option such as `--amount`, or a key)."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be a whole number of francs, not {value!r}")
    if not low <= value <= MAX_AMOUNT:
        span = f"from 0 to {MAX_AMOUNT:,} francs" if allow_zero else (
            f"a positive number of francs up to {MAX_AMOUNT:,}"
        )
        raise ValidationError(f"{what} must be {span} (10^15), not {value:,}")
    return value


def check_balance(value: object, what: str) -> int:
    """`value` if it is a float or balance Sika can hold (0 to MAX_COUNTER francs), else a
    ValidationError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be a whole number of francs, not {value!r}")
    if not 0 <= value <= MAX_COUNTER:
        raise ValidationError(f"{what} must be from 0 to {MAX_COUNTER:,} francs, not {value:,}")
    return value


def check_count(value: int, what: str, *, low: int, high: int) -> int:
    """`value` if `low <= value <= high`, else a ValidationError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be a whole number from {low} to {high:,}")
    return value


def unreadable_character(value: str) -> str | None:
    """A description of the first character in `value` that a reader cannot see or that
    reorders the text around it (a control, zero-width, bidi or private-use character),
    or None when there is none.

    `str.isprintable` is false exactly for the categories Cc, Cf, Cs, Co, Cn, Zl, Zp and
    spaces other than ' ', and runs in C: the common case costs well under a microsecond.
    """
    if value.isprintable():
        return None
    for char in value:
        if char == " " or char.isprintable():
            continue
        if unicodedata.category(char) == "Zs":
            continue  # a no-break space is a space: folding turns it into ' '
        name = unicodedata.name(char, "")
        return f"U+{ord(char):04X}" + (f" {name}" if name else "")
    return None


def clean_text(value: str, what: str, *, max_chars: int) -> str:
    """`value` with its spaces folded and in NFC, or a ValidationError naming `what` when
    it is empty, longer than `max_chars` or holds a character `unreadable_character`
    refuses (a right-to-left override can make a name read as another)."""
    cleaned, problem = checked_text(value, max_chars=max_chars)
    if problem is not None:
        raise ValidationError(f"{what} {problem}")
    return cleaned


def checked_text(value: str, *, max_chars: int) -> tuple[str, str | None]:
    """(the text with runs of spaces as one ' ', ends trimmed, in NFC; what is wrong with
    it as the end of a sentence such as "is empty", or None). A registry checks millions
    of fields this way, so the common case, printable text, costs a few calls in C."""
    printable = value.isprintable()
    if not printable:
        hidden = _HIDDEN_CONTROLS.search(value)
        if hidden is not None:
            # a tab or new line inside a name is a paste accident at best, a disguise at worst
            return "", f"holds the control character U+{ord(hidden.group()):04X}"
    cleaned = " ".join(value.split())
    if not cleaned.isascii():
        cleaned = unicodedata.normalize("NFC", cleaned)
    if not cleaned:
        return cleaned, "is empty"
    if len(cleaned) > max_chars:
        return cleaned, f"is longer than {max_chars} characters"
    if not printable:
        bad = unreadable_character(cleaned)
        if bad is not None:
            return cleaned, f"holds the invisible or direction-changing character {bad}"
    return cleaned, None


def text_problem(value: str, *, max_chars: int) -> str | None:
    """What is wrong with a name-like text, as the end of a sentence ("is empty"), or None."""
    return checked_text(value, max_chars=max_chars)[1]
