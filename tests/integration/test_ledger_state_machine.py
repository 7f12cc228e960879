"""A Hypothesis state machine drives the ledger and a dict model side by side through
accounts, transfers, pending holds, partial posts, voids, replays and limit breaches,
and checks after every step that both agree and the books balance."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy.orm import Session, sessionmaker

from core.db import build_engine, unit_of_work
from ledger import api
from ledger.types import AccountKind, Limit, Result, Transfer

AMOUNTS = st.integers(min_value=1, max_value=500)


@dataclass
class Model:
    """What the ledger should hold: counters by account, pendings and their fate."""

    limits: dict[str, Limit | None] = field(default_factory=dict)
    counters: dict[str, list[int]] = field(default_factory=dict)  # dp, dpo, cp, cpo
    pending: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    resolved: dict[str, str] = field(default_factory=dict)  # pending id -> post|void
    transfers: dict[str, Transfer] = field(default_factory=dict)

    def fits(self, debit: str, credit: str, amount: int, posted: bool) -> Result:
        d, c = self.counters[debit], self.counters[credit]
        if self.limits[debit] is Limit.DEBITS and d[0] + d[1] + amount > d[3]:
            return Result.EXCEEDS_CREDITS
        if self.limits[credit] is Limit.CREDITS and c[2] + c[3] + amount > c[1]:
            return Result.EXCEEDS_DEBITS
        return Result.CREATED


def _machine(factory: sessionmaker[Session]) -> type[RuleBasedStateMachine]:
    run = itertools.count()

    class LedgerMachine(RuleBasedStateMachine):
        accounts = Bundle("accounts")
        pendings = Bundle("pendings")

        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.prefix = f"r{next(run)}x{uuid.uuid4().hex[:6]}"
            self.ids = itertools.count()

        def _id(self) -> str:
            return f"{self.prefix}:{next(self.ids)}"

        @initialize(target=accounts)
        def source(self) -> str:
            # an unlimited source so money can enter the limited accounts
            return self._create("src", None)

        def _create(self, name: str, limit: Limit | None) -> str:
            code = f"{self.prefix}:{name}".lower()
            with unit_of_work(factory) as s:
                _, created = api.create_account(s, code, AccountKind.ASSET, limit)
            assert created
            self.model.limits[code] = limit
            self.model.counters[code] = [0, 0, 0, 0]
            return code

        @initialize(target=accounts)
        def float_account(self) -> str:
            return self._create("float", Limit.DEBITS)

        @initialize(target=accounts)
        def budget_account(self) -> str:
            return self._create("budget", Limit.CREDITS)

        @rule(target=accounts, limit=st.sampled_from([None, Limit.DEBITS, Limit.CREDITS]))
        def create_account(self, limit: Limit | None) -> str:
            return self._create(f"a{next(self.ids)}", limit)

        @rule(debit=accounts, credit=accounts, amount=AMOUNTS)
        def single(self, debit: str, credit: str, amount: int) -> None:
            if debit == credit:
                return
            t = Transfer.single(self._id(), debit, credit, amount)
            expected = self.model.fits(debit, credit, amount, posted=True)
            assert api.transfer(factory, t).result is expected
            if expected is Result.CREATED:
                self.model.counters[debit][1] += amount
                self.model.counters[credit][3] += amount
                self.model.transfers[t.id] = t

        @rule(target=pendings, debit=accounts, credit=accounts, amount=AMOUNTS)
        def reserve(self, debit: str, credit: str, amount: int) -> str:
            if debit == credit:
                return "none"
            t = Transfer.pending(self._id(), debit, credit, amount)
            expected = self.model.fits(debit, credit, amount, posted=False)
            assert api.transfer(factory, t).result is expected
            if expected is not Result.CREATED:
                return "none"
            self.model.counters[debit][0] += amount
            self.model.counters[credit][2] += amount
            self.model.pending[t.id] = (debit, credit, amount)
            self.model.transfers[t.id] = t
            return t.id

        @rule(pending=pendings, data=st.data(), void=st.booleans())
        def resolve(self, pending: str, data: st.DataObject, void: bool) -> None:
            if pending == "none":
                result = api.void_pending(factory, f"{self.prefix}:ghost").result
                assert result is Result.PENDING_TRANSFER_NOT_FOUND
                return
            debit, credit, amount = self.model.pending[pending]
            part = data.draw(st.integers(min_value=1, max_value=amount + 5), label="post amount")
            t = Transfer.void(pending) if void else Transfer.post(pending, amount=part)
            result = api.transfer(factory, t).result
            done = self.model.resolved.get(pending)
            if done is not None:
                if t.id in self.model.transfers and self.model.transfers[t.id] == t:
                    assert result is Result.EXISTS
                elif t.id in self.model.transfers:
                    assert result.value.startswith("exists_with_different")
                else:
                    assert result is (
                        Result.PENDING_TRANSFER_ALREADY_POSTED
                        if done == "post"
                        else Result.PENDING_TRANSFER_ALREADY_VOIDED
                    )
                return
            if not void and part > amount:
                assert result is Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
                return
            assert result is Result.CREATED
            self.model.resolved[pending] = "void" if void else "post"
            self.model.transfers[t.id] = t
            self.model.counters[debit][0] -= amount
            self.model.counters[credit][2] -= amount
            if not void:
                self.model.counters[debit][1] += part
                self.model.counters[credit][3] += part

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            if not self.model.transfers:
                return
            tid = data.draw(st.sampled_from(sorted(self.model.transfers)), label="replayed")
            original = self.model.transfers[tid]
            assert api.transfer(factory, original).result is Result.EXISTS
            if original.amount is not None and original.kind in ("single", "pending"):
                changed = Transfer(
                    original.id, original.kind, original.debit, original.credit, original.amount + 1
                )
                assert api.transfer(factory, changed).result is (
                    Result.EXISTS_WITH_DIFFERENT_AMOUNT
                )

        @invariant()
        def counters_match_the_model(self) -> None:
            codes = sorted(self.model.counters)
            with unit_of_work(factory) as s:
                balances = api.balances(s, codes)
            for code in codes:
                b = balances[code]
                got = [b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted]
                assert got == self.model.counters[code], code
                limit = self.model.limits[code]
                if limit is Limit.DEBITS:
                    assert b.debits_pending + b.debits_posted <= b.credits_posted
                if limit is Limit.CREDITS:
                    assert b.credits_pending + b.credits_posted <= b.debits_posted

        @invariant()
        def books_balance(self) -> None:
            totals = [sum(c[i] for c in self.model.counters.values()) for i in range(4)]
            assert totals[0] == totals[2]
            assert totals[1] == totals[3]

        def teardown(self) -> None:
            with unit_of_work(factory) as s:
                report = api.verify_ledger(s)
            assert report.ok, report.problems

    return LedgerMachine


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_ledger_agrees_with_a_dict_model(database_url: str) -> None:
    # One database for the whole machine; each run uses fresh account codes.
    engine = build_engine(database_url, pool_size=2)
    try:
        machine = _machine(sessionmaker(engine, expire_on_commit=False))
        machine.TestCase.settings = settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        machine.TestCase().runTest()
    finally:
        engine.dispose()
