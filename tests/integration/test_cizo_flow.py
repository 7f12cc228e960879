"""CIZO end to end against real PostgreSQL and the operator sandbox over HTTP: pushes,
merchant payments, duplicated callbacks, the chèque solaire and OpenPAYGO tokens; each
act of a person a request signed with their own key.

Every test starts at 23:59:59 on 31 December on Sika's clock and the sandbox's (the
chèque solaire is capped by calendar month and drawn on the year's allocation), so each
passes whenever it runs, the turn of a month and a year included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpaygo import TokenType, decode_token
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cizo import collections, payments, registry, settlement
from cizo.models import Collection, Company, Payment, Token
from cizo.rules import add_months
from core import agents
from core.authority import SignedRequest, load_agent_key, sign_request, signed_by
from core.crypto import PiiKeys, load_keys
from core.errors import AuthorizationError, ValidationError
from core.models import AuditEntry
from core.settings import Settings
from ledger import api as ledger
from payouts.models import PayoutBatch, PayoutLine, PreflightLookup
from providers.base import CallbackEvent, Kind, Outcome

KEY = "0123456789abcdef0123456789abcdef"
START = "987654321"
HOUSEHOLD = "22896000031"


class World:
    """The operator sandbox, Sika's settings and keys, and people signing with their own."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, year: int) -> None:
        self.factory = factory
        self.settings = settings
        self.keys = load_keys(settings)
        self.year = year  # the year the test starts in, whose allocation it funds

    def sign(self, agent: str, command: str, arguments: dict[str, Any]) -> SignedRequest:
        return signed_by(agent, command, arguments, settings=self.settings)

    def run(self, work: Callable[[Session], Any]) -> Any:
        with self.factory() as session, session.begin():
            return work(session)

    def add_plan(self, session: Session, **fields: Any) -> None:
        registry.add_plan(session, self.sign("awa", "cizo.plan.add", fields), **fields)

    def register_kit(self, session: Session, **fields: Any) -> None:
        fields = {"opaygo_key": KEY, "starting_code": START, "company": "BBOXX", **fields}
        arguments = registry.kit_arguments(self.keys, **fields)
        registry.register_kit(
            session, self.sign("awa", "cizo.kit.register", arguments), self.keys, **fields
        )

    def fund(self, session: Session, agent: str = "kofi", **fields: Any) -> dict[str, Any]:
        request = self.sign(agent, "cizo.subsidy.fund", fields)
        return registry.fund_subsidy(session, request, **fields)

    def collect(self, serial: str, amount: int) -> Any:
        request = self.sign("awa", "cizo.collect", {"serial": serial, "amount": amount})
        return collections.start_collection(
            self.factory, self.settings, self.keys, request, serial=serial, amount=amount
        )

    def confirm_statement(self, data: bytes, agent: str = "awa") -> collections.Outcomes:
        arguments = {"provider": "flooz", "statement_sha256": collections.statement_digest(data)}
        request = self.sign(agent, "cizo.payments.confirm", arguments)
        return collections.confirm_statement(
            self.factory, self.settings, self.keys, request, provider="flooz", data=data
        )


@pytest.fixture(autouse=True)
def _at_new_years_eve(at_new_years_eve: datetime) -> datetime:
    """Every test here starts a second before the year ends (tests/conftest.py)."""
    return at_new_years_eve


