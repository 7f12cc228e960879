"""A Hypothesis state machine drives the ledger beside a model that is nothing but the
list of transfers the ledger should hold: single transfers, holds (some timing out),
posts, voids, expiry, replays, linked chains and multi-item batches with mixed results.

After every step each account's four counters, recomputed from that list, must equal the
database's, which must equal sums over the database's own transfer rows; the rows must be
the list; debits must equal credits and no limit may be exceeded, read from the database.
The ledger expires on the database's clock (`now()`), so the machine waits on that clock,
never on a fixed sleep, before it predicts an expiry.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.db import build_engine, unit_of_work
from ledger import api
from ledger.types import AccountKind, Limit, Result, Transfer, TransferKind

AMOUNTS = st.integers(min_value=1, max_value=500)
SHORT = 1  # seconds: a hold the machine lets expire, waiting on the database's clock
LONG = 3600  # seconds: a hold with a timeout that never comes due during a run
TIMEOUTS = st.sampled_from([0, SHORT, LONG])
RESOLVING = (TransferKind.POST, TransferKind.VOID)


@dataclass(frozen=True)
class Row:
    """A transfer as the ledger must hold it; a post, void or expire row carries its
    pending transfer's accounts, and the amount it posts or releases."""

    id: str
    kind: TransferKind
    debit: str
    credit: str
    amount: int
    pending_id: str | None = None
    timeout: int = 0
    code: int = 0


def counters_from(rows: Mapping[str, Row], accounts: Iterable[str]) -> dict[str, list[int]]:
    """Every account's (debits pending, debits posted, credits pending, credits posted),
    derived from the transfers alone: the model keeps no counter of its own."""
    out = {code: [0, 0, 0, 0] for code in accounts}
    for row in rows.values():
        d, c = out[row.debit], out[row.credit]
        if row.kind is TransferKind.SINGLE:
            d[1] += row.amount
            c[3] += row.amount
        elif row.kind is TransferKind.PENDING:
            d[0] += row.amount
            c[2] += row.amount
        else:
            held = rows[row.pending_id].amount  # type: ignore[index]
            d[0] -= held
            c[2] -= held
            if row.kind is TransferKind.POST:
                d[1] += row.amount
                c[3] += row.amount
    return out


def room(limit: Limit | None, counters: Sequence[int]) -> int | None:
    """How much more the limited side may take (None: no limit)."""
    dp, dpo, cp, cpo = counters
    if limit is Limit.DEBITS:
        return cpo - dpo - dp
    if limit is Limit.CREDITS:
        return dpo - cpo - cp
    return None


