"""OpenPAYGO Token generation for CIZO kits: input checks, splitting long credits, and the
French SMS that reads a token aloud. Pure functions; the caller stores counts and tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openpaygo import TokenType, generate_token

from cizo.models import TokenKind
from core.errors import ValidationError
from providers.sms import format_fcfa

# OpenPAYGO's largest ADD_TIME / SET_TIME value; the library wraps anything outside 0-995
MAX_DAYS = 995
_KEY = re.compile(r"^[0-9a-fA-F]{32}$")
_STARTING_CODE = re.compile(r"^[0-9]{9}$")
_TYPES = {
    TokenKind.ADD_TIME: TokenType.ADD_TIME,
    TokenKind.SET_TIME: TokenType.SET_TIME,
    TokenKind.DISABLE_PAYG: TokenType.DISABLE_PAYG,
}


@dataclass(frozen=True)
class IssuedToken:
    """A token as generated: its count, type, days (None for DISABLE_PAYG) and 9 digits."""

    count: int
    kind: TokenKind
    days: int | None
    token: str


def check_key(key: str) -> str:
    """The OpenPAYGO secret key as 32 lower-case hex characters, or a `ValidationError`."""
    cleaned = (key or "").strip()
    if not _KEY.match(cleaned):
        raise ValidationError("--opaygo-key must be exactly 32 hexadecimal characters")
    return cleaned.lower()


def check_starting_code(code: str) -> str:
    """The kit's 9-digit OpenPAYGO starting code, or a `ValidationError`."""
    cleaned = (code or "").strip()
    # the library silently derives a code from the key when given 0, so 0 is refused too
    if not _STARTING_CODE.match(cleaned) or int(cleaned) == 0:
        raise ValidationError("--starting-code must be 9 digits (not all zeros)")
    return cleaned


def check_days(days: int) -> int:
    """`days` if it is a value one token can carry (0 to 995), else a `ValidationError`."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
        raise ValidationError(f"--days must be a whole number from 0 to {MAX_DAYS}")
    return days


def split_days(days: int) -> list[int]:
    """`days` as chunks of at most 995 (one ADD_TIME token each): 2,000 → [995, 995, 10]."""
    if days < 0:
        raise ValidationError("days of credit cannot be negative")
    full, rest = divmod(days, MAX_DAYS)
    return [MAX_DAYS] * full + ([rest] if rest else [])


def issue(
    key: str, starting_code: str, count: int, kind: TokenKind, days: int | None = None
) -> IssuedToken:
    """The next token after `count` (the kit's last count used), checked before generation."""
    if kind is TokenKind.DISABLE_PAYG:
        if days is not None:
            raise ValidationError("a DISABLE_PAYG token carries no days")
        value = None
    else:
        value = check_days(days if days is not None else -1)
    new_count, token = generate_token(
        secret_key=check_key(key),
        count=count,
        value=value,
        token_type=_TYPES[kind],
        starting_code=int(check_starting_code(starting_code)),
    )
    return IssuedToken(int(new_count), kind, value, str(token))


def add_time(key: str, starting_code: str, count: int, days: int) -> list[IssuedToken]:
    """ADD_TIME tokens crediting `days` (several when more than 995), counts in order."""
    tokens: list[IssuedToken] = []
    for chunk in split_days(days):
        token = issue(key, starting_code, count, TokenKind.ADD_TIME, chunk)
        tokens.append(token)
        count = token.count
    return tokens


def spoken(token: str) -> str:
    """`123456789` → `123 456 789`: three groups a household can read and type."""
    return " ".join(token[i : i + 3] for i in range(0, len(token), 3))


def token_sms(
    serial: str, token: IssuedToken | None, *, amount: int, subsidy: int, remaining: int
) -> str:
    """The French message telling a household its payment and the code to type."""
    parts = [f"CIZO kit {serial} : paiement de {format_fcfa(amount)} reçu"]
    if subsidy:
        parts[0] += f", chèque solaire {format_fcfa(subsidy)}"
    parts[0] += "."
    if token is None:
        parts.append(f"Reste à payer : {format_fcfa(remaining)}.")
    else:
        parts.append(token_line(token))
        if token.kind is not TokenKind.DISABLE_PAYG:
            parts.append(f"Reste à payer : {format_fcfa(remaining)}.")
    return " ".join(parts)


def token_line(token: IssuedToken) -> str:
    """One sentence with the code to type and what it does, in French."""
    code = spoken(token.token)
    if token.kind is TokenKind.DISABLE_PAYG:
        return f"Kit payé, félicitations ! Code de déblocage définitif : {code}."
    unit = "jour" if token.days == 1 else "jours"
    if token.kind is TokenKind.SET_TIME:
        return f"Code de correction : {code} ({token.days} {unit})."
    return f"Code à saisir : {code} ({token.days} {unit})."