@pytest.fixture
def world(
    session_factory: sessionmaker[Session],
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    at_new_years_eve: datetime,
) -> World:
    """awa (maker), kofi (treasurer), ama (auditor), root (admin); BBOXX, its MINI plan,
    KIT-1, and the chèque solaire of this year and the next (the clock turns the year)."""
    monkeypatch.setenv("SIKA_HOME", str(tmp_path))
    keys_dir = tmp_path / "agent-keys"
    settings = Settings(sandbox_url=sandbox.url, home=tmp_path, keys_dir=keys_dir)
    world = World(session_factory, settings, at_new_years_eve.year)
    sandbox.put_wallet(HOUSEHOLD, balance=1_000_000)
    with session_factory() as session, session.begin():
        for name, role in (
            ("awa", "maker"),
            ("kofi", "treasurer"),
            ("ama", "auditor"),
            ("root", "admin"),
        ):
            agents.add_agent(session, name, role, keys_dir=keys_dir)
        company = {"code": "BBOXX", "name": "BBOXX Togo", "msisdn": "22896000041"}
        request = world.sign(
            "awa", "cizo.company.add", registry.company_arguments(world.keys, **company)
        )
        registry.add_company(session, request, world.keys, **company)
        # 1,000 deposit then 100 a day for 60 days: 7,000 in all
        world.add_plan(
            session, code="MINI", company="BBOXX", deposit=1_000, per_day=100, term_days=60
        )
        world.register_kit(
            session, household="Afi Mensah", msisdn=HOUSEHOLD, plan="MINI", serial="KIT-1"
        )
        for year in (world.year, world.year + 1):
            world.fund(session, year=year, amount=100_000, operator="flooz", reference="t1")
    return world


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
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    # Given the deposit paid by push, then small pushes until the kit is paid off: 16 of
    # them within one month; fewer when they straddle the new year, since January's cap
    # then adds its own chèque solaire
    for amount in [1_000] + [250] * 16:
        if _kit(session_factory, keys)["status"] == "unlocked":
            break
        started = world.collect("KIT-1", amount)
        done = collections.wait_for_collection(
            session_factory, settings, keys, started.reference, timeout=10, interval=0.2
        )
        assert done.confirmed == [started.reference]
        _verify(session_factory)
    kit = _kit(session_factory, keys)
    # Then the chèque solaire helped complete the 7,000 price: capped at 2,000 in each
    # calendar month (the pushes may straddle the new year), one month's cap filled
    assert (kit["paid"] + kit["subsidy"], kit["remaining"], kit["status"]) == (
        7_000,
        0,
        "unlocked",
    )
    by_month = _subsidy_by_month(session_factory)
    assert all(total <= 2_000 for total in by_month.values()), by_month
    assert kit["subsidy"] == sum(by_month.values()) >= 2_000
    # And each payment's subsidy was drawn on the allocation of the year it was paid in
    for year in (world.year, world.year + 1):
        drawn = sum(total for (y, _), total in by_month.items() if y == year)
        assert _balance(session_factory, registry.subsidy_account(year)) == 100_000 - drawn
    decoded = _decode_all(kit["tokens"])
    assert [kind for _, kind in decoded].count(TokenType.DISABLE_PAYG) == 1
    assert decoded[-1][1] == TokenType.DISABLE_PAYG
    assert all(kind == TokenType.ADD_TIME for _, kind in decoded[:-1])
    # And the company is owed the whole price
    with session_factory() as session:
        assert registry.available(session, registry.company_account("BBOXX")) == 7_000
    assert any("123" in sms["message"] or "Code" in sms["message"] for sms in sandbox.sms())


def _subsidy_by_month(factory: sessionmaker[Session]) -> dict[tuple[int, int], int]:
    """The chèque solaire of the confirmed payments, by (year, month) of payment."""
    totals: dict[tuple[int, int], int] = {}
    with factory() as session:
        rows = session.execute(
            select(Payment.paid_at, Payment.subsidy_amount).where(Payment.status == "confirmed")
        )
        for paid_at, subsidy in rows:
            month = (paid_at.astimezone(UTC).year, paid_at.astimezone(UTC).month)
            totals[month] = totals.get(month, 0) + subsidy
    return totals


