"""Operators' daily statements (CSV) read strictly, line by line, for reconciliation.

`iter_*_statement` yields light `StatementRow`s as the file is read, so a million lines
stream into the database without a million models; `parse_*_statement` builds the typed
`StatementLine`s for callers that want the whole statement. A wrong header, a bad date, a
non-numeric amount or a truncated row raises `StatementError` naming the line and the
field, since a half-read statement would make reconciliation invent breaks.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from core import csvsafe
from core.bounds import MAX_AMOUNT
from providers.base import Kind, StatementError, StatementLine, StatementStatus

FLOOZ_COLUMNS = (
    "Transaction ID",
    "Transaction Initiated Time",
    "FRMSISDN",
    "TOMSISDN",
    "FRNAME",
    "TONAME",
    "Transaction Type",
    "Original Amount",
    "Fee",
    "Reference",
    "Status",
)
TMONEY_COLUMNS = (
    "refTmoney",
    "idRequete",
    "dateHeureTmoney",
    "typeRequete",
    "numeroClient",
    "montant",
    "frais",
    "statutRequete",
)

FLOOZ_KINDS = {"B2C": Kind.PAYOUT, "C2B": Kind.COLLECTION, "REVERSAL": Kind.REVERSAL}
FLOOZ_STATUSES = {
    "SUCCESS": StatementStatus.SUCCEEDED,
    "FAILED": StatementStatus.FAILED,
    "PENDING": StatementStatus.PENDING,
}
TMONEY_KINDS = {"CREDIT": Kind.PAYOUT, "DEBIT": Kind.COLLECTION, "REVERSAL": Kind.REVERSAL}
TMONEY_STATUSES = {
    "SUCCES": StatementStatus.SUCCEEDED,
    "ECHEC": StatementStatus.FAILED,
    "EN_COURS": StatementStatus.PENDING,
}


class StatementRow(NamedTuple):
    """One statement line as read: `StatementLine`'s fields without the provider, as a
    tuple, because reconciliation streams millions of them and keeps none."""

    line: int
    operator_reference: str
    sika_reference: str
    at: datetime
    kind: Kind
    msisdn: str | None
    amount: int
    fee: int
    status: StatementStatus


_T = TypeVar("_T", Kind, StatementStatus)


def _records(
    provider: str, data: bytes, delimiter: str, columns: tuple[str, ...]
) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of each non-blank row after a checked header."""
    try:
        # checked whole before the first row, so an ASCII file is not copied to do it
        if not data.isascii():
            data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise StatementError(provider, line, "file", f"not UTF-8: {exc}") from exc
    # decoded as it is read, so the statement is never held a second time as text
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    width = len(columns)
    reader = csvsafe.records(stream, delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise StatementError(provider, 1, "header", "empty file (no header line)")
        if tuple(h.strip() for h in header.cells) != columns:
            expected, got = delimiter.join(columns), delimiter.join(header.cells)
            raise StatementError(provider, 1, "header", f"expected {expected!r}, got {got!r}")
        for _number, line, record in reader:
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            if len(cells) != width:
                field = columns[len(cells)] if len(cells) < width else "row"
                raise StatementError(
                    provider,
                    line,
                    field,
                    f"{len(cells)} fields instead of {width} (truncated or shifted row)",
                )
            yield line, cells
    except csvsafe.CsvFormatError as exc:
        raise StatementError(provider, exc.line, exc.field(columns), exc.message) from None


# Longer digit strings are refused before int() reads them (int() of a huge string is slow).
_AMOUNT_DIGITS = len(str(MAX_AMOUNT))


def _amount(provider: str, line: int, field: str, value: str) -> int:
    if value.isdigit() and value.isascii():
        if len(value) <= _AMOUNT_DIGITS and int(value) <= MAX_AMOUNT:
            return int(value)
        raise StatementError(
            provider, line, field, f"{value[:20]!r} is more than {MAX_AMOUNT:,} francs (10^15)"
        )
    raise StatementError(provider, line, field, f"not a whole number of francs: {value[:40]!r}")


class _When:
    """A statement's date format. strptime costs microseconds a line, so the layout the
    operator writes is matched and read by `fromisoformat` in C; anything else still goes
    through strptime, so exactly the same dates are accepted."""

    def __init__(self, fmt: str, pattern: str, iso: Callable[[re.Match[str]], str]) -> None:
        self.fmt = fmt
        self.pattern = re.compile(pattern)
        self.iso = iso

    def read(self, provider: str, line: int, field: str, value: str) -> datetime:
        try:
            found = self.pattern.fullmatch(value)
            if found is not None:
                return datetime.fromisoformat(self.iso(found))
            # Both operators write Lomé time, which is UTC all year round.
            return datetime.strptime(value, self.fmt).replace(tzinfo=UTC)
        except ValueError:
            raise StatementError(
                provider, line, field, f"not a date {self.fmt!r}: {value!r}"
            ) from None


_FLOOZ_AT = _When(
    "%d/%m/%Y %H:%M:%S",
    r"([0-9]{2})/([0-9]{2})/([0-9]{4}) ([0-9]{2}:[0-9]{2}:[0-9]{2})",
    lambda m: f"{m[3]}-{m[2]}-{m[1]} {m[4]}+00:00",
)
_TMONEY_AT = _When(
    "%Y-%m-%d %H:%M:%S",
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
    lambda m: f"{m[0]}+00:00",
)


def _lookup(provider: str, line: int, field: str, value: str, table: Mapping[str, _T]) -> _T:
    try:
        return table[value.upper()]
    except KeyError:
        raise StatementError(
            provider, line, field, f"unknown value {value!r} (expected one of {sorted(table)})"
        ) from None


def _required(provider: str, line: int, field: str, value: str) -> str:
    if not value:
        raise StatementError(provider, line, field, "empty")
    return value


def _flooz_kind(value: str) -> str:
    # The export writes "B2C payout" / "C2B collection": the first word carries the type.
    return value.split()[0] if value.split() else value


def iter_flooz_statement(data: bytes) -> Iterator[StatementRow]:
    """Flooz's `;`-separated export, a row at a time; the payee or payer is whichever
    party is not Sika."""
    for line, cells in _records("flooz", data, ";", FLOOZ_COLUMNS):
        reference, at, sender, receiver, _, _, kind, amount, fee, sika, status = cells
        parsed = _lookup("flooz", line, "Transaction Type", _flooz_kind(kind), FLOOZ_KINDS)
        # A payout goes to TOMSISDN; a collection comes from FRMSISDN; a reversal takes a
        # payout back, so the farmer is then the sender.
        party = receiver if parsed is Kind.PAYOUT else sender
        yield StatementRow(
            line,
            _required("flooz", line, "Transaction ID", reference),
            _required("flooz", line, "Reference", sika),
            _FLOOZ_AT.read("flooz", line, "Transaction Initiated Time", at),
            parsed,
            party or None,
            _amount("flooz", line, "Original Amount", amount),
            _amount("flooz", line, "Fee", fee or "0"),
            _lookup("flooz", line, "Status", status, FLOOZ_STATUSES),
        )


def iter_tmoney_statement(data: bytes) -> Iterator[StatementRow]:
    """T-Money's `,`-separated export, a row at a time."""
    for line, cells in _records("tmoney", data, ",", TMONEY_COLUMNS):
        reference, sika, at, kind, number, amount, fee, status = cells
        parsed = _lookup("tmoney", line, "typeRequete", kind, TMONEY_KINDS)
        yield StatementRow(
            line,
            _required("tmoney", line, "refTmoney", reference),
            _required("tmoney", line, "idRequete", sika),
            _TMONEY_AT.read("tmoney", line, "dateHeureTmoney", at),
            parsed,
            number or None,
            _amount("tmoney", line, "montant", amount),
            _amount("tmoney", line, "frais", fee or "0"),
            _lookup("tmoney", line, "statutRequete", status, TMONEY_STATUSES),
        )


def parse_flooz_statement(data: bytes) -> list[StatementLine]:
    """Flooz's export as typed lines, in file order."""
    return [StatementLine(provider="flooz", **row._asdict()) for row in iter_flooz_statement(data)]


def parse_tmoney_statement(data: bytes) -> list[StatementLine]:
    """T-Money's export as typed lines, in file order."""
    return [
        StatementLine(provider="tmoney", **row._asdict()) for row in iter_tmoney_statement(data)
    ]


# what reconciliation reads each operator's statement with
READERS: dict[str, Callable[[bytes], Iterator[StatementRow]]] = {
    "flooz": iter_flooz_statement,
    "tmoney": iter_tmoney_statement,
}
