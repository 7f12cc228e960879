"""The provider contract, run against BOTH adapters over real HTTP to the operator sandbox.

Every test is parametrised by provider; the numbers are the sandbox's test numbers (last six
digits of the national number) under each operator's prefix. Money is checked at the
sandbox's side: wallets and the float, never our own results alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import Settings
from providers import registry
from providers.base import (
    AccountStatus,
    Kind,
    Outcome,
    PayoutRequest,
    ProviderAdapter,
    Reason,
    StatementStatus,
    TransactionResult,
)
from providers.sandbox.people import holder_name, stranger_name

PREFIX = {"flooz": "96", "tmoney": "90"}
PROVIDERS = ["flooz", "tmoney"]
FLOAT = 1_000_000
AMOUNT = 9000

# What each test number must end as once status queries have settled it.
EXPECTED: dict[str, tuple[Outcome, Reason | None]] = {
    "000001": (Outcome.SUCCEEDED, None),
    "000002": (Outcome.FAILED, Reason.NOT_REGISTERED),
    "000003": (Outcome.FAILED, Reason.ACCOUNT_LOCKED),
    "000004": (Outcome.FAILED, Reason.ACCOUNT_INACTIVE),
    "000005": (Outcome.FAILED, Reason.BALANCE_CAP),
    "000006": (Outcome.PENDING, None),
    "000007": (Outcome.SUCCEEDED, None),
    "000008": (Outcome.SUCCEEDED, None),
    "000009": (Outcome.SUCCEEDED, None),
    "000010": (Outcome.SUCCEEDED, None),  # someone else's wallet: paid all the same
    "000011": (Outcome.FAILED, Reason.NOT_REGISTERED),  # ported to the other operator
    "000012": (Outcome.SUCCEEDED, None),  # only its look-up hangs
}
OTHER = {"flooz": "tmoney", "tmoney": "flooz"}


def number(provider: str, suffix: str) -> str:
    return f"228{PREFIX[provider]}{suffix}"


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


def build(provider: str, sandbox: Any, **options: Any) -> ProviderAdapter:
    settings = Settings(sandbox_url=sandbox.url)
    options.setdefault("read_timeout", 4.0)
    return registry.load_adapter(provider, settings, **options)


@pytest.fixture
def adapter(provider: str, sandbox: Any) -> Iterator[ProviderAdapter]:
    sandbox.topup(provider, FLOAT)
    built = build(provider, sandbox)
    yield built
    built.close()


def settle(
    adapter: ProviderAdapter,
    result: TransactionResult,
    *,
    polls: int = 6,
    collection: bool = False,
) -> TransactionResult:
    """What the dispatcher does: a pending or unknown line is resolved by status queries."""
    query = adapter.collection_status if collection else adapter.payout_status
    for _ in range(polls):
        if result.final:
            return result
        time.sleep(0.2)
        result = query(result.reference)
    return result


def credits(sandbox: Any, msisdn: str, reference: str | None = None) -> list[dict[str, Any]]:
    found = sandbox.wallet(msisdn).get("credits", [])
    return [c for c in found if reference is None or c["reference"] == reference]


def float_of(sandbox: Any, provider: str) -> int:
    return int(sandbox.floats()[provider])


def pay(
    adapter: ProviderAdapter, provider: str, suffix: str, reference: str, amount: int = AMOUNT
) -> TransactionResult:
    return adapter.payout(
        PayoutRequest(
            reference=reference,
            msisdn=number(provider, suffix),
            amount=amount,
            description="AgriPME 2026A",
        )
    )


# -- success and every failure ------------------------------------------------------------


def test_success_credits_the_wallet_once(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    result = settle(adapter, pay(adapter, provider, "000001", "OK-1"))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.operator_reference
    [credit] = credits(sandbox, number(provider, "000001"), "OK-1")
    assert credit["amount"] == AMOUNT
    assert credit["operator_reference"] == result.operator_reference
    assert adapter.balance().balance == float_of(sandbox, provider) == FLOAT - AMOUNT


@pytest.mark.parametrize("suffix", ["000002", "000003", "000004", "000005"])
def test_wallet_failures_map_to_reasons(
    adapter: ProviderAdapter, provider: str, sandbox: Any, suffix: str
) -> None:
    result = settle(adapter, pay(adapter, provider, suffix, f"KO-{suffix}"))
    outcome, reason = EXPECTED[suffix]
    assert (result.outcome, result.reason) == (outcome, reason), result
    assert result.retryable is (reason is Reason.BALANCE_CAP)
    if suffix != "000002":  # an unregistered number has no wallet to look at
        assert credits(sandbox, number(provider, suffix), f"KO-{suffix}") == []
    assert float_of(sandbox, provider) == FLOAT


def test_empty_float_is_a_retryable_failure(provider: str, sandbox: Any) -> None:
    adapter = build(provider, sandbox)  # no top-up: the float is 0
    result = settle(adapter, pay(adapter, provider, "000001", "NOFLOAT-1"))
    assert (result.outcome, result.reason, result.retryable) == (
        Outcome.FAILED,
        Reason.INSUFFICIENT_FLOAT,
        True,
    )
    assert credits(sandbox, number(provider, "000001"), "NOFLOAT-1") == []


# -- duplicates ---------------------------------------------------------------------------


def test_same_reference_resent_credits_once(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    first = settle(adapter, pay(adapter, provider, "000001", "DUP-1"))
    again = settle(adapter, pay(adapter, provider, "000001", "DUP-1"))
    assert first.outcome is again.outcome is Outcome.SUCCEEDED
    assert again.operator_reference == first.operator_reference
    assert len(credits(sandbox, number(provider, "000001"), "DUP-1")) == 1
    assert float_of(sandbox, provider) == FLOAT - AMOUNT


def test_same_reference_other_amount_is_never_a_success_of_the_new_one(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    settle(adapter, pay(adapter, provider, "000001", "DUP-2"))
    other = pay(adapter, provider, "000001", "DUP-2", amount=AMOUNT + 1)
    assert other.outcome is not Outcome.SUCCEEDED or other.amount == AMOUNT
    assert [c["amount"] for c in credits(sandbox, number(provider, "000001"), "DUP-2")] == [AMOUNT]


# -- timeouts and resolution by status query ---------------------------------------------


def test_lost_answer_is_unknown_then_resolved_by_status_query(provider: str, sandbox: Any) -> None:
    sandbox.topup(provider, FLOAT)
    adapter = build(provider, sandbox, read_timeout=1.5)
    started = time.monotonic()
    result = pay(adapter, provider, "000007", "LOST-1")
    assert time.monotonic() - started < 4
    assert (result.outcome, result.reason) == (Outcome.UNKNOWN, Reason.NO_ANSWER)
    resolved = settle(adapter, result)
    assert resolved.outcome is Outcome.SUCCEEDED
    assert len(credits(sandbox, number(provider, "000007"), "LOST-1")) == 1


def test_pending_forever_stays_pending(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    result = settle(adapter, pay(adapter, provider, "000006", "PEND-1"), polls=3)
    assert result.outcome is Outcome.PENDING
    assert result.found


def test_status_of_a_reference_never_sent_is_not_found(adapter: ProviderAdapter) -> None:
    result = adapter.payout_status("NEVER-SENT-1")
    assert (result.outcome, result.reason, result.found) == (
        Outcome.FAILED,
        Reason.NOT_FOUND,
        False,
    )


def test_unreachable_operator_before_sending_is_a_retryable_failure(provider: str) -> None:
    adapter = registry.load_adapter(provider, Settings(sandbox_url="http://127.0.0.1:9"))
    result = pay(adapter, provider, "000001", "DOWN-1")
    assert (result.outcome, result.reason, result.retryable) == (
        Outcome.FAILED,
        Reason.UNREACHABLE,
        True,
    )


# -- callbacks ----------------------------------------------------------------------------


def _sink_items(callback_sink: Any, provider: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, raw body) of each callback the sink received for `provider`, in order."""
    return [
        ({"content-type": "application/json"}, json.dumps(body).encode())
        for path, body in list(callback_sink.calls)
        if path.rstrip("/").endswith(provider)
    ]


