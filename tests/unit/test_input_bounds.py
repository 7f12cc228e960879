"""Bounds on untrusted input, in Python: amounts up to 10^15, names without invisible or
direction-changing characters, CSV that cannot mislead its reader, exports that cannot run
as spreadsheet formulas, callback parse errors without phone numbers."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from agripme.seasons import parse_rules
from core import csvsafe
from core.bounds import MAX_AMOUNT, check_amount, text_problem
from core.errors import ValidationError
from ledger import api
from ledger.types import Transfer
from providers.base import StatementError
from providers.receiver import parse_error_summary
from providers.statements import TMONEY_COLUMNS, parse_tmoney_statement
from reconciliation.reports import CSV_COLUMNS, render_csv

HUGE = 2**63 - 1


# --- amounts -----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [HUGE, 2**63, MAX_AMOUNT + 1, 0, -5])
def test_a_transfer_out_of_bounds_is_refused_in_one_sentence(amount: int) -> None:
    with pytest.raises(ValidationError, match=r"transfer t1: the amount .*10\^15"):
        Transfer.single("t1", "a", "b", amount)


def test_the_largest_amount_is_accepted() -> None:
    assert Transfer.single("t1", "a", "b", MAX_AMOUNT).amount == MAX_AMOUNT
    assert check_amount(0, "--fixed", allow_zero=True) == 0


def test_batches_that_bypass_transfer_objects_are_bounded_too() -> None:
    # reserve() and settle() build no Transfer per line: they check the column at once
    with pytest.raises(ValidationError, match=r"amount 2 of the batch"):
        api._reserve_amounts([5, HUGE])
    with pytest.raises(ValidationError, match=r"amount 1 of the batch"):
        api._check_columns(["x:post"], [MAX_AMOUNT + 1])


@pytest.mark.parametrize(
    ("rules", "key"),
    [
        ({"budget": HUGE}, "budget"),
        ({"per_bag": HUGE}, "per_bag"),
        ({"max_bags": HUGE}, "max_bags"),
        ({"per_bag": MAX_AMOUNT, "max_bags": 3}, "per_bag x max_bags"),
    ],
)
def test_season_budgets_and_per_bag_amounts_are_bounded(rules: dict, key: str) -> None:
    base = {"per_bag": 4000, "max_bags": 3, "budget": 50_000_000, "bands": [{"bags": 1}]}
    with pytest.raises(ValidationError, match=re.escape(key)):
        parse_rules({**base, **rules})


def test_a_statement_amount_over_the_bound_names_its_line_and_field() -> None:
    header = ",".join(TMONEY_COLUMNS) + "\n"
    line = "T1,AGR-1,2026-11-30 10:00:00,CREDIT,22890000001,{},0,SUCCES\n"
    assert parse_tmoney_statement((header + line.format(MAX_AMOUNT)).encode())[0].amount == (
        MAX_AMOUNT
    )
    with pytest.raises(StatementError, match=r"line 2, field 'montant'.*10\^15"):
        parse_tmoney_statement((header + line.format(MAX_AMOUNT + 1)).encode())


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("Afi\u202emooR", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("A\u200bfi", "U+200B ZERO WIDTH SPACE"),
        ("Afi\u2066x\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("Afi\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("Men\x07sah", "control character U+0007"),
        ("Afi\tMensah", "control character U+0009"),
        ("Afi\u2028Mensah", "control character U+2028"),
        ("Afi\ue000", "U+E000"),
    ],
)
def test_names_with_invisible_or_bidi_characters_are_refused(name: str, found: str) -> None:
    problem = text_problem(name, max_chars=200)
    assert problem is not None
    assert found in problem


@pytest.mark.parametrize("name", ["Afi Mensah", "Élodie\u00a0Kpodar", "Tône", "東京", "N'Golo"])
def test_ordinary_names_pass(name: str) -> None:
    assert text_problem(name, max_chars=200) is None


def test_the_database_pattern_refuses_nothing_python_lets_through() -> None:
    # the CHECK constraint's character list (migration 0012) is a subset of what Python
    # refuses: a name Python accepts is never refused by the database
    migration = next(Path(__file__).parents[2].glob("migrations/versions/0012_*.py"))
    source = migration.read_text(encoding="utf-8")
    ranges = re.findall(r"\\[uU]([0-9a-f]{4,8})(?:-\\[uU]([0-9a-f]{4,8}))?", source)
    assert ranges
    for low, high in ranges:
        for code in range(int(low, 16), int(high or low, 16) + 1, 97):
            char = chr(code)
            assert text_problem(f"a{char}b", max_chars=200) is not None, hex(code)


# --- CSV in ------------------------------------------------------------------------------


def _records(text: str, delimiter: str = ",") -> list[list[str]]:
    return [r.cells for r in csvsafe.records(io.StringIO(text, newline=""), delimiter)]


def test_a_200_kb_field_is_refused_naming_its_record_and_column() -> None:
    text = "a,b,c\n1,2,3\n4," + "x" * 200_000 + ",6\n"
    with pytest.raises(csvsafe.CsvFormatError) as caught:
        _records(text)
    assert (caught.value.record, caught.value.column) == (2, 1)
    assert caught.value.field(["a", "b", "c"]) == "b"
    assert "4096 bytes" in caught.value.message


def test_a_field_just_over_4_kb_is_refused_and_4_kb_passes() -> None:
    assert _records("a\n" + "é" * 2048 + "\n")[1] == ["é" * 2048]
    with pytest.raises(csvsafe.CsvFormatError, match="4096"):
        _records("a\n" + "é" * 2049 + "\n")


def test_an_unterminated_quote_does_not_swallow_the_next_rows() -> None:
    # today's reader returned two records, the second holding rows 2 and 3 in one field
    text = 'id,name\n1,"Afi\n2,Kodjo\n3,Ama\n'
    with pytest.raises(csvsafe.CsvFormatError) as caught:
        _records(text)
    assert caught.value.record == 1
    assert caught.value.field(["id", "name"]) == "name"


def test_a_quote_closed_rows_later_is_refused_too() -> None:
    with pytest.raises(csvsafe.CsvFormatError, match="spans lines 2-3"):
        _records('id,name\n1,"Afi\n2,Kodjo"\n')


# --- CSV out -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://evil.example","pay")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_formula_cells_are_neutralised_in_exports(cell: str) -> None:
    out = io.StringIO()
    csvsafe.writer(out, lineterminator="\n").writerow([cell, 12, -5, "farmer:1"])
    first = out.getvalue().split(",")[0].lstrip('"')
    assert first.startswith("'")
    assert out.getvalue().rstrip("\n").endswith(",12,-5,farmer:1")


def test_a_reconciliation_report_neutralises_an_operator_reference_formula() -> None:
    # the operator reference comes from the operator's statement: untrusted text
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(category="missing_in_ledger", line=3, amount=-50,
               operator_reference='=HYPERLINK("http://evil.example","Cliquez")')
    written = render_csv([row]).decode("utf-8").splitlines()[1]
    assert "'=HYPERLINK(" in written
    assert ",=HYPERLINK(" not in written
    assert ',"=HYPERLINK(' not in written
    assert ",-50," in written  # a number stays a number


# --- callbacks ---------------------------------------------------------------------------


def test_a_parse_error_keeps_no_phone_number() -> None:
    class Event(BaseModel):
        amount: int

    with pytest.raises(PydanticError) as caught:
        Event.model_validate({"amount": "pay 22896000001"})
    assert "22896000001" in str(caught.value)  # what used to be stored
    summary = parse_error_summary(caught.value)
    assert "22896000001" not in summary
    assert "amount" in summary
    assert "96000001" not in parse_error_summary(ValueError("bad msisdn +228 96 00 00 01"))
