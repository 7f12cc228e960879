"""CIZO's pure rules: token generation and splitting, and how a payment is counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from openpaygo import TokenType, decode_token

from cizo import tokens
from cizo.models import TokenKind
from cizo.rules import PlanTerms, add_months, split_payment
from core.errors import ValidationError

KEY = "a29ab82edc5fbbc41ec9530f6dac86b1"
START = "123456789"
BBOXX = PlanTerms(deposit=8_960, per_day=160, term_days=1_095)


def test_add_time_splits_beyond_995_and_decodes_in_order() -> None:
    issued = tokens.add_time(KEY, START, 1, 2_000)
    assert [t.days for t in issued] == [995, 995, 10]
    count, used = 1, None
    for token in issued:
        value, kind, count, used = decode_token(
            token=token.token,
            secret_key=KEY,
            count=count,
            used_counts=used,
            starting_code=int(START),
        )
        assert (value, kind, count) == (token.days, TokenType.ADD_TIME, token.count)


def test_values_outside_0_to_995_are_refused_before_generation() -> None:
    with pytest.raises(ValidationError, match="--days"):
        tokens.issue(KEY, START, 1, TokenKind.SET_TIME, -1)
    with pytest.raises(ValidationError, match="--days"):
        tokens.issue(KEY, START, 1, TokenKind.ADD_TIME, 996)
    with pytest.raises(ValidationError, match="--opaygo-key"):
        tokens.check_key("abc")
    with pytest.raises(ValidationError, match="--starting-code"):
        tokens.check_starting_code("12345678")


def test_spoken_groups_digits_by_three() -> None:
    assert tokens.spoken("123456789") == "123 456 789"


def test_deposit_first_then_days_with_carry() -> None:
    now = datetime(2026, 3, 5, tzinfo=UTC)
    first = split_payment(
        BBOXX,
        counted=0,
        amount=9_000,
        activated_at=None,
        paid_at=now,
        monthly_subsidy=0,
        subsidy_months=36,
        subsidy_this_month=0,
        allocation_left=0,
    )
    assert (first.applied, first.days, first.activates) == (9_000, 0, True)
    second = split_payment(
        BBOXX,
        counted=9_000,
        amount=300,
        activated_at=now,
        paid_at=now,
        monthly_subsidy=0,
        subsidy_months=36,
        subsidy_this_month=0,
        allocation_left=0,
    )
    # 40 carried + 300 = 340 → 2 days, 20 carried
    assert second.days == 2


def test_subsidy_is_capped_by_month_allocation_and_window() -> None:
    start = datetime(2026, 1, 10, tzinfo=UTC)
    common = dict(
        counted=10_000,
        activated_at=start,
        monthly_subsidy=2_000,
        subsidy_months=36,
        allocation_left=10_000,
    )
    assert (
        split_payment(
            BBOXX, amount=1_500, paid_at=start, subsidy_this_month=1_000, **common
        ).subsidy
        == 1_000
    )
    late = add_months(start, 36)
    assert (
        split_payment(BBOXX, amount=1_500, paid_at=late, subsidy_this_month=0, **common).subsidy
        == 0
    )