def test_duplicated_callbacks_are_one_confirmed_hint(
    adapter: ProviderAdapter, provider: str, sandbox: Any, callback_sink: Any
) -> None:
    sandbox.set_callback_url(callback_sink.url)
    result = settle(adapter, pay(adapter, provider, "000009", "CB-9"))
    callback_sink.wait_for(2, timeout=10)
    events = [adapter.parse_callback(h, b) for h, b in _sink_items(callback_sink, provider)]
    ours = [e for e in events if e.sika_reference == "CB-9"]
    assert len(ours) == 2
    assert {(e.provider, e.outcome, e.operator_reference) for e in ours} == {
        (provider, Outcome.SUCCEEDED, result.operator_reference)
    }
    # The hint is confirmed by a status query, and the wallet holds one credit only.
    assert adapter.payout_status("CB-9").outcome is Outcome.SUCCEEDED
    assert len(credits(sandbox, number(provider, "000009"), "CB-9")) == 1


def test_callbacks_out_of_order_are_resolved_by_status(
    adapter: ProviderAdapter, provider: str, sandbox: Any, callback_sink: Any
) -> None:
    sandbox.set_callback_url(callback_sink.url)
    pay(adapter, provider, "000001", "CB-A")
    pay(adapter, provider, "000003", "CB-B")
    callback_sink.wait_for(2, timeout=10)
    events = [adapter.parse_callback(h, b) for h, b in _sink_items(callback_sink, provider)]
    # Processed in reverse order of arrival: each hint confirmed by its own status query.
    confirmed = {
        e.sika_reference: adapter.payout_status(e.sika_reference).outcome for e in reversed(events)
    }
    assert confirmed == {"CB-A": Outcome.SUCCEEDED, "CB-B": Outcome.FAILED}
    hints = {e.sika_reference: e.outcome for e in events}
    assert hints == confirmed