def test_the_month_cap_and_the_allocation_turn_with_the_year(
    session_factory: sessionmaker[Session],
    world: World,
    sandbox: Any,
    clock_at: Callable[[datetime], datetime],
) -> None:
    settings, keys = world.settings, world.keys
    eve = datetime(world.year, 12, 31, 23, 59, 59, tzinfo=UTC)
    old_year, new_year = (
        registry.subsidy_account(world.year),
        registry.subsidy_account(world.year + 1),
    )
    # Given a household paying 3,500 at 23:59:59 on 31 December: 2,500 beyond the deposit
    first = sandbox.pay(HOUSEHOLD, 3_500, "KIT-1", "flooz")
    clock_at(eve)
    assert collections.note_merchant_payment(
        session_factory, settings, keys, _callback(first)
    ).confirmed == [first["operator_reference"]]
    # When it pays 500 more three seconds later, on 1 January
    second = sandbox.pay(HOUSEHOLD, 500, "KIT-1", "flooz")
    clock_at(eve + timedelta(seconds=3))
    assert collections.note_merchant_payment(
        session_factory, settings, keys, _callback(second)
    ).confirmed == [second["operator_reference"]]
    # Then the first counted against December's cap (2,000 of its 2,500) and the old
    # year's allocation, the second against January's cap and the new year's allocation
    with session_factory() as session:
        rows = session.execute(
            select(Payment.paid_at, Payment.subsidy_amount).order_by(Payment.id)
        ).all()
    assert [(at.astimezone(UTC).date(), subsidy) for at, subsidy in rows] == [
        (eve.date(), 2_000),
        (eve.date() + timedelta(days=1), 500),
    ]
    assert _balance(session_factory, old_year) == 100_000 - 2_000
    assert _balance(session_factory, new_year) == 100_000 - 500
    kit = _kit(session_factory, keys)
    assert (kit["paid"], kit["subsidy"]) == (4_000, 2_500)
    _verify(session_factory)


def _callback(paid: dict[str, Any], serial: str = "KIT-1", **over: Any) -> CallbackEvent:
    fields: dict[str, Any] = {
        "provider": "flooz",
        "sika_reference": serial,
        "operator_reference": paid["operator_reference"],
        "outcome": Outcome.SUCCEEDED,
        "amount": paid["amount"],
        "kind": Kind.COLLECTION,
        **over,
    }
    return CallbackEvent(**fields)


def _counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Payment)) or 0,
            session.scalar(
                select(func.count()).select_from(Payment).where(Payment.status == "confirmed")
            )
            or 0,
            session.scalar(select(func.count()).select_from(Token)) or 0,
        )


