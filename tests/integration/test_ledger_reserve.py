"""`reserve` (ledger_reserve, one INSERT of the whole batch) answers and books exactly
what `create_transfers` of the same pending transfers (ledger_submit) does: on its fast
path, on its fallback, and when called around Python with raw SQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from core.db import unit_of_work
from core.errors import ValidationError
from ledger import api
from ledger.types import AccountKind, AccountSpec, Limit, Result, Transfer

ACCOUNTS = [
    AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
    AccountSpec("treasury", AccountKind.EQUITY),
    AccountSpec("expense", AccountKind.EXPENSE),
    AccountSpec("budget", AccountKind.LIABILITY, Limit.CREDITS),
]

Setup = Callable[[Connection], None]


@pytest.fixture
def accounts(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        api.create_accounts(s, ACCOUNTS)


def _fund(amount: int, account: str = "float") -> Setup:
    def setup(conn: Connection) -> None:
        if amount:
            fund = Transfer.single(f"fund:{account}", "treasury", account, amount)
            assert api.create_transfers(conn, [fund])[0].ok

    return setup


def _existing(*transfers: Transfer) -> Setup:
    def setup(conn: Connection) -> None:
        assert all(o.ok for o in api.create_transfers(conn, list(transfers)))

    return setup


def _state(conn: Connection) -> tuple[list[Any], list[Any]]:
    accounts = conn.execute(
        text(
            "SELECT code, debits_pending, debits_posted, credits_pending, credits_posted"
            " FROM ledger_accounts ORDER BY code"
        )
    ).all()
    rows = conn.execute(
        text(
            "SELECT id, debit_account_id, credit_account_id, amount, kind, pending_id, timeout,"
            " expires_at, code, created_at FROM ledger_transfers ORDER BY id"
        )
    ).all()
    return [tuple(a) for a in accounts], [tuple(r) for r in rows]


def _slow_path_ran(conn: Connection) -> bool:
    # ledger_submit's exact path creates its work table; its own fast path does not
    return conn.execute(text("SELECT to_regclass('pg_temp.ledger_batch') IS NOT NULL")).scalar()


def _reserve_before(
    conn: Connection,
    ids: list[str],
    debit: str,
    credit: str,
    amounts: list[int],
    timeout: int = 0,
    code: int = 0,
) -> list[Any]:
    """`reserve` as it was before ledger_reserve: every line sent to ledger_submit."""
    n = len(ids)
    return api._outcomes(
        conn,
        ids,
        {
            "ids": api._column(list(ids), None),
            "debits": api._column([debit] * n, None),
            "credits": api._column([credit] * n, None),
            "amounts": api._column(list(amounts), None),
            "kinds": api._column(["pending"] * n, None),
            "pending_ids": None,
            "timeouts": api._column([timeout] * n, 0),
            "codes": api._column([code] * n, 0),
            "linked": None,
        },
    )


def _both(
    engine: Engine,
    setups: list[Setup],
    ids: list[str],
    debit: str,
    credit: str,
    amounts: list[int],
    **options: int,
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The batch reserved twice in one transaction (so both see the same now()), each
    attempt rolled back: by `reserve`, then by `reserve` as it was (ledger_submit).
    Each run gives (results, accounts, transfer rows, whether the exact path ran)."""
    runs = []
    with engine.connect() as conn, conn.begin():
        for setup in setups:
            setup(conn)
        for submit in (api.reserve, _reserve_before):
            savepoint = conn.begin_nested()
            outcomes = submit(conn, ids, debit, credit, amounts, **options)  # type: ignore[arg-type]
            runs.append(([(o.id, o.result) for o in outcomes], *_state(conn), _slow_path_ran(conn)))
            savepoint.rollback()
        conn.rollback()
    return tuple(runs[0]), tuple(runs[1])


# --- the fast path and the fallback give create_transfers' answers ----------------------


def test_a_batch_that_fits_is_created_without_the_exact_path(engine, accounts) -> None:
    # Given a float of 1000
    # When 5 lines of 10 to 300 are reserved
    ids = [f"payout:{i}" for i in range(5)]
    reserved, submitted = _both(
        engine, [_fund(1000)], ids, "float", "expense", [10, 20, 300, 40, 50], code=7
    )
    # Then every line is created, booked as create_transfers books it, by one INSERT
    assert reserved[0] == [(i, Result.CREATED) for i in ids]
    assert reserved[:3] == submitted[:3]
    assert not reserved[3]


