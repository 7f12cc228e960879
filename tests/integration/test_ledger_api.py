"""The ledger's service API against a real PostgreSQL: two-phase holds, limits,
idempotency, expiry, batches (independent and linked) and the invariant check."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from core.db import build_engine, unit_of_work
from core.errors import LedgerError
from ledger import api
from ledger.types import AccountKind, AccountSpec, Limit, Result, Transfer, TransferKind


def _setup(factory: sessionmaker[Session], funded: int = 1000) -> None:
    """float (asset, debits limited) funded from treasury; expense for payouts."""
    with unit_of_work(factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("expense", AccountKind.EXPENSE),
                AccountSpec("budget", AccountKind.LIABILITY, Limit.CREDITS),
            ],
        )
    if funded:
        assert api.transfer(factory, Transfer.single("fund", "treasury", "float", funded)).ok


def _bal(factory: sessionmaker[Session], code: str) -> tuple[int, int, int, int]:
    with unit_of_work(factory) as s:
        b = api.balance(s, code)
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


def test_accounts_are_created_idempotently_and_codes_are_permanent(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        account, created = api.create_account(s, "float:flooz", "asset", "debits")
        assert created
        assert account.limit is Limit.DEBITS
        again, created = api.create_account(s, "float:flooz", "asset", "debits")
        assert not created
        assert again.id == account.id
        with pytest.raises(LedgerError, match="already exists"):
            api.create_account(s, "float:flooz", "liability")


def test_pending_reserves_and_partial_post_releases_the_rest(session_factory) -> None:
    # Given a float holding 1000
    _setup(session_factory)
    # When 600 is reserved, then 250 of it posted
    assert api.transfer(session_factory, Transfer.pending("p1", "float", "expense", 600)).ok
    assert _bal(session_factory, "float") == (600, 0, 0, 1000)
    # Then a second reservation of 500 would overdraw, counting the pending 600
    r = api.transfer(session_factory, Transfer.pending("p2", "float", "expense", 500))
    assert r.result is Result.EXCEEDS_CREDITS
    assert api.post_pending(session_factory, "p1", amount=250).result is Result.CREATED
    assert _bal(session_factory, "float") == (0, 250, 0, 1000)
    assert _bal(session_factory, "expense") == (0, 0, 0, 250)
    # And a second post or a void answers that it is already posted
    assert api.post_pending(session_factory, "p1", id="other").result is (
        Result.PENDING_TRANSFER_ALREADY_POSTED
    )
    assert api.void_pending(session_factory, "p1").result is Result.PENDING_TRANSFER_ALREADY_POSTED
    # And repeating the same post (derived id) is a replay
    assert api.post_pending(session_factory, "p1", amount=250).result is Result.EXISTS


def test_void_and_pending_rejections(session_factory) -> None:
    _setup(session_factory)
    api.transfer(session_factory, Transfer.pending("p1", "float", "expense", 100))
    assert api.post_pending(session_factory, "p1", amount=101).result is (
        Result.EXCEEDS_PENDING_TRANSFER_AMOUNT
    )
    assert api.void_pending(session_factory, "p1").result is Result.CREATED
    assert api.post_pending(session_factory, "p1").result is Result.PENDING_TRANSFER_ALREADY_VOIDED
    assert api.void_pending(session_factory, "nope").result is Result.PENDING_TRANSFER_NOT_FOUND
    assert api.post_pending(session_factory, "fund").result is Result.PENDING_TRANSFER_NOT_PENDING
    assert _bal(session_factory, "float") == (0, 0, 0, 1000)


def test_unknown_accounts_and_limits_on_credits(session_factory) -> None:
    _setup(session_factory, funded=0)
    assert api.transfer(session_factory, Transfer.single("a", "ghost", "float", 1)).result is (
        Result.DEBIT_ACCOUNT_NOT_FOUND
    )
    assert api.transfer(session_factory, Transfer.single("b", "float", "ghost", 1)).result is (
        Result.CREDIT_ACCOUNT_NOT_FOUND
    )
    # budget may not be credited beyond its debits
    assert api.transfer(session_factory, Transfer.single("c", "expense", "budget", 1)).result is (
        Result.EXCEEDS_DEBITS
    )


def test_replays_and_every_changed_field(session_factory) -> None:
    _setup(session_factory)
    original = Transfer.pending("p1", "float", "expense", 100, timeout=3600, code=7)
    assert api.transfer(session_factory, original).result is Result.CREATED
    before = _bal(session_factory, "float")
    assert api.transfer(session_factory, original).result is Result.EXISTS
    cases = {
        Result.EXISTS_WITH_DIFFERENT_AMOUNT: Transfer.pending(
            "p1", "float", "expense", 101, timeout=3600, code=7
        ),
        Result.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID: Transfer.pending(
            "p1", "treasury", "expense", 100, timeout=3600, code=7
        ),
        Result.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID: Transfer.pending(
            "p1", "float", "treasury", 100, timeout=3600, code=7
        ),
        Result.EXISTS_WITH_DIFFERENT_TIMEOUT: Transfer.pending(
            "p1", "float", "expense", 100, timeout=60, code=7
        ),
        Result.EXISTS_WITH_DIFFERENT_CODE: Transfer.pending(
            "p1", "float", "expense", 100, timeout=3600, code=8
        ),
        Result.EXISTS_WITH_DIFFERENT_FLAGS: Transfer.single("p1", "float", "expense", 100, code=7),
    }
    for expected, changed in cases.items():
        assert api.transfer(session_factory, changed).result is expected
    api.transfer(session_factory, Transfer.pending("p2", "float", "expense", 5))
    assert api.transfer(session_factory, Transfer.post("p1", id="x")).result is Result.CREATED
    assert api.transfer(session_factory, Transfer.post("p2", id="x")).result is (
        Result.EXISTS_WITH_DIFFERENT_PENDING_ID
    )
    # Nothing moved except p2's reservation and p1's post
    assert _bal(session_factory, "float")[0] == before[0] - 100 + 5


def test_expired_pending_is_released_and_cannot_be_posted(session_factory) -> None:
    _setup(session_factory)
    api.transfer(session_factory, Transfer.pending("p1", "float", "expense", 700, timeout=1))
    api.transfer(session_factory, Transfer.pending("p2", "float", "expense", 100, timeout=1))
    assert _bal(session_factory, "float")[0] == 800
    time.sleep(1.2)
    # A post of an expired pending answers pending_transfer_expired (and expires it)
    assert api.post_pending(session_factory, "p1").result is Result.PENDING_TRANSFER_EXPIRED
    assert _bal(session_factory, "float")[0] == 100
    # The sweep releases the rest
    with unit_of_work(session_factory) as s:
        assert api.expire_pending(s) == 1
        assert api.expire_pending(s) == 0
    assert _bal(session_factory, "float") == (0, 0, 0, 1000)
    assert api.void_pending(session_factory, "p2").result is Result.PENDING_TRANSFER_EXPIRED
    with unit_of_work(session_factory) as s:
        kinds = s.execute(text("SELECT kind FROM ledger_transfers WHERE id LIKE 'expire:%'"))
        assert sorted(k for (k,) in kinds) == ["expire", "expire"]
        assert api.verify_ledger(s).ok


def test_independent_batch_rejects_items_one_by_one(session_factory) -> None:
    _setup(session_factory)
    batch = [
        Transfer.single("b1", "float", "expense", 400),
        Transfer.single("b2", "float", "expense", 700),  # would overdraw: refused alone
        Transfer.single("b3", "float", "expense", 600),
        Transfer.single("b4", "ghost", "expense", 1),
    ]
    results = [o.result for o in api.submit(session_factory, batch)]
    assert results == [
        Result.CREATED,
        Result.EXCEEDS_CREDITS,
        Result.CREATED,
        Result.DEBIT_ACCOUNT_NOT_FOUND,
    ]
    assert _bal(session_factory, "float") == (0, 1000, 0, 1000)


def test_linked_batch_applies_all_or_nothing(session_factory) -> None:
    _setup(session_factory)
    chain = [
        Transfer.single("l1", "float", "expense", 300, linked=True),
        Transfer.single("l2", "float", "expense", 800, linked=True),  # breaks the chain
        Transfer.single("l3", "treasury", "expense", 1),
        Transfer.single("ok", "float", "expense", 900),
    ]
    results = [o.result for o in api.submit(session_factory, chain)]
    assert results == [
        Result.LINKED_EVENT_FAILED,
        Result.EXCEEDS_CREDITS,
        Result.LINKED_EVENT_FAILED,
        Result.CREATED,
    ]
    assert _bal(session_factory, "float") == (0, 900, 0, 1000)
    # A good chain applies whole; an open chain fails whole
    good = [
        Transfer.single("g1", "treasury", "float", 5, linked=True),
        Transfer.single("g2", "float", "expense", 105),
    ]
    assert [o.result for o in api.submit(session_factory, good)] == [Result.CREATED] * 2
    opened = [Transfer.single("o1", "treasury", "float", 5, linked=True)]
    assert api.submit(session_factory, opened)[0].result is Result.LINKED_EVENT_CHAIN_OPEN
    # Replaying a whole chain answers exists for each item
    assert [o.result for o in api.submit(session_factory, good)] == [Result.EXISTS] * 2


def test_a_big_batch_is_a_handful_of_statements(session_factory, engine) -> None:
    # Given 20,000 pending payouts against one hot float
    n = 20_000
    _setup(session_factory, funded=n * 10)
    batch = [Transfer.pending(f"payout:{i}:reserve", "float", "expense", 10) for i in range(n)]
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        outcomes = api.submit(session_factory, batch)
        reserve_seconds = time.perf_counter() - started
        posted = api.submit(session_factory, [Transfer.post(t.id) for t in batch[: n // 2]])
        voided = api.submit(session_factory, [Transfer.void(t.id) for t in batch[n // 2 :]])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Then every item is created, in one statement per batch, and quickly
    assert all(o.result is Result.CREATED for o in outcomes + posted + voided)
    assert len(statements) <= 6, statements
    assert reserve_seconds < 20
    assert _bal(session_factory, "float") == (0, n // 2 * 10, 0, n * 10)
    with unit_of_work(session_factory) as s:
        report = api.verify_ledger(s)
    assert report.ok
    assert report.transfers == 2 * n + 1


def test_a_breaching_big_batch_takes_the_exact_slow_path(session_factory) -> None:
    _setup(session_factory, funded=1000)
    batch = [Transfer.single(f"s{i}", "float", "expense", 3 if i % 2 else 400) for i in range(10)]
    results = [o.result for o in api.submit(session_factory, batch)]
    # 400, 3, 400, 3 fit (806); the next 400 does not, the small ones keep fitting
    assert results[:4] == [Result.CREATED] * 4
    assert results[4] is Result.EXCEEDS_CREDITS
    assert results[5::2] == [Result.CREATED] * 3
    assert _bal(session_factory, "float")[1] == 806 + 9


def test_verify_notices_counters_moved_behind_the_triggers(
    session_factory, admin_database_url
) -> None:
    _setup(session_factory)
    # a superuser can move them; sika_app cannot (test_db_roles)
    admin = build_engine(admin_database_url, pool_size=1)
    with admin.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE ledger_accounts SET credits_posted = 5 WHERE code = 'float'"))
    admin.dispose()
    with unit_of_work(session_factory) as s:
        report = api.verify_ledger(s)
    assert not report.ok
    assert any("float" in p for p in report.problems)
    assert report.transfers == 1


def test_statement_lists_an_accounts_transfers(session_factory) -> None:
    _setup(session_factory)
    api.transfer(session_factory, Transfer.pending("p1", "float", "expense", 10))
    api.post_pending(session_factory, "p1")
    with unit_of_work(session_factory) as s:
        lines = api.statement(s, "float")
    assert [(li.id, li.kind, li.side) for li in lines] == [
        ("fund", TransferKind.SINGLE, "credit"),
        ("p1", TransferKind.PENDING, "debit"),
        ("p1:post", TransferKind.POST, "debit"),
    ]


def test_columnar_reserve_and_settle_for_payout_batches(session_factory) -> None:
    # Given a float of 1000 and 120 payout lines of 10 (one more than fits)
    _setup(session_factory, funded=1000)
    ids = [f"payout:{i}:reserve" for i in range(101)]
    with unit_of_work(session_factory) as s:
        outcomes = api.reserve(s, ids, "float", "expense", [10] * 101, timeout=3600)
    assert [o.result for o in outcomes[:100]] == [Result.CREATED] * 100
    assert outcomes[100].result is Result.EXCEEDS_CREDITS
    # When half are posted (one partly) and half voided, twice
    for _ in range(2):
        with unit_of_work(session_factory) as s:
            posted = api.settle(s, ids[:50], amounts=[4] + [None] * 49)
            voided = api.settle(s, ids[50:100], void=True)
    # Then the second round is a replay and the float shows exactly the posted part
    assert {o.result for o in posted + voided} == {Result.EXISTS}
    assert posted[0].id == "payout:0:reserve:post"
    assert _bal(session_factory, "float") == (0, 4 + 49 * 10, 0, 1000)