def test_duplicated_merchant_callback_counts_once_in_real_time(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    # Given a household paying its kit's serial on its own, reported twice by callback
    paid = sandbox.pay(HOUSEHOLD, 1_300, "KIT-1", "flooz")
    for callback_id in (1, 2):
        collections.handle_callback(
            _callback(paid), callback_id, factory=session_factory, settings=settings, keys=keys
        )
    # Then the status query by Flooz's reference counted it at once, and only once
    assert _counts(session_factory) == (1, 1, 1)
    kit = _kit(session_factory, keys)
    # 1,000 deposit, 300 beyond it + 300 subsidy = 6 days
    assert (kit["paid"], kit["subsidy"], kit["days_credited"]) == (1_300, 300, 6)
    assert _decode_all(kit["tokens"]) == [(6, TokenType.ADD_TIME)]
    # And the statement, the catch-up path, finds nothing left to count
    statement = sandbox.statement("flooz", paid["at"][:10])
    again = world.confirm_statement(statement)
    assert again.confirmed == []
    assert _counts(session_factory) == (1, 1, 1)
    _verify(session_factory)


def test_forged_callbacks_never_count_and_the_statement_catches_up(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    paid = sandbox.pay(HOUSEHOLD, 1_300, "KIT-1", "flooz")
    forged = [
        # an amount the operator never saw
        _callback(paid, amount=130_000),
        # a reference the operator never issued
        _callback(paid, operator_reference="4199999999"),
    ]
    for event in forged:
        outcome = collections.note_merchant_payment(session_factory, settings, keys, event)
        assert outcome.confirmed == []
    # Then nothing counted, no token: the hints wait unconfirmed
    assert _counts(session_factory) == (2, 0, 0)
    assert _kit(session_factory, keys)["paid"] == 0
    # When the statement arrives, the operator's amount counts once under its reference
    statement = sandbox.statement("flooz", paid["at"][:10])
    done = world.confirm_statement(statement, agent="ama")
    assert done.confirmed == [paid["operator_reference"]]
    kit = _kit(session_factory, keys)
    assert (kit["paid"], kit["subsidy"]) == (1_300, 300)
    # And the forged hint of an invented reference stays unconfirmed, asked again in vain
    again = collections.check_merchant_payments(session_factory, settings, keys)
    assert (again.confirmed, again.unconfirmed) == ([], ["4199999999"])
    assert _counts(session_factory) == (2, 1, 1)
    _verify(session_factory)


def test_a_tmoney_merchant_payment_is_confirmed_by_ref_tmoney(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    with session_factory() as session, session.begin():
        world.register_kit(
            session, household="Ama Lawson", msisdn="22890000032", plan="MINI", serial="KIT-T"
        )
    sandbox.put_wallet("22890000032", balance=50_000)
    paid = sandbox.pay("22890000032", 1_000, "KIT-T", "tmoney")
    event = _callback(paid, serial="KIT-T", provider="tmoney")
    done = collections.note_merchant_payment(session_factory, settings, keys, event)
    assert done.confirmed == [paid["operator_reference"]]
    with session_factory() as session:
        kit = registry.kit_view(session, registry.get_kit(session, "KIT-T"), keys)
    assert (kit["status"], kit["paid"]) == ("active", 1_000)
    # a callback naming another kit for that payment is refused by the operator's record
    other = _callback(paid, serial="KIT-1", provider="tmoney")
    assert collections.note_merchant_payment(session_factory, settings, keys, other).confirmed == []
    _verify(session_factory)


def test_subsidy_stops_36_months_after_activation(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    activated = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    with session_factory() as session, session.begin():
        world.add_plan(
            session, code="LONG", company="BBOXX", deposit=1_000, per_day=10, term_days=3_000
        )
        world.register_kit(
            session, household="Kossi Amegah", msisdn=HOUSEHOLD, plan="LONG", serial="KIT-L"
        )
        for year in (2026, 2028, 2029):
            world.fund(session, year=year, amount=50_000, operator="flooz", reference=f"y{year}")

    def pay(amount: int, at: datetime) -> int:
        started = world.collect("KIT-L", amount)
        done = collections.wait_for_collection(
            session_factory,
            settings,
            keys,
            started.reference,
            timeout=10,
            interval=0.2,
            now=lambda: at,
        )
        assert done.confirmed == [started.reference]
        _verify(session_factory)
        with session_factory() as session:
            return session.scalars(
                select(Payment.subsidy_amount).order_by(Payment.id.desc()).limit(1)
            ).one()

    # Given a kit activated by its deposit on 10 January 2026
    assert pay(1_500, activated) == 500
    # Then a payment a minute before the 36 months end still earns the chèque solaire
    end = add_months(activated, 36)
    assert pay(300, end - timedelta(minutes=1)) == 300
    # And from the 36th month on, payments earn none, month after month
    assert pay(300, end) == 0
    assert pay(300, add_months(end, 1)) == 0
    with session_factory() as session:
        kit = registry.kit_view(session, registry.get_kit(session, "KIT-L"), keys)
        # only the last subsidised payment (January 2029) drew on 2029's allocation
        assert registry.available(session, registry.subsidy_account(2029)) == 49_700
    assert (kit["paid"], kit["subsidy"]) == (2_400, 800)


def test_paying_after_payoff_issues_no_second_disable_payg(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    settings, keys = world.settings, world.keys
    # Given the 7,000 plan paid in many merchant payments, each confirmed by status query
    for amount in [1_000] + [200] * 20:
        paid = sandbox.pay(HOUSEHOLD, amount, "KIT-1", "flooz")
        event = _callback(paid)
        collections.note_merchant_payment(session_factory, settings, keys, event)
        _verify(session_factory)
    kit = _kit(session_factory, keys)
    assert (kit["status"], kit["remaining"]) == ("unlocked", 0)
    # When the household pays once more on its own (a push is refused outright)
    with pytest.raises(ValidationError, match="paid off"):
        world.collect("KIT-1", 200)
    # (what was owed back before: payments beyond the price, should the months' caps have
    # met it before the last one)
    refunds = _balance(session_factory, registry.REFUNDS_ACCOUNT)
    extra = sandbox.pay(HOUSEHOLD, 200, "KIT-1", "flooz")
    done = collections.note_merchant_payment(session_factory, settings, keys, _callback(extra))
    assert done.confirmed == [extra["operator_reference"]]
    # Then the money is owed back, and there is still exactly one DISABLE_PAYG, the last token
    kinds = [kind for _, kind in _decode_all(_kit(session_factory, keys)["tokens"])]
    assert kinds.count(TokenType.DISABLE_PAYG) == 1
    assert kinds[-1] == TokenType.DISABLE_PAYG
    assert _balance(session_factory, registry.REFUNDS_ACCOUNT) == refunds + 200
    _verify(session_factory)


def _balance(factory: sessionmaker[Session], code: str) -> int:
    with factory() as session:
        return registry.available(session, code)


def test_only_the_treasurer_funds_and_sets_the_cheque_solaire(
    session_factory: sessionmaker[Session], world: World
) -> None:
    year = world.year
    allocation = registry.subsidy_account(year)
    before = _balance(session_factory, allocation)
    funding = {"year": year, "amount": 5_000, "operator": "flooz", "reference": "t2"}
    # Given a maker, an auditor and an admin, each with their own key
    for agent in ("awa", "ama", "root"):
        # When each funds the chèque solaire, or changes its monthly cap
        with pytest.raises(AuthorizationError, match="needs treasurer"):
            world.run(lambda s, a=agent: world.fund(s, agent=a, **funding))
        request = world.sign(agent, "cizo.programme.set", {"monthly_amount": 9, "months": None})
        with pytest.raises(AuthorizationError, match="needs treasurer"):
            world.run(lambda s, r=request: registry.set_programme(s, r, monthly_amount=9))
    # Then nothing changed
    assert _balance(session_factory, allocation) == before
    with session_factory() as session:
        assert registry.programme(session).monthly_subsidy_amount == 2_000
    # And the treasurer does both
    with session_factory() as session, session.begin():
        assert world.fund(session, **funding)["available"] == before + 5_000
        request = world.sign("kofi", "cizo.programme.set", {"monthly_amount": 2_500, "months": 24})
        row = registry.set_programme(session, request, monthly_amount=2_500, months=24)
        assert (row.monthly_subsidy_amount, row.subsidy_months) == (2_500, 24)


def test_a_request_is_the_signers_own_for_what_it_names_and_once(
    session_factory: sessionmaker[Session], world: World
) -> None:
    year = world.year
    funding = {"year": year, "amount": 5_000, "operator": "flooz", "reference": "t3"}
    # Given awa's own key, used to sign a funding in the treasurer's name
    forged = sign_request(
        "cizo.subsidy.fund", funding, "kofi", load_agent_key("awa", world.settings)
    )
    # Then it is refused: only kofi's key acts as kofi
    with pytest.raises(AuthorizationError, match="does not verify with the key of agent 'kofi'"):
        world.run(lambda s: registry.fund_subsidy(s, forged, **funding))
    # And a correction signed for 5 days is not one of 50
    request = world.sign("awa", "cizo.kit.correct", {"serial": "KIT-1", "days": 5})
    with pytest.raises(AuthorizationError, match="differ from those it would act on"):
        world.run(
            lambda s: payments.correct_kit(
                s, request, world.keys, serial="KIT-1", days=50, now=payments.utcnow()
            )
        )
    # And a push request serves once
    request = world.sign("awa", "cizo.collect", {"serial": "KIT-1", "amount": 1_000})
    collections.start_collection(
        session_factory, world.settings, world.keys, request, serial="KIT-1", amount=1_000
    )
    with pytest.raises(AuthorizationError, match="already used"):
        collections.start_collection(
            session_factory, world.settings, world.keys, request, serial="KIT-1", amount=1_000
        )
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Collection)) == 1
    assert _balance(session_factory, registry.subsidy_account(year)) == 100_000


def _owed_company(world: World, sandbox: Any, code: str, msisdn: str, serial: str) -> int:
    """Company `code`, paid on `msisdn`, owed what a household paid for its kit `serial`:
    what it is owed."""
    company = {"code": code, "name": f"{code} Solaire", "msisdn": msisdn}
    with world.factory() as session, session.begin():
        request = world.sign(
            "awa", "cizo.company.add", registry.company_arguments(world.keys, **company)
        )
        registry.add_company(session, request, world.keys, **company)
        world.add_plan(
            session, code=f"{code}-P", company=code, deposit=1_000, per_day=100, term_days=60
        )
        world.register_kit(
            session, household="Kodjo Amah", msisdn=HOUSEHOLD, plan=f"{code}-P", serial=serial,
            company=code,
        )  # fmt: skip
    paid = sandbox.pay(HOUSEHOLD, 1_300, serial, "flooz")
    assert collections.note_merchant_payment(
        world.factory, world.settings, world.keys, _callback(paid, serial=serial)
    ).confirmed == [paid["operator_reference"]]
    owed = _balance(world.factory, registry.company_account(code))
    assert owed > 0
    return owed


def _settle(world: World, code: str) -> PayoutBatch:
    request = world.sign("awa", settlement.SETTLE, settlement.settle_arguments(code))
    return settlement.settle(world.factory, request, code, world.keys, settings=world.settings)


def test_a_settlement_to_a_locked_wallet_is_refused_and_the_money_stays_owed(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    # Given a company owed money, whose wallet the operator has locked (test number 000003)
    owed = _owed_company(world, sandbox, "LOKO", "22896000003", "KIT-L")
    # When its maker settles it
    with pytest.raises(ValidationError) as refused:
        _settle(world, "LOKO")
    # Then the settlement is refused, naming the wallet's state and what stays owed
    message = str(refused.value)
    assert "LOKO's wallet 22896****03 at flooz is locked" in message
    assert f"the {owed} FCFA stay owed to LOKO" in message
    # And no batch was built, nothing was sent, and the company is owed as much as before
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PayoutBatch)) == 0
        assert session.scalar(select(func.count()).select_from(PayoutLine)) == 0
        verdicts = session.scalars(select(PreflightLookup.verdict)).all()
    assert verdicts == ["locked"]
    assert not [t for t in sandbox.transactions() if t.get("kind") == "payout"]
    assert _balance(session_factory, registry.company_account("LOKO")) == owed


def test_a_settlement_to_a_ported_number_is_paid_at_the_other_operator(
    session_factory: sessionmaker[Session], world: World, sandbox: Any
) -> None:
    # Given a company owed money whose Flooz-prefixed number T-Money now holds (000011)
    owed = _owed_company(world, sandbox, "PORTO", "22896000011", "KIT-P")
    # When its maker settles it
    batch = _settle(world, "PORTO")
    # Then the one line pays everything owed, at T-Money, with the verdict `ported`
    with session_factory() as session:
        line = session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)).one()
        assert (line.operator, line.amount, line.preflight, line.held_out) == (
            "tmoney",
            owed,
            "ported",
            None,
        )
        # And the company is paid at T-Money from now on, the change in the audit log
        assert session.get(Company, "PORTO").operator == "tmoney"
        moved = session.scalars(
            select(AuditEntry).where(AuditEntry.action == settlement.REROUTED)
        ).one()
        assert moved.arguments == {
            "company": "PORTO", "from": "flooz", "to": "tmoney", "why": "ported",
        }  # fmt: skip
    assert (batch.lines, batch.total) == (1, owed)
    _verify(session_factory)