def test_a_limit_breached_mid_batch_is_judged_in_order(engine, accounts) -> None:
    # Given a float of 100; lines of 40, 50, 30, 10, 5: 40 + 50 fit, 30 does not, 10 does
    ids = [f"payout:{i}" for i in range(5)]
    reserved, submitted = _both(engine, [_fund(100)], ids, "float", "expense", [40, 50, 30, 10, 5])
    # Then the breaching lines are refused and later lines still judged, as ledger_submit does
    assert [r for _, r in reserved[0]] == [
        Result.CREATED,
        Result.CREATED,
        Result.EXCEEDS_CREDITS,
        Result.CREATED,
        Result.EXCEEDS_CREDITS,
    ]
    assert reserved == submitted


def test_a_credit_limit_is_judged_like_ledger_submit(engine, accounts) -> None:
    # Given a budget limited on credits, debited 25 so far
    setups = [_fund(100), _existing(Transfer.single("spend", "budget", "expense", 25))]
    ids = ["c1", "c2", "c3"]
    reserved, submitted = _both(engine, setups, ids, "treasury", "budget", [10, 20, 5])
    assert [r for _, r in reserved[0]] == [
        Result.CREATED,
        Result.EXCEEDS_DEBITS,
        Result.CREATED,
    ]
    assert reserved == submitted


def test_every_replay_answer_is_ledger_submits(engine, accounts) -> None:
    # Given transfers under ids the batch reuses: the same one, and one per changed field
    existing = _existing(
        Transfer.pending("same", "float", "expense", 10, code=7),
        Transfer.pending("amount", "float", "expense", 11, code=7),
        Transfer.pending("code", "float", "expense", 10, code=8),
        Transfer.pending("timeout", "float", "expense", 10, code=7, timeout=60),
        Transfer.pending("debit", "treasury", "expense", 10, code=7),
        Transfer.pending("credit", "float", "treasury", 10, code=7),
        Transfer.single("flags", "float", "expense", 10, code=7),
    )
    ids = ["same", "amount", "code", "timeout", "debit", "credit", "flags", "new"]
    # When the batch is reserved
    reserved, submitted = _both(
        engine, [_fund(1000), existing], ids, "float", "expense", [10] * 8, code=7
    )
    # Then each id answers as ledger_submit answers it, and only the new one is created
    assert dict(reserved[0]) == {
        "same": Result.EXISTS,
        "amount": Result.EXISTS_WITH_DIFFERENT_AMOUNT,
        "code": Result.EXISTS_WITH_DIFFERENT_CODE,
        "timeout": Result.EXISTS_WITH_DIFFERENT_TIMEOUT,
        "debit": Result.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID,
        "credit": Result.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID,
        "flags": Result.EXISTS_WITH_DIFFERENT_FLAGS,
        "new": Result.CREATED,
    }
    assert reserved == submitted
    assert reserved[3]


