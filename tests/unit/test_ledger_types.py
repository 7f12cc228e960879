"""The ledger's values refuse bad input before any database is involved."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationError
from ledger.seals import chain_hash
from ledger.types import AccountKind, AccountSpec, Result, Transfer, TransferKind, derived_id


def test_a_single_transfer_needs_positive_amount_and_two_accounts() -> None:
    with pytest.raises(ValidationError, match="positive"):
        Transfer.single("t1", "a", "b", 0)
    with pytest.raises(ValidationError, match="differ"):
        Transfer.single("t1", "a", "a", 5)
    with pytest.raises(ValidationError, match="transfer id"):
        Transfer.single("bad id", "a", "b", 5)
    with pytest.raises(ValidationError, match="account code"):
        Transfer.single("t1", "A B", "b", 5)


def test_timeout_only_on_pending_and_expire_is_not_submittable() -> None:
    with pytest.raises(ValidationError, match="timeout"):
        Transfer("t1", TransferKind.SINGLE, "a", "b", 5, timeout=3)
    with pytest.raises(ValidationError, match="written by the ledger"):
        Transfer("t1", TransferKind.EXPIRE, "a", "b", 5, pending_id="p")
    assert Transfer.pending("t1", "a", "b", 5, timeout=3).timeout == 3


def test_post_and_void_derive_a_stable_id() -> None:
    assert Transfer.post("payout:1:reserve").id == "payout:1:reserve:post"
    assert Transfer.void("payout:1:reserve").id == derived_id("payout:1:reserve", TransferKind.VOID)
    assert Transfer.post("p", id="mine").id == "mine"


def test_account_spec_normalises_enums() -> None:
    spec = AccountSpec("float:flooz", "asset", "debits")  # type: ignore[arg-type]
    assert spec.kind is AccountKind.ASSET
    with pytest.raises(ValueError, match="planet"):
        AccountSpec("x", "planet")  # type: ignore[arg-type]


def test_results_know_whether_the_transfer_is_in_the_ledger() -> None:
    assert Result.CREATED.ok
    assert Result.EXISTS.ok
    assert not Result.EXCEEDS_CREDITS.ok
    assert "beyond its credits" in Result.EXCEEDS_CREDITS.sentence


HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(st.integers(min_value=0, max_value=10**6), HEX64)
def test_the_chain_hash_depends_on_every_field(count: int, rows: str) -> None:
    day = dt.date(2026, 11, 22)
    base = chain_hash(day, count, rows, None)
    assert base != chain_hash(day, count + 1, rows, None)
    assert base != chain_hash(day, count, rows, "x")
    assert base != chain_hash(day + dt.timedelta(days=1), count, rows, None)
