"""Operators' daily statements (CSV) parsed into typed `StatementLine`s for reconciliation.

Parsing is strict: a wrong header, a bad date, a non-numeric amount or a truncated row
raises `StatementError` naming the line and the field, since a half-read statement would
make reconciliation invent breaks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

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


def _rows(
    provider: str, data: bytes, delimiter: str, columns: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementError(provider, 1, "file", f"not UTF-8: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise StatementError(provider, 1, "header", "empty file (no header line)")
        if tuple(h.strip() for h in header) != columns:
            expected, got = delimiter.join(columns), delimiter.join(header)
            raise StatementError(provider, 1, "header", f"expected {expected!r}, got {got!r}")
        for record in reader:
            number = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if len(record) != len(columns):
                field = columns[len(record)] if len(record) < len(columns) else "row"
                raise StatementError(
                    provider,
                    number,
                    field,
                    f"{len(record)} fields instead of {len(columns)} (truncated or shifted row)",
                )
            rows.append((number, dict(zip(columns, (c.strip() for c in record), strict=True))))
    except csv.Error as exc:
        raise StatementError(provider, reader.line_num, "row", f"bad CSV: {exc}") from exc
    return rows


def _amount(provider: str, line: int, field: str, value: str) -> int:
    if not value.isdigit():
        raise StatementError(provider, line, field, f"not a whole number of francs: {value!r}")
    return int(value)


def _date(provider: str, line: int, field: str, value: str, fmt: str) -> datetime:
    try:
        # Both operators write Lomé time, which is UTC all year round.
        return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise StatementError(provider, line, field, f"not a date {fmt!r}: {value!r}") from None


def _lookup(
    provider: str, line: int, field: str, value: str, table: Mapping[str, Kind | StatementStatus]
) -> Kind | StatementStatus:
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


def parse_flooz_statement(data: bytes) -> list[StatementLine]:
    """Flooz's `;`-separated export; the payee or payer is whichever party is not Sika."""
    out: list[StatementLine] = []
    for line, row in _rows("flooz", data, ";", FLOOZ_COLUMNS):
        kind = _lookup(
            "flooz", line, "Transaction Type", _flooz_kind(row["Transaction Type"]), FLOOZ_KINDS
        )
        # A payout goes to TOMSISDN; a collection comes from FRMSISDN; a reversal takes a
        # payout back, so the farmer is then the sender.
        party = row["TOMSISDN"] if kind is Kind.PAYOUT else row["FRMSISDN"]
        out.append(
            StatementLine(
                provider="flooz",
                line=line,
                operator_reference=_required(
                    "flooz", line, "Transaction ID", row["Transaction ID"]
                ),
                sika_reference=_required("flooz", line, "Reference", row["Reference"]),
                at=_date(
                    "flooz",
                    line,
                    "Transaction Initiated Time",
                    row["Transaction Initiated Time"],
                    "%d/%m/%Y %H:%M:%S",
                ),
                kind=Kind(kind),
                msisdn=party or None,
                amount=_amount("flooz", line, "Original Amount", row["Original Amount"]),
                fee=_amount("flooz", line, "Fee", row["Fee"] or "0"),
                status=StatementStatus(
                    _lookup("flooz", line, "Status", row["Status"], FLOOZ_STATUSES)
                ),
            )
        )
    return out


def parse_tmoney_statement(data: bytes) -> list[StatementLine]:
    """T-Money's `,`-separated export."""
    out: list[StatementLine] = []
    for line, row in _rows("tmoney", data, ",", TMONEY_COLUMNS):
        kind = _lookup("tmoney", line, "typeRequete", row["typeRequete"], TMONEY_KINDS)
        out.append(
            StatementLine(
                provider="tmoney",
                line=line,
                operator_reference=_required("tmoney", line, "refTmoney", row["refTmoney"]),
                sika_reference=_required("tmoney", line, "idRequete", row["idRequete"]),
                at=_date(
                    "tmoney", line, "dateHeureTmoney", row["dateHeureTmoney"], "%Y-%m-%d %H:%M:%S"
                ),
                kind=Kind(kind),
                msisdn=row["numeroClient"] or None,
                amount=_amount("tmoney", line, "montant", row["montant"]),
                fee=_amount("tmoney", line, "frais", row["frais"] or "0"),
                status=StatementStatus(
                    _lookup("tmoney", line, "statutRequete", row["statutRequete"], TMONEY_STATUSES)
                ),
            )
        )
    return out


PARSERS: dict[str, Callable[[bytes], list[StatementLine]]] = {
    "flooz": parse_flooz_statement,
    "tmoney": parse_tmoney_statement,
}