@pytest.mark.parametrize(
    ("debit", "credit", "options", "expected"),
    [
        ("nowhere", "expense", {}, Result.DEBIT_ACCOUNT_NOT_FOUND),
        ("float", "nowhere", {}, Result.CREDIT_ACCOUNT_NOT_FOUND),
        ("float", "float", {}, Result.ACCOUNTS_MUST_BE_DIFFERENT),
        ("float", "expense", {"code": 70_000}, Result.CODE_MUST_BE_VALID),
        ("float", "expense", {"timeout": -1}, Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        ("float", "expense", {"timeout": 3600, "code": 65_535}, Result.CREATED),
    ],
)
def test_accounts_timeouts_and_codes(engine, accounts, debit, credit, options, expected) -> None:
    ids = ["a", "b"]
    reserved, submitted = _both(engine, [_fund(100)], ids, debit, credit, [1, 2], **options)
    assert reserved[0] == [("a", expected), ("b", expected)]
    assert reserved[:3] == submitted[:3]


def test_python_refuses_what_it_always_refused(session_factory, accounts) -> None:
    with unit_of_work(session_factory) as s:
        assert api.reserve(s, [], "float", "expense", []) == []
        for ids, amounts, match in [
            (["ok", "bad id"], [1, 1], "transfer id 'bad id'"),
            (["a,b"], [1], "transfer id 'a,b'"),
            (["x" * 191], [1], "1-190 characters"),
            (["a", "a"], [1, 1], "appears twice"),
            (["a", "b"], [1, 0], "amount 2 of the batch must be a positive"),
            (["a", "b"], [1, 10**15 + 1], r"amount 2 of the batch .*10\^15"),
            (["a", "b"], [1, True], "positive integer"),
        ]:
            with pytest.raises(ValidationError, match=match):
                api.reserve(s, ids, "float", "expense", amounts)
        with pytest.raises(ValidationError, match="account code"):
            api.reserve(s, ["a"], "Float", "expense", [1])
    # an id that reads NULL unquoted in an array literal stays an id
    with unit_of_work(session_factory) as s:
        api.create_transfers(s, [Transfer.single("fund", "treasury", "float", 10)])
        assert api.reserve(s, ["NULL", "null"], "float", "expense", [1, 2])[1].result.ok
        assert api.get_transfer(s, "NULL") is not None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    funded=st.integers(0, 300),
    existing=st.dictionaries(
        st.integers(0, 11),
        st.tuples(
            st.integers(1, 60), st.sampled_from(["float", "treasury"]), st.sampled_from([0, 7])
        ),
        max_size=4,
    ),
    batch=st.dictionaries(st.integers(0, 11), st.integers(1, 60), min_size=1, max_size=10),
    code=st.sampled_from([0, 7]),
    timeout=st.sampled_from([0, 60]),
)
def test_reserve_matches_ledger_submit_on_any_batch(
    engine, accounts, funded, existing, batch, code, timeout
) -> None:
    # Given a float with `funded` to spare and some ids already used, with any fields
    held = sum(amount for amount, debit, _ in existing.values() if debit == "float")
    setups = [
        _fund(funded + held),
        _existing(
            *[
                Transfer.pending(f"line:{k}", debit, "expense", amount, code=c)
                for k, (amount, debit, c) in existing.items()
            ]
        ),
    ]
    ids = [f"line:{k}" for k in batch]
    # When a batch over the same ids and some new ones is reserved
    reserved, submitted = _both(
        engine, setups, ids, "float", "expense", list(batch.values()), code=code, timeout=timeout
    )
    # Then reserve answers and books exactly what create_transfers does
    assert reserved[:3] == submitted[:3]


def test_a_concurrent_reservation_of_the_same_batch_answers_exists(
    session_factory, accounts
) -> None:
    # Given a float of 1000 and a batch reserved by one transaction not yet committed
    with unit_of_work(session_factory) as s:
        api.create_transfers(s, [Transfer.single("fund", "treasury", "float", 1000)])
    ids = [f"payout:{i}" for i in range(10)]
    first = session_factory()
    assert {o.result for o in api.reserve(first, ids, "float", "expense", [10] * 10)} == {
        Result.CREATED
    }
    # When a second transaction reserves the same batch (it waits on the first's ids)
    answers: list[set[Result]] = []

    def second() -> None:
        with unit_of_work(session_factory) as s:
            answers.append({o.result for o in api.reserve(s, ids, "float", "expense", [10] * 10)})

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()
    first.commit()
    first.close()
    thread.join(30)
    # Then it answers `exists` for every line and the float holds one reservation
    assert answers == [{Result.EXISTS}]
    with unit_of_work(session_factory) as s:
        assert api.balance(s, "float").debits_pending == 100
        assert api.verify_ledger(s).ok


# --- around Python ----------------------------------------------------------------------


@pytest.fixture
def raw(database_url: str, session_factory, accounts) -> Iterator[psycopg.Connection]:
    api.transfer(session_factory, Transfer.single("fund", "treasury", "float", 100))
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url) as conn:
        yield conn


@pytest.fixture
def raw_admin(raw: psycopg.Connection, admin_database_url: str) -> Iterator[psycopg.Connection]:
    """`raw`'s database as a superuser, who may insert transfers behind the functions:
    the triggers and CHECKs must hold for it too (sika_app may not insert at all)."""
    url = make_url(admin_database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url) as conn:
        yield conn


_RESERVE = (
    "SELECT item, outcome FROM ledger_reserve(%s::text[], %s, %s, %s::bigint[], %s, %s)"
    " ORDER BY item"
)
_SUBMIT = (
    "SELECT item, outcome FROM ledger_submit(%(ids)s::text[],"
    " array_fill(%(d)s::text, ARRAY[%(n)s]), array_fill(%(c)s::text, ARRAY[%(n)s]),"
    " %(amounts)s::bigint[], array_fill('pending'::text, ARRAY[%(n)s]), NULL,"
    " array_fill(%(t)s::integer, ARRAY[%(n)s]), array_fill(%(code)s::integer, ARRAY[%(n)s]),"
    " NULL) ORDER BY item"
)


