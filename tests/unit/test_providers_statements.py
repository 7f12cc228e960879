"""Statement parsing: both operators' CSV exports into typed lines, and precise refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import Kind, StatementError, StatementStatus
from providers.statements import (
    iter_flooz_statement,
    iter_tmoney_statement,
    parse_flooz_statement,
    parse_tmoney_statement,
)

FLOOZ = (
    "Transaction ID;Transaction Initiated Time;FRMSISDN;TOMSISDN;FRNAME;TONAME;"
    "Transaction Type;Original Amount;Fee;Reference;Status\n"
    "F1;23/11/2026 09:08:46;22899999999;22896000001;SIKA;Afi Mensah;B2C payout;9000;0;AGR-1;"
    "SUCCESS\n"
    "F2;23/11/2026 10:00:00;22896000008;22899999999;Kodjo;SIKA;REVERSAL;9000;0;AGR-8;SUCCESS\n"
    "F3;23/11/2026 11:00:00;22896000003;22899999999;Ama;SIKA;C2B collection;160;5;CZ-1;FAILED\n"
)
TMONEY = (
    "refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,statutRequete\n"
    "T1,AGR-2,2026-11-23 09:08:46,CREDIT,22890000001,40000,0,SUCCES\n"
    "T2,CZ-2,2026-11-23 09:10:00,DEBIT,22890000003,160,0,EN_COURS\n"
)


def test_flooz_statement_reads_every_field() -> None:
    lines = parse_flooz_statement(FLOOZ.encode())
    assert [
        (
            x.operator_reference,
            x.sika_reference,
            x.kind,
            x.msisdn,
            x.amount,
            x.fee,
            x.status,
            x.line,
        )
        for x in lines
    ] == [
        ("F1", "AGR-1", Kind.PAYOUT, "22896000001", 9000, 0, StatementStatus.SUCCEEDED, 2),
        ("F2", "AGR-8", Kind.REVERSAL, "22896000008", 9000, 0, StatementStatus.SUCCEEDED, 3),
        ("F3", "CZ-1", Kind.COLLECTION, "22896000003", 160, 5, StatementStatus.FAILED, 4),
    ]
    assert lines[0].at == datetime(2026, 11, 23, 9, 8, 46, tzinfo=UTC)


def test_tmoney_statement_reads_every_field() -> None:
    lines = parse_tmoney_statement(TMONEY.encode())
    assert [(x.operator_reference, x.sika_reference, x.kind, x.status) for x in lines] == [
        ("T1", "AGR-2", Kind.PAYOUT, StatementStatus.SUCCEEDED),
        ("T2", "CZ-2", Kind.COLLECTION, StatementStatus.PENDING),
    ]
    assert lines[0].at.tzinfo is UTC
    assert lines[0].amount == 40000


def test_header_only_is_an_empty_statement() -> None:
    assert parse_tmoney_statement(TMONEY.splitlines()[0].encode() + b"\n") == []


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (TMONEY.replace("40000", "4O000"), 2, "montant"),
        (TMONEY.replace("2026-11-23 09:08:46", "23/11/2026 09:08"), 2, "dateHeureTmoney"),
        (TMONEY.replace("EN_COURS", "MAYBE"), 3, "statutRequete"),
        (TMONEY.replace("refTmoney", "ref"), 1, "header"),
        (TMONEY[:-25], 3, "montant"),  # truncated mid-row
        ("", 1, "header"),
        (TMONEY.replace(",DEBIT,", ",DEBIT,,"), 3, "row"),
    ],
)
def test_tmoney_malformed_names_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(StatementError) as caught:
        parse_tmoney_statement(text.encode())
    assert (caught.value.line, caught.value.field) == (line, field)
    assert f"line {line}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (FLOOZ.replace(";9000;0;AGR-1", ";9 000;0;AGR-1"), 2, "Original Amount"),
        (
            FLOOZ.replace("23/11/2026 10:00:00", "2026-11-23 10:00:00"),
            3,
            "Transaction Initiated Time",
        ),
        (FLOOZ.replace("B2C payout", "GIFT"), 2, "Transaction Type"),
        (FLOOZ.replace(";AGR-1;", ";;"), 2, "Reference"),
        (FLOOZ[:-30], 4, "Original Amount"),
    ],
)
def test_flooz_malformed_names_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(StatementError) as caught:
        parse_flooz_statement(text.encode())
    assert (caught.value.line, caught.value.field) == (line, field)


def test_statement_error_is_a_validation_error() -> None:
    from core.errors import ValidationError

    assert issubclass(StatementError, ValidationError)


_REF = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=20)
_LINE = st.tuples(
    _REF,
    _REF,
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    st.sampled_from(["CREDIT", "DEBIT", "REVERSAL"]),
    st.integers(min_value=90_000_000, max_value=93_999_999),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["SUCCES", "ECHEC", "EN_COURS"]),
)


@given(st.lists(_LINE, max_size=20))
def test_tmoney_statement_round_trips(rows: list[tuple]) -> None:
    # Given any statement the operator could write
    text = (
        TMONEY.splitlines()[0]
        + "\r\n"
        + "".join(
            f"{a},{b},{at:%Y-%m-%d %H:%M:%S},{kind},228{n},{amount},{fee},{status}\r\n"
            for a, b, at, kind, n, amount, fee, status in rows
        )
    )
    # When parsed, Then every line reads back field for field, in order
    lines = parse_tmoney_statement(text.encode())
    assert [
        (
            x.operator_reference,
            x.sika_reference,
            x.at.replace(tzinfo=None),
            x.msisdn,
            x.amount,
            x.fee,
        )
        for x in lines
    ] == [
        (a, b, at.replace(microsecond=0), f"228{n}", amount, fee)
        for a, b, at, _k, n, amount, fee, _s in rows
    ]


def test_rows_stream_up_to_the_first_malformed_line() -> None:
    # Given a statement whose third line is malformed
    rows = iter_tmoney_statement(TMONEY.replace("EN_COURS", "MAYBE").encode())
    # When it is read a row at a time, Then the good line comes before the refusal
    assert next(rows).operator_reference == "T1"
    with pytest.raises(StatementError) as caught:
        next(rows)
    assert (caught.value.line, caught.value.field) == (3, "statutRequete")


def test_rows_carry_what_the_typed_lines_carry() -> None:
    for rows, lines in (
        (iter_flooz_statement(FLOOZ.encode()), parse_flooz_statement(FLOOZ.encode())),
        (iter_tmoney_statement(TMONEY.encode()), parse_tmoney_statement(TMONEY.encode())),
    ):
        assert [r._asdict() for r in rows] == [x.model_dump(exclude={"provider"}) for x in lines]


def test_bytes_that_are_not_utf8_are_refused_at_their_line() -> None:
    text = TMONEY.encode().replace(b"T2,", b"T\xff,")
    with pytest.raises(StatementError) as caught:
        parse_tmoney_statement(text)
    assert (caught.value.line, caught.value.field) == (3, "file")


def test_an_amount_the_database_cannot_hold_is_refused() -> None:
    with pytest.raises(StatementError) as caught:
        parse_tmoney_statement(TMONEY.replace(",40000,", f",{10**19},").encode())
    assert (caught.value.line, caught.value.field) == (2, "montant")


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.booleans(),
)
def test_dates_read_as_strptime_reads_them(at: datetime, padded: bool) -> None:
    # Given a date as each operator writes it, zero-padded or not (strptime takes both)
    at = at.replace(microsecond=0)
    if padded:
        tmoney, flooz = f"{at:%Y-%m-%d %H:%M:%S}", f"{at:%d/%m/%Y %H:%M:%S}"
    else:
        tmoney = f"{at.year:04d}-{at.month}-{at.day} {at.hour}:{at.minute}:{at.second}"
        flooz = f"{at.day}/{at.month}/{at.year:04d} {at.hour}:{at.minute}:{at.second}"
    # When read, Then it is that moment in UTC (Lomé time)
    t_line = parse_tmoney_statement(TMONEY.replace("2026-11-23 09:08:46", tmoney).encode())[0]
    f_line = parse_flooz_statement(FLOOZ.replace("23/11/2026 09:08:46", flooz).encode())[0]
    assert t_line.at == f_line.at == at.replace(tzinfo=UTC)
    assert t_line.at.tzinfo is f_line.at.tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-02-30 10:00:00", "2026-11-23 24:00:00", "2026-11-23"])
def test_impossible_dates_are_refused(value: str) -> None:
    with pytest.raises(StatementError) as caught:
        parse_tmoney_statement(TMONEY.replace("2026-11-23 09:08:46", value).encode())
    assert (caught.value.line, caught.value.field) == (2, "dateHeureTmoney")
