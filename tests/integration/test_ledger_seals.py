"""Daily seals: sealing is idempotent and refuses open days; any row altered, inserted or
removed in a sealed day behind the triggers' back makes verification name that day.

The days are those around a new year on Sika's clock: transfers made in the last second
of 31 December, sealed once the clock has passed midnight, so the day that has just
ended is sealed whatever the wall clock says."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core import clock, signing
from core.db import unit_of_work
from core.errors import LedgerError, ValidationError
from ledger import api, seals
from ledger.types import AccountKind, AccountSpec, Limit, Transfer
from tests.conftest import ADMIN_URL, new_years_eve

EVE = new_years_eve()  # 23:59:59 on 31 December
YESTERDAY = EVE.date()
TODAY = YESTERDAY + dt.timedelta(days=1)  # 1 January
BEFORE = YESTERDAY - dt.timedelta(days=1)


def _connect(database_url: str) -> psycopg.Connection:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    return psycopg.connect(url, autocommit=True)


def _superuser(database_url: str) -> psycopg.Connection:
    """The same database as the test server's superuser: sika_app cannot tamper at all."""
    admin = make_url(ADMIN_URL)
    return _connect(
        make_url(database_url)
        .set(username=admin.username, password=admin.password)
        .render_as_string(False)
    )


@pytest.fixture
def history(
    session_factory, database_url: str, clock_at: Callable[[dt.datetime], dt.datetime]
) -> None:
    """Transfers made in the last half second of 31 December (one set moved a day back
    by a superuser with triggers off, since production rows always carry their
    transaction's time), then one on 1 January once Sika's clock has passed midnight."""
    clock_at(EVE + dt.timedelta(seconds=0.5))
    with unit_of_work(session_factory) as s:
        api.create_accounts(
            s,
            [
                AccountSpec("float", AccountKind.ASSET, Limit.DEBITS),
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("expense", AccountKind.EXPENSE),
            ],
        )
    api.submit(
        session_factory,
        [
            Transfer.single("d1:fund", "treasury", "float", 1000),
            Transfer.single("d1:pay", "float", "expense", 10),
        ],
    )
    _backdate(database_url, "d1:%", 1)
    api.submit(
        session_factory, [Transfer.single(f"d2:pay:{i}", "float", "expense", 5) for i in range(5)]
    )
    assert clock.today() == YESTERDAY, "the transfers of 31 December came after midnight"
    while clock.today() == YESTERDAY:
        time.sleep(0.01)
    api.transfer(session_factory, Transfer.single("today", "float", "expense", 1))
    # every transfer touches the float: its statement dates them on Sika's clock
    with unit_of_work(session_factory) as s:
        days = {line.id: line.at.date() for line in api.statement(s, "float")}
    assert days == {
        "d1:fund": BEFORE,
        "d1:pay": BEFORE,
        **{f"d2:pay:{i}": YESTERDAY for i in range(5)},
        "today": TODAY,
    }


def _backdate(database_url: str, pattern: str, days: int) -> None:
    with _superuser(database_url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "UPDATE ledger_transfers SET created_at = created_at - make_interval(days => %s)"
            " WHERE id LIKE %s",
            (days, pattern),
        )


def _seal_both(session_factory, key) -> None:
    with unit_of_work(session_factory) as s:
        assert seals.seal_day(s, key, BEFORE).transfers == 2
        assert seals.seal_day(s, key, YESTERDAY).transfers == 5


def _verify(session_factory, key) -> seals.SealReport:
    with unit_of_work(session_factory) as s:
        return seals.verify_seals(s, key.public_key())


def test_seal_chain_verify(history, session_factory) -> None:
    key = signing.generate_private_key()
    with unit_of_work(session_factory) as s, pytest.raises(ValidationError, match="first"):
        seals.seal_day(s, key, YESTERDAY)  # the day before is unsealed
    _seal_both(session_factory, key)
    with unit_of_work(session_factory) as s:
        again = seals.seal_day(s, key)  # default: yesterday, already sealed
        assert not again.created
        assert again.day == YESTERDAY
        first = seals.seal_day(s, key, BEFORE)
        assert again.previous == first.hash
        with pytest.raises(ValidationError, match="only days that have ended"):
            seals.seal_day(s, key, TODAY)
    report = _verify(session_factory, key)
    assert report.ok
    assert report.seals == 2
    assert report.last_day == YESTERDAY
    # A different key (an attacker's re-signing, or the wrong configuration) fails
    other = _verify(session_factory, signing.generate_private_key())
    assert not other.ok
    assert "signature" in other.problems[0]


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE ledger_transfers SET amount = amount + 1 WHERE id = 'd2:pay:3'",
        "DELETE FROM ledger_transfers WHERE id = 'd2:pay:0'",
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, kind,"
        " created_at) SELECT 'forged', debit_account_id, credit_account_id, 999, 'single',"
        " created_at FROM ledger_transfers WHERE id = 'd2:pay:1'",
    ],
    ids=["altered", "removed", "inserted"],
)
def test_tampering_names_the_day(history, session_factory, database_url, tamper) -> None:
    key = signing.generate_private_key()
    _seal_both(session_factory, key)
    with _superuser(database_url) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(tamper)
    report = _verify(session_factory, key)
    assert not report.ok
    assert report.bad_days == (YESTERDAY.isoformat(),)


def test_a_removed_seal_breaks_the_chain(history, session_factory, database_url) -> None:
    key = signing.generate_private_key()
    _seal_both(session_factory, key)
    with _superuser(database_url) as conn, conn.transaction():
        conn.execute("ALTER TABLE ledger_seals DISABLE TRIGGER ALL")
        conn.execute("DELETE FROM ledger_seals WHERE day = %s", (BEFORE,))
        conn.execute("ALTER TABLE ledger_seals ENABLE TRIGGER ALL")
    report = _verify(session_factory, key)
    assert not report.ok
    assert set(report.bad_days) == {YESTERDAY.isoformat(), BEFORE.isoformat()}


def test_an_open_transaction_from_before_the_day_end_postpones_sealing(
    session_factory, database_url
) -> None:
    # a writer's transaction, as the writers' role: sealing sees its own role's sessions
    with _connect(database_url) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1")
        end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        with unit_of_work(session_factory) as s, pytest.raises(LedgerError, match="open since"):
            seals._in_flight_guard(s, end)
        other.execute("ROLLBACK")
    with unit_of_work(session_factory) as s:
        seals._in_flight_guard(s, end)
