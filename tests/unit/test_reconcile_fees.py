"""The operators' fee grid: a fixed part plus basis points of the amount, in whole francs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from providers.sandbox.faults import FaultProfile
from reconciliation.matching import FeeGrid


def test_no_grid_charges_nothing() -> None:
    assert FeeGrid().fee(9000) == 0


def test_fixed_plus_basis_points_rounded_down() -> None:
    # 25 FCFA + 0.5 % of 12,345 FCFA = 25 + 61.725, francs have no minor unit
    assert FeeGrid(fixed=25, bps=50).fee(12_345) == 86
    assert FeeGrid(fixed=0, bps=100).fee(99) == 0
    assert FeeGrid(fixed=10, bps=0).fee(1) == 10


@given(
    fixed=st.integers(0, 1_000),
    bps=st.integers(0, 10_000),
    amount=st.integers(1, 2_000_000),
)
def test_grid_agrees_with_the_operator_sandbox(fixed: int, bps: int, amount: int) -> None:
    # Sika's expectation and the sandbox's charge are the same formula, so a clean day
    # with fees reconciles clean
    sandbox = FaultProfile(fee_fixed=fixed, fee_bps=bps)
    assert FeeGrid(fixed, bps).fee(amount) == sandbox.fee(amount)


@given(
    fixed=st.integers(0, 1_000),
    bps=st.integers(0, 10_000),
    small=st.integers(1, 1_000_000),
    extra=st.integers(0, 1_000_000),
)
def test_fee_never_falls_as_the_amount_grows(fixed: int, bps: int, small: int, extra: int) -> None:
    grid = FeeGrid(fixed, bps)
    assert fixed <= grid.fee(small) <= grid.fee(small + extra) <= fixed + small + extra
