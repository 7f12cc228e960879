"""The database half of the ledger's rules, proven by going around Python: raw SQL that
would edit history, move counters or break a limit is refused by PostgreSQL itself."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.engine import make_url

from core.db import unit_of_work
from ledger import api
from ledger.types import AccountKind, AccountSpec, Limit, Transfer


@pytest.fixture
def raw(owner_database_url: str, session_factory):
    """A psycopg connection as the tables' owner, sika_owner, plus a funded float: the
    triggers and CHECKs bind even the owner (sika_app is refused sooner: test_db_roles)."""
    with unit_of_work(session_factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("expense", AccountKind.EXPENSE),
            ],
        )
    api.transfer(session_factory, Transfer.single("fund", "treasury", "float", 100))
    api.transfer(session_factory, Transfer.pending("p1", "float", "expense", 10))
    url = make_url(owner_database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_transfers SET amount = 1 WHERE id = 'fund'",
        "DELETE FROM ledger_transfers WHERE id = 'fund'",
        "TRUNCATE ledger_transfers CASCADE",
        "UPDATE ledger_seals SET hash = 'x'",
        "DELETE FROM ledger_accounts WHERE code = 'expense'",
    ],
)
def test_history_cannot_be_edited(raw, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        raw.execute(statement)


def test_counters_cannot_be_written_directly(raw) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="only by applying transfers"):
        raw.execute("UPDATE ledger_accounts SET credits_posted = 10000 WHERE code = 'float'")
    with pytest.raises(errors.InsufficientPrivilege, match="renamed"):
        raw.execute("UPDATE ledger_accounts SET code = 'other' WHERE code = 'float'")


def test_a_raw_insert_breaking_a_limit_is_refused(raw) -> None:
    ids = dict(raw.execute("SELECT code, id FROM ledger_accounts").fetchall())
    with pytest.raises(errors.CheckViolation) as caught:
        raw.execute(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind)"
            " VALUES ('raw', %s, %s, 91, 'single')",
            (ids["float"], ids["expense"]),
        )
    assert caught.value.sqlstate == "23514"
    # 90 fits exactly (100 credited, 10 pending): the trigger applies it
    raw.execute(
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind)"
        " VALUES ('raw', %s, %s, 90, 'single')",
        (ids["float"], ids["expense"]),
    )
    assert raw.execute(
        "SELECT debits_pending + debits_posted FROM ledger_accounts WHERE code = 'float'"
    ).fetchone() == (100,)


def test_amounts_ids_and_timestamps_are_checked(raw) -> None:
    ids = dict(raw.execute("SELECT code, id FROM ledger_accounts").fetchall())
    insert = (
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount,"
        " kind, created_at) VALUES (%s, %s, %s, %s, 'single', %s)"
    )
    for tid, amount, at in [
        ("neg", -5, None),
        ("zero", 0, None),
        ("bad id", 5, None),
        ("old", 5, "2020-01-01"),
    ]:
        with pytest.raises(errors.CheckViolation):
            raw.execute(
                insert.replace(", %s)", ", coalesce(%s::timestamptz, now()))"),
                (tid, ids["treasury"], ids["expense"], amount, at),
            )


def test_a_raw_resolution_must_match_its_pending(raw) -> None:
    ids = dict(raw.execute("SELECT code, id FROM ledger_accounts").fetchall())
    post = (
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind,"
        " pending_id) VALUES (%s, %s, %s, %s, 'post', 'p1')"
    )
    with pytest.raises(errors.CheckViolation, match="does not match"):
        raw.execute(post, ("big", ids["float"], ids["expense"], 11))
    with pytest.raises(errors.CheckViolation, match="does not match"):
        raw.execute(post, ("wrong", ids["treasury"], ids["expense"], 5))
    raw.execute(post, ("ok", ids["float"], ids["expense"], 4))
    with pytest.raises(errors.UniqueViolation):
        raw.execute(post, ("twice", ids["float"], ids["expense"], 4))
    assert raw.execute(
        "SELECT debits_pending, debits_posted FROM ledger_accounts WHERE code = 'float'"
    ).fetchone() == (0, 4)