def _raw_both(
    conn: psycopg.Connection,
    ids: Any,
    amounts: Any,
    d: str = "float",
    c: str = "expense",
    t: int = 0,
    code: int = 0,
) -> list[Any]:
    """ledger_reserve and ledger_submit on the same raw arrays, each in a savepoint of one
    transaction: their results, counters and rows, or the SQLSTATE they fail with."""
    runs = []
    n = len(ids) if ids is not None else 0
    with conn.transaction(force_rollback=True):
        for statement, params in [
            (_RESERVE, (ids, d, c, amounts, t, code)),
            (
                _SUBMIT,
                {"ids": ids, "d": d, "c": c, "amounts": amounts, "n": n, "t": t, "code": code},
            ),
        ]:
            try:
                with conn.transaction(force_rollback=True):
                    results = conn.execute(statement, params).fetchall()
                    state = conn.execute(
                        "SELECT (SELECT array_agg(a ORDER BY a.id) FROM ledger_accounts a)::text,"
                        " (SELECT array_agg(t ORDER BY t.id) FROM ledger_transfers t)::text"
                    ).fetchone()
                    runs.append((results, state))
            except psycopg.Error as exc:
                runs.append(exc.sqlstate)
    return runs


@pytest.mark.parametrize(
    ("ids", "amounts"),
    [
        (["ok", "bad id", "also-ok"], [1, 2, 3]),
        (["ok", None, "also-ok"], [1, 2, 3]),
        (["ok", "nil", "also-ok"], [1, None, 3]),
        (["ok", "zero", "neg"], [1, 0, -4]),
        (["ok", "short"], [1]),
        (["ok"], [1, 2]),
        (["ok", "x" * 200, "y" * 201], [1, 2, 3]),
        (["big", "small"], [101, 1]),
        (["twice", "twice"], [1, 2]),
        (["fund", "new"], [100, 1]),
        ([], []),
        (None, None),
    ],
)
def test_raw_calls_answer_as_ledger_submit(raw, ids, amounts) -> None:
    reserved, submitted = _raw_both(raw, ids, amounts)
    assert reserved == submitted


def test_raw_calls_with_unusual_accounts_and_fields(raw) -> None:
    for d, c, t, code in [
        ("float", "float", 0, 0),
        ("nowhere", "expense", 0, 0),
        ("float", "expense", 60, 0),
        ("float", "expense", -1, 0),
        ("float", "expense", 0, -1),
        ("float", "expense", 0, 65_536),
    ]:
        reserved, submitted = _raw_both(raw, ["a", "b"], [1, 2], d, c, t, code)
        assert reserved == submitted, (d, c, t, code)


def test_the_transfer_id_check_is_the_bounded_pattern_it_replaced(raw_admin) -> None:
    raw = raw_admin
    # The CHECK now reads `~ '^…*$' AND length(id) <= 200`; ledger_001 spelt it {0,199}
    samples = [
        "a",
        "A9",
        "0",
        "-a",
        "_a",
        ".a",
        "a b",
        "a\n",
        "é",
        "a:b/c@d-e_f.g",
        "a,b",
        "",
        "a" * 199,
        "a" * 200,
        "a" * 201,
        "a" + "-" * 199,
        "a" + "-" * 200,
        "a" * 200 + "\n",
    ]
    rows = raw.execute(
        "SELECT s, s ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$',"
        " s ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$' AND length(s) <= 200"
        " FROM unnest(%s::text[]) AS s",
        (samples,),
    ).fetchall()
    assert [r[1] for r in rows] == [r[2] for r in rows]
    accounts = dict(raw.execute("SELECT code, id FROM ledger_accounts").fetchall())
    for sample, valid, _ in rows:
        insert = (
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount,"
            " kind) VALUES (%s, %s, %s, 1, 'single')"
        )
        with raw.transaction(force_rollback=True):
            if valid:
                raw.execute(insert, (sample, accounts["treasury"], accounts["expense"]))
            else:
                with pytest.raises(errors.CheckViolation):
                    raw.execute(insert, (sample, accounts["treasury"], accounts["expense"]))


