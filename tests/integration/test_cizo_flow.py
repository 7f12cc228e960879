"""CIZO end to end against real PostgreSQL and the operator sandbox over HTTP: pushes,
merchant payments, duplicated callbacks, the chèque solaire and OpenPAYGO tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpaygo import TokenType, decode_token
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cizo import collections, registry
from cizo.models import Payment, Token
from core import agents
from core.crypto import PiiKeys, load_keys
from core.models import Role
from core.settings import Settings
from ledger import api as ledger
from providers.base import CallbackEvent, Kind, Outcome

KEY = "0123456789abcdef0123456789abcdef"
START = "987654321"
HOUSEHOLD = "22896000031"


@pytest.fixture
def world(
    session_factory: sessionmaker[Session],
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    monkeypatch.setenv("SIKA_HOME", str(tmp_path))
    settings = Settings(sandbox_url=sandbox.url, home=tmp_path)
    keys = load_keys(settings)
    sandbox.put_wallet(HOUSEHOLD, balance=1_000_000)
    with session_factory() as session, session.begin():
        admin = agents.add_agent(session, "admin1", Role.ADMIN, home=tmp_path)
        registry.add_company(
            session, admin, keys, code="BBOXX", name="BBOXX Togo", msisdn="22896000041"
        )
        # 1,000 deposit then 100 a day for 60 days: 7,000 in all
        registry.add_plan(
            session, admin, code="MINI", company="BBOXX", deposit=1_000, per_day=100, term_days=60
        )
        registry.register_kit(
            session,
            admin,
            keys,
            household="Afi Mensah",
            msisdn=HOUSEHOLD,
            company="BBOXX",
            plan="MINI",
            serial="KIT-1",
            opaygo_key=KEY,
            starting_code=START,
        )
        registry.fund_subsidy(
            session,
            admin,
            year=datetime.now(UTC).year,
            amount=100_000,
            operator="flooz",
            reference="t1",
        )
    return {"settings": settings, "keys": keys, "admin": admin}


def _kit(factory: sessionmaker[Session], keys: PiiKeys) -> dict[str, Any]:
    with factory() as session:
        return registry.kit_view(session, registry.get_kit(session, "KIT-1"), keys)


def _verify(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        assert ledger.verify_ledger(session).ok


def _decode_all(tokens: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    count, used, out = 1, None, []
    for token in tokens:
        value, kind, count, used = decode_token(
            token=token["token"],
            secret_key=KEY,
            count=count,
            used_counts=used,
            starting_code=int(START),
        )
        out.append((value, kind))
    return out


def test_pushes_pay_off_the_plan_with_one_disable_payg(
    session_factory: sessionmaker[Session], world: dict[str, Any], sandbox: Any
) -> None:
    settings, keys, admin = world["settings"], world["keys"], world["admin"]
    # Given the deposit paid by push, then many small pushes
    for amount in [1_000] + [250] * 16:
        started = collections.start_collection(
            session_factory, settings, keys, serial="KIT-1", amount=amount, agent=admin
        )
        done = collections.wait_for_collection(
            session_factory, settings, keys, started.reference, timeout=10, interval=0.2
        )
        assert done.confirmed == [started.reference]
        _verify(session_factory)
    kit = _kit(session_factory, keys)
    # Then the chèque solaire, capped at 2,000 this month, helped complete the 7,000 price
    assert (kit["paid"], kit["subsidy"], kit["remaining"], kit["status"]) == (
        5_000,
        2_000,
        0,
        "unlocked",
    )
    decoded = _decode_all(kit["tokens"])
    assert [kind for _, kind in decoded].count(TokenType.DISABLE_PAYG) == 1
    assert decoded[-1][1] == TokenType.DISABLE_PAYG
    assert all(kind == TokenType.ADD_TIME for _, kind in decoded[:-1])
    # And the company is owed the whole price
    with session_factory() as session:
        assert registry.available(session, registry.company_account("BBOXX")) == 7_000
    assert any("123" in sms["message"] or "Code" in sms["message"] for sms in sandbox.sms())


def test_duplicated_merchant_callback_counts_once(
    session_factory: sessionmaker[Session], world: dict[str, Any], sandbox: Any
) -> None:
    settings, keys = world["settings"], world["keys"]
    # Given a household paying its kit's serial on its own, twice reported by callback
    paid = sandbox.pay(HOUSEHOLD, 1_300, "KIT-1", "flooz")
    event = CallbackEvent(
        provider="flooz",
        sika_reference="KIT-1",
        operator_reference=paid["operator_reference"],
        outcome=Outcome.SUCCEEDED,
        amount=1_300,
        kind=Kind.COLLECTION,
    )
    for callback_id in (1, 2):
        collections.handle_callback(
            event, callback_id, factory=session_factory, settings=settings, keys=keys
        )
    # Then the hint is kept once, and counted once when the statement confirms it
    statement = sandbox.statement("flooz", sandbox.today())
    for _ in range(2):
        collections.confirm_statement(
            session_factory, settings, keys, provider="flooz", data=statement, agent=None
        )
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 1
        assert session.scalar(select(func.count()).select_from(Token)) == 1
    kit = _kit(session_factory, keys)
    # 1,000 deposit, 300 beyond it + 300 subsidy = 6 days
    assert (kit["paid"], kit["subsidy"], kit["days_credited"]) == (1_300, 300, 6)
    assert _decode_all(kit["tokens"]) == [(6, TokenType.ADD_TIME)]
    _verify(session_factory)