@dataclass
class Model:
    """The transfers the ledger accepted, the accounts' limits, and what the machine knows
    of the clock: which SHORT holds are due (their expiry is then certain)."""

    limits: dict[str, Limit | None] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    due: set[str] = field(default_factory=set)

    def resolutions(self, rows: Mapping[str, Row] | None = None) -> dict[str, TransferKind]:
        """pending id → how it was resolved (post, void or expire)."""
        rows = self.rows if rows is None else rows
        return {r.pending_id: r.kind for r in rows.values() if r.pending_id is not None}

    def open_holds(self) -> list[Row]:
        done = self.resolutions()
        return [
            r for r in self.rows.values() if r.kind is TransferKind.PENDING and r.id not in done
        ]

    def undecided_short(self) -> list[Row]:
        """SHORT holds still open whose due time the machine has not waited for: nothing
        may name them in a post or void, which would race the clock."""
        return [r for r in self.open_holds() if r.timeout == SHORT and r.id not in self.due]

    def resolvable(self) -> list[str]:
        """Every hold a post or void may name with a certain answer."""
        racing = {r.id for r in self.undecided_short()}
        return sorted(
            r.id for r in self.rows.values() if r.kind is TransferKind.PENDING
            and r.id not in racing
        )

    def judge(self, batch: Sequence[Transfer]) -> tuple[list[Result], list[Row]]:
        """What the ledger must answer for `batch`, and the rows it must add (the expiry of
        due holds the batch names, then the accepted items, in order)."""
        rows = dict(self.rows)
        done = self.resolutions(rows)
        added: list[Row] = []
        # the ledger first expires the due holds a post or void names, whatever becomes
        # of the batch
        if any(t.kind in RESOLVING for t in batch):
            for t in batch:
                pid = t.pending_id
                if pid is not None and pid in self.due and pid not in done:
                    held = rows[pid]
                    row = Row(f"expire:{pid}", TransferKind.EXPIRE, held.debit, held.credit,
                              held.amount, pid, code=held.code)
                    rows[row.id] = row
                    done[pid] = TransferKind.EXPIRE
                    added.append(row)
        results = [self._static(t, rows, done) for t in batch]
        chains = _chains(batch)
        if batch[-1].linked:
            for i in chains[-1]:
                results[i] = Result.LINKED_EVENT_CHAIN_OPEN
        for chain in chains:
            got = [results[i] for i in chain]
            broken = any(r not in (None, Result.EXISTS) for r in got) or (
                Result.EXISTS in got and None in got
            )
            if len(chain) > 1 and broken:
                for i in chain:
                    if results[i] in (None, Result.EXISTS):
                        results[i] = Result.LINKED_EVENT_FAILED
        self._limits(batch, rows, chains, results)
        final = [Result.CREATED if r is None else r for r in results]
        for t, r in zip(batch, final, strict=True):
            if r is Result.CREATED:
                added.append(self._row(t, rows))
        return final, added

    def _static(
        self, t: Transfer, rows: Mapping[str, Row], done: Mapping[str, TransferKind]
    ) -> Result | None:
        """The answer that does not depend on balances (None: no objection)."""
        x = rows.get(t.id)
        if x is not None:
            for differs, result in (
                (x.kind is not t.kind, Result.EXISTS_WITH_DIFFERENT_FLAGS),
                (x.pending_id != t.pending_id, Result.EXISTS_WITH_DIFFERENT_PENDING_ID),
                (x.timeout != t.timeout, Result.EXISTS_WITH_DIFFERENT_TIMEOUT),
                (t.debit is not None and x.debit != t.debit,
                 Result.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
                (t.credit is not None and x.credit != t.credit,
                 Result.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
                (t.amount is not None and x.amount != t.amount,
                 Result.EXISTS_WITH_DIFFERENT_AMOUNT),
                (x.code != t.code, Result.EXISTS_WITH_DIFFERENT_CODE),
            ):
                if differs:
                    return result
            return Result.EXISTS
        if t.kind not in RESOLVING:
            return None
        held = rows.get(t.pending_id)  # type: ignore[arg-type]
        if held is None:
            return Result.PENDING_TRANSFER_NOT_FOUND
        if held.kind is not TransferKind.PENDING:
            return Result.PENDING_TRANSFER_NOT_PENDING
        resolution = done.get(held.id)
        if resolution is not None:
            return {
                TransferKind.POST: Result.PENDING_TRANSFER_ALREADY_POSTED,
                TransferKind.VOID: Result.PENDING_TRANSFER_ALREADY_VOIDED,
                TransferKind.EXPIRE: Result.PENDING_TRANSFER_EXPIRED,
            }[resolution]
        if t.kind is TransferKind.POST and t.amount is not None and t.amount > held.amount:
            return Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
        return None

    def _limits(
        self,
        batch: Sequence[Transfer],
        rows: Mapping[str, Row],
        chains: list[list[int]],
        results: list[Result | None],
    ) -> None:
        """Judge limits item by item in order; a chain either fits whole or fails whole."""
        counters = counters_from(rows, self.limits)
        rooms = {code: room(limit, counters[code]) for code, limit in self.limits.items()}
        for chain in chains:
            trial = dict(rooms)
            failed = False
            for i in chain:
                if results[i] is not None:
                    continue
                for account, consumed, reason in self._effects(batch[i], rows):
                    left = trial[account]
                    if left is None:
                        continue
                    if consumed > 0 and left - consumed < 0:
                        failed = True
                        results[i] = reason
                        break
                    trial[account] = left - consumed
                if failed:
                    for j in chain:
                        if results[j] is None:
                            results[j] = Result.LINKED_EVENT_FAILED
                    break
            if not failed:
                rooms = trial

    def _effects(self, t: Transfer, rows: Mapping[str, Row]) -> list[tuple[str, int, Result]]:
        """(account, headroom it takes, refusal) for the debit side, then the credit side."""
        row = self._row(t, rows)
        held = rows[t.pending_id].amount if t.pending_id else 0
        total = {
            TransferKind.SINGLE: row.amount,
            TransferKind.PENDING: row.amount,
            TransferKind.POST: row.amount - held,
            TransferKind.VOID: -held,
        }[row.kind]
        posted = row.amount if row.kind in (TransferKind.SINGLE, TransferKind.POST) else 0
        effects = []
        for account, side_limit in ((row.debit, Limit.DEBITS), (row.credit, Limit.CREDITS)):
            limit = self.limits[account]
            # a side takes headroom where its own limit bounds it; on the other limit its
            # posted amount gives headroom back
            consumed = total if limit is side_limit else -posted
            reason = (
                Result.EXCEEDS_CREDITS if limit is Limit.DEBITS else Result.EXCEEDS_DEBITS
            )
            effects.append((account, consumed, reason))
        return effects

    @staticmethod
    def _row(t: Transfer, rows: Mapping[str, Row]) -> Row:
        if t.kind in RESOLVING:
            held = rows[t.pending_id]  # type: ignore[index]
            amount = held.amount if t.amount is None or t.kind is TransferKind.VOID else t.amount
            return Row(t.id, t.kind, held.debit, held.credit, amount, t.pending_id, code=t.code)
        assert t.debit is not None
        assert t.credit is not None
        assert t.amount is not None
        return Row(t.id, t.kind, t.debit, t.credit, t.amount, timeout=t.timeout, code=t.code)


def _chains(batch: Sequence[Transfer]) -> list[list[int]]:
    """Item positions grouped in linked chains: a chain ends at an item not linked on."""
    chains: list[list[int]] = []
    for i in range(len(batch)):
        if i == 0 or not batch[i - 1].linked:
            chains.append([])
        chains[-1].append(i)
    return chains


_DB_ROWS = text(
    "SELECT t.id, t.kind, d.code AS debit, c.code AS credit, t.amount, t.pending_id,"
    " t.timeout, t.code, extract(epoch FROM t.expires_at - t.created_at) AS lasts"
    " FROM ledger_transfers t JOIN ledger_accounts d ON d.id = t.debit_account_id"
    " JOIN ledger_accounts c ON c.id = t.credit_account_id"
    " WHERE d.code = ANY(CAST(:codes AS text[]))"
)
_DB_COUNTERS = text(
    "SELECT code, debits_pending, debits_posted, credits_pending, credits_posted, limit_on"
    " FROM ledger_accounts WHERE code = ANY(CAST(:codes AS text[]))"
)
# The counters again, summed from the database's transfer rows: a post, void or expire
# row releases its pending row's amount, and a post posts its own.
_DB_SUMS = text(
    """
    WITH t AS (
        SELECT t.*, p.amount AS held FROM ledger_transfers t
        LEFT JOIN ledger_transfers p ON p.id = t.pending_id
    ), e AS (
        SELECT debit_account_id AS account_id,
               CASE kind WHEN 'pending' THEN amount WHEN 'single' THEN 0 ELSE -held END AS dp,
               CASE WHEN kind IN ('single', 'post') THEN amount ELSE 0 END AS dpo,
               0 AS cp, 0 AS cpo
        FROM t
        UNION ALL
        SELECT credit_account_id, 0, 0,
               CASE kind WHEN 'pending' THEN amount WHEN 'single' THEN 0 ELSE -held END,
               CASE WHEN kind IN ('single', 'post') THEN amount ELSE 0 END
        FROM t
    )
    SELECT a.code, coalesce(sum(e.dp), 0) AS dp, coalesce(sum(e.dpo), 0) AS dpo,
           coalesce(sum(e.cp), 0) AS cp, coalesce(sum(e.cpo), 0) AS cpo
    FROM ledger_accounts a LEFT JOIN e ON e.account_id = a.id
    WHERE a.code = ANY(CAST(:codes AS text[]))
    GROUP BY a.code
    """
)


def _machine(factory: sessionmaker[Session]) -> type[RuleBasedStateMachine]:
    run = itertools.count()

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.prefix = f"r{next(run)}x{uuid.uuid4().hex[:6]}"
            self.ids = itertools.count()
            self.steps = 0
            self.first_short = 0  # step at which the oldest undecided SHORT hold was made
            self.waited = False

        def _id(self) -> str:
            return f"{self.prefix}:{next(self.ids)}"

        def _create(self, name: str, limit: Limit | None) -> None:
            code = f"{self.prefix}:{name}".lower()
            with unit_of_work(factory) as s:
                _, created = api.create_account(s, code, AccountKind.ASSET, limit)
            assert created
            self.model.limits[code] = limit

        def _accounts(self, data: st.DataObject) -> tuple[str, str]:
            codes = sorted(self.model.limits)
            debit = data.draw(st.sampled_from(codes), label="debit")
            credit = data.draw(st.sampled_from([c for c in codes if c != debit]), label="credit")
            return debit, credit

        def _expect(self, batch: Sequence[Transfer], results: Sequence[Result]) -> None:
            """Compare the ledger's answers with the model's, then record what it added."""
            expected, added = self.model.judge(batch)
            assert list(results) == expected, list(zip(batch, results, expected, strict=True))
            if not self.model.undecided_short() and any(
                r.timeout == SHORT for r in added if r.kind is TransferKind.PENDING
            ):
                self.first_short = self.steps
            for row in added:
                self.model.rows[row.id] = row

        def _submit(self, batch: Sequence[Transfer]) -> None:
            self._expect(batch, [o.result for o in api.submit(factory, batch)])

        # --- set-up -----------------------------------------------------------------

        @initialize()
        def accounts(self) -> None:
            # an unlimited source so money can enter the limited accounts
            self._create("src", None)
            self._create("float", Limit.DEBITS)
            self._create("budget", Limit.CREDITS)
            # a SHORT hold made first, so that by the time the machine waits for it, it
            # is nearly due
            src, flt = f"{self.prefix}:src".lower(), f"{self.prefix}:float".lower()
            self._submit([Transfer.pending(self._id(), src, flt, 7, timeout=SHORT)])

        # --- rules ------------------------------------------------------------------

        @rule(limit=st.sampled_from([None, Limit.DEBITS, Limit.CREDITS]))
        def create_account(self, limit: Limit | None) -> None:
            self._create(f"a{next(self.ids)}", limit)

        @rule(data=st.data(), amount=AMOUNTS)
        def single(self, data: st.DataObject, amount: int) -> None:
            debit, credit = self._accounts(data)
            t = Transfer.single(self._id(), debit, credit, amount)
            self._expect([t], [api.transfer(factory, t).result])

        @rule(data=st.data(), amount=AMOUNTS, timeout=TIMEOUTS)
        def hold(self, data: st.DataObject, amount: int, timeout: int) -> None:
            debit, credit = self._accounts(data)
            t = Transfer.pending(self._id(), debit, credit, amount, timeout=timeout)
            self._expect([t], [api.transfer(factory, t).result])

        @rule(data=st.data(), void=st.booleans())
        def resolve(self, data: st.DataObject, void: bool) -> None:
            # any hold whose answer is certain, a transfer that is no hold, or a ghost
            targets = [*self.model.resolvable(), f"{self.prefix}:ghost"]
            singles = [r.id for r in self.model.rows.values() if r.kind is TransferKind.SINGLE]
            pending = data.draw(st.sampled_from(targets + singles[:3]), label="pending")
            held = self.model.rows.get(pending)
            part = _post_amount(data, held.amount if held else 10)
            outcome = (
                api.void_pending(factory, pending) if void
                else api.post_pending(factory, pending, amount=part)
            )
            t = Transfer.void(pending) if void else Transfer.post(pending, amount=part)
            self._expect([t], [outcome.result])

        @rule(data=st.data(), amounts=st.lists(AMOUNTS, min_size=2, max_size=6),
              timeout=TIMEOUTS)
        def reserve_many(self, data: st.DataObject, amounts: list[int], timeout: int) -> None:
            # a payout batch's reservation: ledger_reserve, all or part of it refused
            debit, credit = self._accounts(data)
            ids = [self._id() for _ in amounts]
            with unit_of_work(factory) as s:
                outcomes = api.reserve(s, ids, debit, credit, amounts, timeout=timeout)
            batch = [
                Transfer.pending(i, debit, credit, a, timeout=timeout)
                for i, a in zip(ids, amounts, strict=True)
            ]
            self._expect(batch, [o.result for o in outcomes])

        @rule(data=st.data(), void=st.booleans())
        def settle_many(self, data: st.DataObject, void: bool) -> None:
            # posts or voids of several holds at once, with derived ids (replays answer
            # `exists`), as a payout batch settles
            chosen = data.draw(
                st.lists(st.sampled_from(self.model.resolvable() or ["none"]), min_size=1,
                         max_size=5, unique=True),
                label="holds",
            )
            chosen = [p for p in chosen if p != "none"]
            if not chosen:
                return
            with unit_of_work(factory) as s:
                outcomes = api.settle(s, chosen, void=void)
            batch = [Transfer.void(p) if void else Transfer.post(p) for p in chosen]
            self._expect(batch, [o.result for o in outcomes])

        @rule(data=st.data())
        def batch(self, data: st.DataObject) -> None:
            # several items of every kind, some linked in chains (an open one at the end
            # now and then), so one batch mixes created, refused and failed-by-link
            size = data.draw(st.integers(2, 6), label="size")
            items: list[Transfer] = []
            used_ids: set[str] = set()
            used_holds: set[str] = set()
            for _ in range(size):
                linked = data.draw(st.booleans(), label="linked")
                what = data.draw(
                    st.sampled_from(["single", "hold", "post", "void", "replay", "ghost"]),
                    label="item",
                )
                item = self._item(data, what, linked, used_ids, used_holds)
                if item is not None:
                    items.append(item)
                    used_ids.add(item.id)
                    if item.pending_id is not None:
                        used_holds.add(item.pending_id)
            if items:
                self._submit(items)

        def _item(
            self,
            data: st.DataObject,
            what: str,
            linked: bool,
            used_ids: set[str],
            used_holds: set[str],
        ) -> Transfer | None:
            if what in ("single", "hold"):
                debit, credit = self._accounts(data)
                amount = data.draw(AMOUNTS, label="amount")
                if what == "single":
                    return Transfer.single(self._id(), debit, credit, amount, linked=linked)
                timeout = data.draw(TIMEOUTS, label="timeout")
                return Transfer.pending(
                    self._id(), debit, credit, amount, timeout=timeout, linked=linked
                )
            if what == "ghost":
                ghost = f"{self.prefix}:ghost{next(self.ids)}"
                return Transfer.void(ghost, id=self._id(), linked=linked)
            if what == "replay":
                # an accepted transfer again: as it was (exists) or changed in one field
                stored = [r for r in self.model.rows.values()
                          if r.kind is not TransferKind.EXPIRE and r.id not in used_ids
                          and (r.pending_id is None or r.pending_id not in used_holds)]
                if not stored:
                    return None
                row = data.draw(st.sampled_from(stored), label="replayed")
                return _replay(data, row, linked)
            holds = [p for p in self.model.resolvable() if p not in used_holds]
            if not holds:
                return None
            pending = data.draw(st.sampled_from(holds), label="hold")
            if what == "void":
                return Transfer.void(pending, id=self._id(), linked=linked)
            part = _post_amount(data, self.model.rows[pending].amount)
            return Transfer.post(pending, amount=part, id=self._id(), linked=linked)

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            t = self._item(data, "replay", False, set(), set())
            if t is not None:
                self._expect([t], [api.transfer(factory, t).result])

        @precondition(lambda self: bool(self.model.undecided_short()) and not self.waited
                      and self.steps - self.first_short >= 10)
        @rule(sweep=st.booleans())
        def time_passes(self, sweep: bool) -> None:
            # wait on the database's clock until every open SHORT hold is due; from then
            # on its expiry is certain, swept here or by the post or void that names it
            self.waited = True
            ids = [r.id for r in self.model.undecided_short()]
            _wait_until_due(factory, ids)
            self.model.due.update(ids)
            if not sweep:
                return
            # the sweep names this run's open holds (a sweep of every due hold would
            # also take those earlier runs left behind): the due ones expire, and none
            # of those without a timeout or with a LONG one
            holds = self.model.open_holds()
            expected = [
                Row(f"expire:{r.id}", TransferKind.EXPIRE, r.debit, r.credit, r.amount, r.id,
                    code=r.code)
                for r in holds if r.id in self.model.due
            ]
            with unit_of_work(factory) as s:
                assert api.expire_pending(s, [r.id for r in holds]) == len(expected)
            for row in expected:
                self.model.rows[row.id] = row

        @rule(data=st.data())
        def early_expiry_does_nothing(self, data: st.DataObject) -> None:
            # holds without a timeout or not due yet: naming them expires none
            early = [r.id for r in self.model.open_holds() if r.timeout in (0, LONG)]
            named = data.draw(st.lists(st.sampled_from(early or ["none"]), max_size=4),
                              label="named")
            with unit_of_work(factory) as s:
                assert api.expire_pending(s, named) == 0

        # --- invariants -------------------------------------------------------------

        @invariant()
        def ledger_agrees_with_the_transfers(self) -> None:
            self.steps += 1
            codes = sorted(self.model.limits)
            with unit_of_work(factory) as s:
                db_rows = s.execute(_DB_ROWS, {"codes": codes}).all()
                db_counters = {r.code: r for r in s.execute(_DB_COUNTERS, {"codes": codes})}
                db_sums = {r.code: r for r in s.execute(_DB_SUMS, {"codes": codes})}

            # the rows are the model's list, field by field
            got = {
                r.id: Row(r.id, TransferKind(r.kind), r.debit, r.credit, r.amount,
                          r.pending_id, r.timeout, r.code)
                for r in db_rows
            }
            assert got == self.model.rows
            for r in db_rows:
                # a hold lasts its timeout, by the database's clock
                assert (r.lasts is None) == (r.timeout == 0), r
                assert r.lasts is None or float(r.lasts) == r.timeout, r

            expected = counters_from(self.model.rows, codes)
            totals = [0, 0, 0, 0]
            summed = [0, 0, 0, 0]
            for code in codes:
                a, t = db_counters[code], db_sums[code]
                stored = [a.debits_pending, a.debits_posted, a.credits_pending,
                          a.credits_posted]
                # each account's counters: the database's = recomputed from the model's
                # list = summed from the database's own rows
                assert stored == expected[code], code
                assert stored == [t.dp, t.dpo, t.cp, t.cpo], code
                # limits hold, pending amounts included
                left = room(Limit(a.limit_on) if a.limit_on else None, stored)
                assert left is None or left >= 0, (code, stored)
                totals = [x + y for x, y in zip(totals, stored, strict=True)]
                summed = [x + y for x, y in zip(summed, (t.dp, t.dpo, t.cp, t.cpo),
                                                strict=True)]
            # debits equal credits, posted and pending, in the counters and in the rows
            assert totals[0] == totals[2], totals
            assert totals[1] == totals[3], totals
            assert summed[0] == summed[2], summed
            assert summed[1] == summed[3], summed
            posted = sum(r.amount for r in db_rows if r.kind in ("single", "post"))
            assert totals[1] == posted, (totals, posted)

        def teardown(self) -> None:
            with unit_of_work(factory) as s:
                report = api.verify_ledger(s)
            assert report.ok, report.problems

    return LedgerMachine


def _post_amount(data: st.DataObject, held: int) -> int | None:
    """In full (None), part of the hold, all of it, or one franc more than it holds."""
    return data.draw(
        st.none() | st.integers(1, held) | st.just(held) | st.just(held + 1), label="post amount"
    )


def _replay(data: st.DataObject, row: Row, linked: bool) -> Transfer:
    """`row` submitted again, as it was or with one field changed."""
    change = data.draw(
        st.sampled_from(["none", "none", "amount", "code", "flags", "timeout"]), label="change"
    )
    amount = row.amount + (change == "amount")
    code = row.code + (change == "code")
    if row.kind in RESOLVING:
        kind = {TransferKind.POST: TransferKind.VOID, TransferKind.VOID: TransferKind.POST}
        return Transfer(row.id, kind[row.kind] if change == "flags" else row.kind,
                        amount=amount, pending_id=row.pending_id, code=code, linked=linked)
    kind = row.kind
    timeout = row.timeout
    if change == "flags":
        kind = TransferKind.SINGLE if kind is TransferKind.PENDING else TransferKind.PENDING
        timeout = 0
    elif change == "timeout" and kind is TransferKind.PENDING:
        timeout = LONG if timeout != LONG else 0
    return Transfer(row.id, kind, row.debit, row.credit, amount, timeout=timeout, code=code,
                    linked=linked)


def _wait_until_due(factory: sessionmaker[Session], ids: Sequence[str]) -> None:
    """Return once the database's clock has passed every hold's expiry: polls that clock
    (each query a new transaction, so `now()` moves) and sleeps only the time it reports
    is left."""
    deadline = time.monotonic() + 30
    while True:
        with unit_of_work(factory) as s:
            left = s.execute(
                text(
                    "SELECT extract(epoch FROM max(expires_at) - now()) FROM ledger_transfers"
                    " WHERE id = ANY(CAST(:ids AS text[]))"
                ),
                {"ids": list(ids)},
            ).scalar_one()
        if left is None or left <= 0:
            return
        assert time.monotonic() < deadline, "the database's clock stands still"
        time.sleep(float(left) + 0.01)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_ledger_agrees_with_its_transfers(database_url: str) -> None:
    # One database for the whole machine; each run uses fresh account codes and ids.
    engine = build_engine(database_url, pool_size=2)
    try:
        machine = _machine(sessionmaker(engine, expire_on_commit=False))
        machine.TestCase.settings = settings(
            max_examples=30,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        machine.TestCase().runTest()
    finally:
        engine.dispose()