def test_the_statement_trigger_books_singles_and_pendings_as_before(
    raw_admin, session_factory
) -> None:
    raw = raw_admin
    # Given raw inserts of single and pending rows over several account pairs at once
    ids = dict(raw.execute("SELECT code, id FROM ledger_accounts").fetchall())
    raw.execute(
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind)"
        " VALUES ('r1', %(f)s, %(e)s, 5, 'single'), ('r2', %(f)s, %(e)s, 7, 'pending'),"
        " ('r3', %(b)s, %(t)s, 3, 'single'), ('r4', %(t)s, %(f)s, 2, 'pending'),"
        " ('r5', %(f)s, %(e)s, 1, 'single')",
        {"f": ids["float"], "e": ids["expense"], "t": ids["treasury"], "b": ids["budget"]},
    )
    raw.commit()
    counters = (
        "SELECT debits_pending, debits_posted, credits_pending, credits_posted"
        " FROM ledger_accounts WHERE code = 'float'"
    )
    assert raw.execute(counters).fetchone() == (7, 6, 2, 100)
    # and a statement mixing a single with a post (its first row resolves nothing)
    raw.execute(
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind,"
        " pending_id) VALUES ('m1', %(f)s, %(e)s, 1, 'single', NULL),"
        " ('r2:post', %(f)s, %(e)s, 7, 'post', 'r2')",
        {"f": ids["float"], "e": ids["expense"]},
    )
    raw.commit()
    # Then every counter is what the transfers give, and a mistimed row is still refused
    assert raw.execute(counters).fetchone() == (0, 14, 2, 100)
    with unit_of_work(session_factory) as s:
        assert api.verify_ledger(s).ok
    with pytest.raises(errors.CheckViolation, match="created_at must be the transaction time"):
        raw.execute(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount,"
            " kind, created_at) VALUES ('late', %s, %s, 1, 'single', now() - interval '1 day')",
            (ids["float"], ids["expense"]),
        )
    raw.rollback()
    with pytest.raises(errors.CheckViolation), raw.transaction():
        # 100 credited, 14 taken: 88 more overdraws
        raw.execute(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount,"
            " kind) VALUES ('over', %s, %s, 88, 'pending')",
            (ids["float"], ids["expense"]),
        )


# --- plain transfers (single transfers above all) take the same one-statement path ------


def _submit_before(conn: Connection, transfers: list[Transfer]) -> list[Any]:
    """`create_transfers` as it was before ledger_move: every item sent to ledger_submit."""
    return api._outcomes(
        conn,
        [t.id for t in transfers],
        {
            "ids": api._column([t.id for t in transfers], None),
            "debits": api._column([t.debit for t in transfers], None),
            "credits": api._column([t.credit for t in transfers], None),
            "amounts": api._column([t.amount for t in transfers], None),
            "kinds": api._column([t.kind.value for t in transfers], None),
            "pending_ids": None,
            "timeouts": api._column([t.timeout for t in transfers], 0),
            "codes": api._column([t.code for t in transfers], 0),
            "linked": None,
        },
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    funding=st.integers(0, 500),
    existing=st.lists(st.integers(1, 60), max_size=3),
    amounts=st.lists(st.integers(1, 120), min_size=1, max_size=6),
    kind=st.sampled_from(["single", "pending"]),
    credit=st.sampled_from(["expense", "budget"]),
)
def test_plain_transfers_match_ledger_submit_on_any_batch(
    engine, accounts, funding, existing, amounts, kind, credit
) -> None:
    make = Transfer.single if kind == "single" else Transfer.pending
    batch = [make(f"t:{i}", "float", credit, a) for i, a in enumerate(amounts)]
    earlier = [make(f"t:{i}", "float", credit, a) for i, a in enumerate(existing)]
    runs = []
    with engine.connect() as conn, conn.begin():
        _fund(funding)(conn)
        # budget's credits may not exceed its debits: give it room for some of the batch
        room = Transfer.single("room:budget", "budget", "treasury", 150)
        assert api.create_transfers(conn, [room])[0].ok
        for submit in (api.create_transfers, _submit_before):
            savepoint = conn.begin_nested()
            for transfer in earlier:
                api.create_transfers(conn, [transfer])
            outcomes = submit(conn, batch)
            runs.append(([(o.id, o.result) for o in outcomes], *_state(conn)))
            savepoint.rollback()
        conn.rollback()
    assert runs[0] == runs[1]