# -- statements and money conservation ---------------------------------------------------


def test_statement_lists_exactly_what_was_executed(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    results = {
        suffix: settle(adapter, pay(adapter, provider, suffix, f"ST-{suffix}"), polls=2)
        for suffix in ("000001", "000002", "000008", "000009")
    }
    lines = adapter.parse_statement(sandbox.statement(provider, sandbox.today()))
    succeeded = {
        (x.sika_reference, x.amount, x.operator_reference)
        for x in lines
        if x.kind is Kind.PAYOUT and x.status is StatementStatus.SUCCEEDED
    }
    expected = {
        (r.reference, AMOUNT, r.operator_reference)
        for r in results.values()
        if r.outcome is Outcome.SUCCEEDED
    }
    assert succeeded == expected
    assert all(x.at.tzinfo is not None and x.provider == provider for x in lines)
    # Every line, whatever its status, is one transaction the operator recorded, and back.
    recorded = {
        (
            t["operator_reference"],
            t["reference"],
            t["kind"],
            t["msisdn"],
            t["amount"],
            t["fee"],
            t["status"],
        )
        for t in sandbox.transactions(provider)
    }
    assert {
        (
            x.operator_reference,
            x.sika_reference,
            str(x.kind),
            x.msisdn,
            x.amount,
            x.fee,
            str(x.status),
        )
        for x in lines
    } == recorded
    assert len(lines) == len(recorded)


def test_reversal_appears_in_next_days_statement(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    result = settle(adapter, pay(adapter, provider, "000008", "REV-8"))
    assert result.outcome is Outcome.SUCCEEDED
    today = adapter.parse_statement(sandbox.statement(provider, sandbox.today()))
    assert [x.kind for x in today if x.sika_reference == "REV-8"] == [Kind.PAYOUT]
    sandbox.advance_clock(86_400)
    lines = adapter.parse_statement(sandbox.statement(provider, sandbox.today()))
    reversals = [x for x in lines if x.kind is Kind.REVERSAL]
    assert [(x.sika_reference, x.amount) for x in reversals] == [("REV-8", AMOUNT)]


def test_every_test_number_lands_in_exactly_one_wallet_exactly_once(
    provider: str, sandbox: Any
) -> None:
    sandbox.topup(provider, FLOAT)
    adapter = build(provider, sandbox, read_timeout=1.5)
    outcomes: dict[str, Outcome] = {}
    for suffix, (expected, reason) in EXPECTED.items():
        result = settle(adapter, pay(adapter, provider, suffix, f"ALL-{suffix}"), polls=3)
        assert (result.outcome, result.reason) == (expected, reason), (suffix, result)
        outcomes[suffix] = result.outcome
    drained = 0
    for owner in EXPECTED:
        wallet_credits = credits(sandbox, number(provider, owner))
        for suffix, outcome in outcomes.items():
            mine = [c for c in wallet_credits if c["reference"] == f"ALL-{suffix}"]
            should = 1 if (owner == suffix and outcome is Outcome.SUCCEEDED) else 0
            assert len(mine) == should, (owner, suffix, mine)
        drained += sum(c["amount"] for c in wallet_credits)
    assert drained == AMOUNT * sum(o is Outcome.SUCCEEDED for o in outcomes.values())
    assert float_of(sandbox, provider) == FLOAT - drained


def test_kyc_lookup(adapter: ProviderAdapter, provider: str) -> None:
    active = adapter.lookup(number(provider, "000001"))
    assert (active.outcome, active.status) == (Outcome.SUCCEEDED, "active")
    assert active.name
    assert adapter.lookup(number(provider, "000002")).status == "not_registered"
    # T-Money's client look-up only knows ACTIF/INACTIF: a locked wallet reads inactive.
    locked = "locked" if provider == "flooz" else "inactive"
    assert adapter.lookup(number(provider, "000003")).status == locked
    assert adapter.lookup(number(provider, "000004")).status == "inactive"


def test_kyc_lookup_at_the_balance_cap(adapter: ProviderAdapter, provider: str) -> None:
    # When Sika looks up a wallet holding the balance cap
    capped = adapter.lookup(number(provider, "000005"))
    # Then it is live but at the cap, and its holder is named
    assert (capped.outcome, capped.status) == (Outcome.SUCCEEDED, AccountStatus.AT_BALANCE_CAP)
    assert (capped.first_name, capped.last_name) == holder_name(number(provider, "000005"))


def test_kyc_lookup_names_the_numbers_holder_or_someone_else(
    adapter: ProviderAdapter, provider: str
) -> None:
    # A wallet is in the name of its number's holder, as a generated registry has it
    own = adapter.lookup(number(provider, "000001"))
    assert (own.first_name, own.last_name) == holder_name(number(provider, "000001"))
    # ... except 000010's, active in someone else's name
    other = adapter.lookup(number(provider, "000010"))
    assert (other.outcome, other.status) == (Outcome.SUCCEEDED, AccountStatus.ACTIVE)
    assert (other.first_name, other.last_name) == stranger_name(number(provider, "000010"))


def test_kyc_lookup_of_a_ported_number(adapter: ProviderAdapter, provider: str, sandbox: Any):
    # Given 000011 under this operator's prefix, held by the other operator
    ported = number(provider, "000011")
    # When the prefix's operator is asked, it does not know the number
    assert adapter.lookup(ported).status == AccountStatus.NOT_REGISTERED
    # Then the other operator knows it, active, in the holder's name
    elsewhere = build(OTHER[provider], sandbox)
    try:
        held = elsewhere.lookup(ported)
        assert (held.outcome, held.status) == (Outcome.SUCCEEDED, AccountStatus.ACTIVE)
        assert (held.first_name, held.last_name) == holder_name(ported)
        # and pays it
        sandbox.topup(OTHER[provider], FLOAT)
        result = settle(
            elsewhere,
            elsewhere.payout(
                PayoutRequest(reference="PORTED-1", msisdn=ported, amount=AMOUNT, description="x")
            ),
        )
        assert result.outcome is Outcome.SUCCEEDED
    finally:
        elsewhere.close()
    assert [c["reference"] for c in credits(sandbox, ported)] == ["PORTED-1"]


def test_kyc_lookup_that_hangs_is_unknown_no_answer(provider: str, sandbox: Any) -> None:
    # Given an adapter that waits one second for an answer
    adapter = build(provider, sandbox, read_timeout=1.0)
    try:
        # When the look-up of 000012 is held past that second
        started = time.monotonic()
        result = adapter.lookup(number(provider, "000012"))
        # Then Sika knows nothing of the wallet: unknown, no answer, and it gave up in time
        assert (result.outcome, result.reason) == (Outcome.UNKNOWN, Reason.NO_ANSWER)
        assert result.status == AccountStatus.UNKNOWN
        assert time.monotonic() - started < 4.5
        # and the same number is paid normally
        sandbox.topup(provider, FLOAT)
        paid = settle(adapter, pay(adapter, provider, "000012", "HANGS-LOOKUP"))
        assert paid.outcome is Outcome.SUCCEEDED
    finally:
        adapter.close()


# -- operator limits, faults and sessions ------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "reason", "retryable"),
    [
        ({"min_amount": AMOUNT + 1}, Reason.INVALID_AMOUNT, False),
        ({"max_amount": AMOUNT - 1}, Reason.INVALID_AMOUNT, False),
        ({"daily_amount": AMOUNT - 1}, Reason.LIMIT_REACHED, True),
        ({"daily_count": 0}, Reason.LIMIT_REACHED, True),
        ({"monthly_amount": AMOUNT - 1}, Reason.LIMIT_REACHED, True),
        ({"monthly_count": 0}, Reason.LIMIT_REACHED, True),
    ],
)
def test_operator_limits_map_to_reasons(
    adapter: ProviderAdapter,
    provider: str,
    sandbox: Any,
    limits: dict[str, int],
    reason: Reason,
    retryable: bool,
) -> None:
    sandbox.set_limits(provider, **limits)
    result = settle(adapter, pay(adapter, provider, "000001", "LIM-1"))
    assert (result.outcome, result.reason, result.retryable) == (Outcome.FAILED, reason, retryable)
    assert credits(sandbox, number(provider, "000001"), "LIM-1") == []


def test_error_after_execution_is_unknown_never_failed(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    # The operator executes, then answers HTTP 500 (a SOAP fault / {"code": "500"}).
    sandbox.set_faults({"error_after_rate": 1.0})
    result = pay(adapter, provider, "000001", "ERR-AFTER-1")
    assert result.outcome is Outcome.UNKNOWN
    sandbox.set_faults("none")
    assert adapter.payout_status("ERR-AFTER-1").outcome is Outcome.SUCCEEDED
    assert len(credits(sandbox, number(provider, "000001"), "ERR-AFTER-1")) == 1


def test_error_before_execution_is_unknown_and_status_says_not_found(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    sandbox.set_faults({"error_before_rate": 1.0})
    result = pay(adapter, provider, "000001", "ERR-BEFORE-1")
    assert result.outcome is Outcome.UNKNOWN
    sandbox.set_faults("none")
    status = adapter.payout_status("ERR-BEFORE-1")
    assert (status.outcome, status.found) == (Outcome.FAILED, False)
    # Resending under the SAME reference is then safe, and pays once.
    again = settle(adapter, pay(adapter, provider, "000001", "ERR-BEFORE-1"))
    assert again.outcome is Outcome.SUCCEEDED
    assert len(credits(sandbox, number(provider, "000001"), "ERR-BEFORE-1")) == 1


def test_expired_tmoney_session_signs_in_again(sandbox: Any) -> None:
    sandbox.topup("tmoney", FLOAT)
    adapter = build("tmoney", sandbox)
    assert adapter.balance().balance == FLOAT
    sandbox.expire_tokens()
    result = settle(adapter, pay(adapter, "tmoney", "000001", "TOK-1"))
    assert result.outcome is Outcome.SUCCEEDED


def test_collection_push_is_pending_then_settles(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    from providers.base import CollectionRequest

    msisdn = number(provider, "000001")
    sandbox.put_wallet(msisdn, balance=50_000)
    result = adapter.request_collection(
        CollectionRequest(reference="COL-1", msisdn=msisdn, amount=160, message="kit solaire")
    )
    # A pending push may carry no operator id at all (TLC answers status 100 alone): the
    # status query by Sika's reference is what names it.
    assert result.outcome is Outcome.PENDING
    settled = settle(adapter, adapter.collection_status("COL-1"), collection=True)
    assert settled.outcome is Outcome.SUCCEEDED
    assert settled.operator_reference
    assert settled.operator_reference != "COL-1"
    assert float_of(sandbox, provider) == FLOAT + 160


def test_collection_reference_reused_is_never_a_definitive_failure(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    from providers.base import CollectionRequest

    msisdn = number(provider, "000001")
    first = adapter.request_collection(
        CollectionRequest(reference="COL-2", msisdn=msisdn, amount=160, message="kit")
    )
    again = adapter.request_collection(
        CollectionRequest(reference="COL-2", msisdn=msisdn, amount=999, message="kit")
    )
    assert first.outcome is Outcome.PENDING
    assert again.outcome in (Outcome.UNKNOWN, Outcome.PENDING, Outcome.SUCCEEDED)
    assert again.outcome is not Outcome.FAILED


def test_a_payment_to_the_merchant_reference_is_found_by_the_operators_reference(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    # Given two households paying the same merchant reference on their own
    payer = number(provider, "000071")
    sandbox.put_wallet(payer, balance=50_000)
    first = sandbox.pay(payer, 2_200, "KIT-7", provider)
    second = sandbox.pay(payer, 1_600, "KIT-7", provider)
    # When Sika asks by the operator's reference the callback gave
    found = adapter.transaction_status(first["operator_reference"])
    # Then the operator confirms that payment, its amount and merchant reference
    assert (found.outcome, found.reference, found.amount, found.operator_reference) == (
        Outcome.SUCCEEDED,
        "KIT-7",
        2_200,
        first["operator_reference"],
    )
    assert found.kind in (None, Kind.COLLECTION)
    assert adapter.transaction_status(second["operator_reference"]).amount == 1_600
    # And the merchant reference alone finds nothing, nor does an invented reference
    assert adapter.payout_status("KIT-7").found is False
    missing = adapter.transaction_status("9999999999")
    assert (missing.outcome, missing.found) == (Outcome.FAILED, False)


def test_a_refused_merchant_payment_is_a_failure_by_its_reference(
    adapter: ProviderAdapter, provider: str, sandbox: Any
) -> None:
    payer = number(provider, "000072")
    sandbox.put_wallet(payer, balance=100)
    refused = sandbox.pay(payer, 5_000, "KIT-8", provider)
    result = adapter.transaction_status(refused["operator_reference"])
    assert (result.outcome, result.found, result.reference) == (Outcome.FAILED, True, "KIT-8")
