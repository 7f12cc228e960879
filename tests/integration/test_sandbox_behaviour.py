"""Cross-cutting sandbox behaviour over real HTTP: callbacks, held answers, reversals,
statements, money conservation, seeded faults, the SMS gateway, subscriber payments and
the dialect a sandbox is started in.
"""

from __future__ import annotations

import csv
import io
import subprocess
import time

import httpx
import pytest

from tests.fixtures.sandbox import (
    SIKA,
    CallbackSink,
    Sandbox,
    TMoney,
    flooz_call,
    flooz_id,
    flooz_status,
    transfer,
)

DAY = "2026-11-10"


def _callbacks_over(sandbox: Sandbox, sink: CallbackSink) -> dict[str, int]:
    """Wait until every callback the sandbox scheduled is over (none in flight, nothing left
    to resolve) and the sink holds each one, then insist it holds no more: the callbacks
    scheduled, by merchant reference. A late duplicate would have been scheduled too."""
    sandbox.wait_quiet()
    transactions = sandbox.transactions()
    assert all(t["callbacks_delivered"] == t["callbacks_scheduled"] for t in transactions)
    scheduled = {t["reference"]: t["callbacks_scheduled"] for t in transactions}
    sink.wait_for(sum(scheduled.values()))
    assert len(sink.calls) == sum(scheduled.values()), sink.calls
    return scheduled


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_callbacks_flooz_sent_twice_for_000009_never_for_000006(sandbox: Sandbox, callback_sink):
    # Given callbacks to the sink and a funded float
    sandbox.set_callback_url(callback_sink.url)
    sandbox.topup("flooz", 100_000)
    # When Sika pays four test numbers (Flooz's id is read where the dialect puts it)
    refs = {
        n: flooz_id(sandbox, transfer(sandbox, n, 1_000, f"CB-{n}")[1])
        for n in ("96000001", "96000009", "96000006", "96000002")
    }
    # Then 000001 and 000002 are called back once, 000009 twice, 000006 never, and once
    # every callback the sandbox scheduled is over, the sink holds those and nothing more
    scheduled = _callbacks_over(sandbox, callback_sink)
    assert scheduled == {"CB-96000001": 1, "CB-96000009": 2, "CB-96000006": 0, "CB-96000002": 1}
    by_ref = {}
    for path, body in callback_sink.calls:
        assert path == "/flooz"
        by_ref.setdefault(body["mrchrefid"], []).append(body)
    assert len(by_ref["CB-96000001"]) == 1
    assert len(by_ref["CB-96000009"]) == 2
    assert len(by_ref["CB-96000002"]) == 1
    assert "CB-96000006" not in by_ref
    ok = by_ref["CB-96000001"][0]
    assert ok == {
        "amount": 1_000,
        "refid": refs["96000001"],
        "mrchrefid": "CB-96000001",
        "msisdn": "22896000001",
        "status": "0",
        "message": ok["message"],
    }
    assert by_ref["CB-96000002"][0]["status"] == "555"
    assert flooz_status(sandbox, referenceid="CB-96000006")["status"] == "100"


def test_callbacks_tmoney(sandbox: Sandbox, tmoney: TMoney, callback_sink):
    sandbox.set_callback_url(callback_sink.url)
    sandbox.topup("tmoney", 100_000)
    for number in ("90000001", "90000009", "90000006", "90000003"):
        tmoney.credit(number, 1_000, f"TCB-{number}")
    scheduled = _callbacks_over(sandbox, callback_sink)
    assert scheduled == {"TCB-90000001": 1, "TCB-90000009": 2, "TCB-90000006": 0, "TCB-90000003": 1}
    ids = [body["idRequete"] for path, body in callback_sink.calls if path == "/tmoney"]
    assert sorted(ids) == ["TCB-90000001", "TCB-90000003", "TCB-90000009", "TCB-90000009"]
    assert tmoney.check("TCB-90000006")[0]["statutRequete"] == "EN_COURS"


def test_000007_flooz_executes_but_the_answer_never_comes_in_time(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    with pytest.raises(httpx.ReadTimeout):
        transfer(sandbox, "96000007", 4_000, "HANG-F", timeout=1)
    answer = flooz_status(sandbox, referenceid="HANG-F")
    assert answer["status"] == "0"
    assert sandbox.floats()["flooz"] == 6_000
    # a resend with the same reference replays at once, moving nothing twice
    _, again = transfer(sandbox, "96000007", 4_000, "HANG-F", timeout=2)
    assert again["status"] == "0"
    assert sandbox.floats()["flooz"] == 6_000


def test_000007_tmoney_executes_but_the_answer_never_comes_in_time(sandbox: Sandbox):
    sandbox.topup("tmoney", 10_000)
    slow = TMoney(sandbox, timeout=1)
    try:
        slow.login()
        with pytest.raises(httpx.ReadTimeout):
            slow.credit("90000007", 4_000, "HANG-T")
    finally:
        slow.close()
    fast = TMoney(sandbox)
    fast.login()
    assert fast.check("HANG-T")[0]["statutRequete"] == "SUCCES"
    fast.close()


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_000012_flooz_lookup_hangs_while_payouts_succeed(sandbox: Sandbox):
    # When Sika looks the number up with a client that waits one second
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        flooz_call(sandbox, "getMobileAccountStatus", {"msisdn": "96000012"}, timeout=1)
    assert time.monotonic() - started < 4
    # Then a payout to the same number is answered at once, and succeeds
    sandbox.topup("flooz", 10_000)
    started = time.monotonic()
    _, answer = transfer(sandbox, "96000012", 4_000, "LOOKUP-HANG-F", timeout=2)
    assert answer["status"] == "0"
    assert time.monotonic() - started < 2
    assert sandbox.floats()["flooz"] == 6_000


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_000012_tmoney_lookup_hangs_while_credits_succeed(sandbox: Sandbox):
    slow = TMoney(sandbox, timeout=1)
    try:
        slow.login()
        # When Sika looks the number up with a client that waits one second
        with pytest.raises(httpx.ReadTimeout):
            slow.get("/m-banking/v1/api/client/90000012")
        # Then a credit to the same number is answered within that second, and succeeds
        sandbox.topup("tmoney", 10_000)
        assert slow.credit("90000012", 4_000, "LOOKUP-HANG-T").json()["code"] == "2000"
        assert slow.check("LOOKUP-HANG-T")[0]["statutRequete"] == "SUCCES"
    finally:
        slow.close()


def _rows(sandbox: Sandbox, operator: str, day: str) -> list[dict[str, str]]:
    text = sandbox.statement(operator, day).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text), delimiter=";" if operator == "flooz" else ","))


def test_000008_is_reversed_in_the_next_days_statement_only(sandbox: Sandbox, tmoney: TMoney):
    # Given a payout to 000008 on each operator on the 10th
    sandbox.set_clock(f"{DAY}T15:00:00")
    tmoney.login()
    sandbox.topup("flooz", 10_000)
    sandbox.topup("tmoney", 10_000)
    before = sandbox.wallet("96000008")["balance"]
    _, answer = transfer(sandbox, "96000008", 3_000, "REV-F")
    tmoney.credit("90000008", 3_000, "REV-T")
    assert answer["status"] == "0"
    assert sandbox.floats() == {"flooz": 7_000, "tmoney": 7_000}
    assert [r["Transaction Type"] for r in _rows(sandbox, "flooz", DAY)] == ["B2C"]
    # When the next day comes
    sandbox.advance_clock(86_400)
    # Then the reversal is on the 11th, referring to the original, and money went back
    [flooz_rev] = _rows(sandbox, "flooz", "2026-11-11")
    assert flooz_rev["Transaction Type"] == "REVERSAL"
    assert flooz_rev["Reference"] == "REV-F"
    assert flooz_rev["Original Amount"] == "3000"
    assert flooz_rev["Transaction Initiated Time"].startswith("11/11/2026")
    [tmoney_rev] = _rows(sandbox, "tmoney", "2026-11-11")
    assert (tmoney_rev["typeRequete"], tmoney_rev["idRequete"]) == ("REVERSAL", "REV-T")
    assert [r["Transaction Type"] for r in _rows(sandbox, "flooz", DAY)] == ["B2C"]
    assert [r["typeRequete"] for r in _rows(sandbox, "tmoney", DAY)] == ["CREDIT"]
    assert sandbox.floats() == {"flooz": 10_000, "tmoney": 10_000}
    assert sandbox.wallet("96000008")["balance"] == before
    # the original still reads as a success: only the statement tells
    assert flooz_status(sandbox, referenceid="REV-F")["status"] == "0"


def test_statements_parse_back_to_exactly_the_transactions(sandbox: Sandbox, tmoney: TMoney):
    sandbox.set_clock(f"{DAY}T08:00:00")
    sandbox.set_faults({"fee_fixed": 50, "fee_bps": 100})
    tmoney.login()
    sandbox.topup("flooz", 100_000)
    sandbox.topup("tmoney", 100_000)
    sandbox.put_wallet("96000041", balance=5_000)
    for i, number in enumerate(["96000001", "96000002", "96000006", "96000031", "96000031"]):
        transfer(sandbox, number, 2_000 + i, f"ST-F{i}")
    transfer(sandbox, "96000031", 2_003, "ST-F3")  # a replay adds no line
    sandbox.pay("96000041", 1_500, "KIT-77", "flooz")
    for i, number in enumerate(["90000001", "90000004", "90000006", "90000031"]):
        tmoney.credit(number, 3_000 + i, f"ST-T{i}")
    flooz_lines = _rows(sandbox, "flooz", DAY)
    tmoney_lines = _rows(sandbox, "tmoney", DAY)
    status_f = {"succeeded": "SUCCESS", "failed": "FAILED", "pending": "PENDING"}
    type_f = {"payout": "B2C", "collection": "C2B", "reversal": "REVERSAL"}
    expected_f = [
        [
            t["operator_reference"],
            t["msisdn"],
            type_f[t["kind"]],
            str(t["amount"]),
            str(t["fee"]),
            t["reference"],
            status_f[t["status"]],
        ]
        for t in sandbox.transactions("flooz")
    ]
    got_f = [
        [
            r["Transaction ID"],
            r["TOMSISDN"] if r["Transaction Type"] == "B2C" else r["FRMSISDN"],
            r["Transaction Type"],
            r["Original Amount"],
            r["Fee"],
            r["Reference"],
            r["Status"],
        ]
        for r in flooz_lines
    ]
    assert got_f == expected_f
    assert len(got_f) == 6
    assert {
        r["Fee"] for r in flooz_lines if r["Status"] == "SUCCESS" and r["Transaction Type"] == "B2C"
    } == {"70"}
    status_t = {"succeeded": "SUCCES", "failed": "ECHEC", "pending": "EN_COURS"}
    expected_t = [
        [
            t["operator_reference"],
            t["reference"],
            "CREDIT",
            t["msisdn"],
            str(t["amount"]),
            str(t["fee"]),
            status_t[t["status"]],
        ]
        for t in sandbox.transactions("tmoney")
    ]
    got_t = [
        [
            r["refTmoney"],
            r["idRequete"],
            r["typeRequete"],
            r["numeroClient"],
            r["montant"],
            r["frais"],
            r["statutRequete"],
        ]
        for r in tmoney_lines
    ]
    assert got_t == expected_t
    assert all(r["dateHeureTmoney"].startswith(DAY) for r in tmoney_lines)
    assert _rows(sandbox, "flooz", "2026-11-09") == []


def test_wallet_credits_sum_to_the_float_drained(sandbox: Sandbox, tmoney: TMoney):
    sandbox.topup("flooz", 60_000)
    sandbox.topup("tmoney", 60_000)
    numbers_f = [f"9600{i:04d}" for i in (1, 2, 3, 51, 52, 53, 54, 55)]
    numbers_t = [f"9100{i:04d}" for i in (1, 4, 5, 51, 52, 53, 54, 55)]
    for i, number in enumerate(numbers_f * 2):
        transfer(sandbox, number, 6_000 + 7 * i, f"SUM-F{i}")
    for i, number in enumerate(numbers_t * 2):
        tmoney.credit(number, 6_000 + 7 * i, f"SUM-T{i}")
    for operator, numbers in (("flooz", numbers_f), ("tmoney", numbers_t)):
        credited = sum(c["amount"] for n in set(numbers) for c in sandbox.wallet(n)["credits"])
        assert 0 < credited == 60_000 - sandbox.floats()[operator]
    assert sandbox.floats()["flooz"] < 6_000  # the float ran out on the way


CHAOS = {
    "error_before_rate": 0.25,
    "error_after_rate": 0.2,
    "pending_rate": 0.2,
    "pending_seconds": [0.2, 0.4],
    "callback_drop_rate": 0.3,
    "callback_duplicate_rate": 0.3,
}


def _chaos_run(sandbox: Sandbox, seed: int) -> tuple[list, list]:
    sandbox.reset(seed)
    sandbox.set_faults(CHAOS)
    sandbox.topup("flooz", 1_000_000)
    seen = []
    for i in range(24):
        code, answer = transfer(sandbox, f"960001{i:02d}", 1_000, f"CH-{i}")
        seen.append((code, answer.get("status")))
    sandbox.wait_quiet()  # the pending ones have settled
    txs = [
        (t["reference"], t["status"], t["callback_delays"] and len(t["callback_delays"]))
        for t in sandbox.transactions("flooz")
    ]
    return seen, txs


def _status_eventually(sandbox: Sandbox, reference: str) -> str:
    for _ in range(30):
        code, answer = flooz_call(sandbox, "getTransactionStatus", {"referenceid": reference})
        if code == 200 and answer["status"] != "100":
            return answer["status"]
        time.sleep(0.1)
    raise AssertionError(f"{reference} never settled")


def test_faults_are_reproducible_from_the_seed(sandbox: Sandbox):
    first = _chaos_run(sandbox, 11)
    again = _chaos_run(sandbox, 11)
    other = _chaos_run(sandbox, 12)
    assert first == again
    assert first != other
    codes = {code for code, _ in first[0]}
    assert {200, 500, 503} <= codes
    # a 503 executed nothing; a 500 executed; a pending settles on its own
    for i, (code, status) in enumerate(other[0]):
        ref = f"CH-{i}"
        if code == 503:
            assert ref not in {r for r, *_ in other[1]}
        elif code == 500 or status == "100":
            assert _status_eventually(sandbox, ref) == "0"


def test_presets_can_be_switched_while_running(sandbox: Sandbox):
    for name in ("flaky", "hostile", "none"):
        sandbox.set_faults(name)
        assert httpx.get(sandbox.url + "/_sandbox/faults").json()["name"] == name
    response = httpx.post(sandbox.url + "/_sandbox/faults", json={"profile": {"nope": 1}})
    assert response.status_code == 400


def test_sms_gateway(sandbox: Sandbox):
    response = httpx.post(
        sandbox.url + "/sms/send",
        json={"to": "22890000001", "message": "Votre subvention", "reference": "L1"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    bad = httpx.post(sandbox.url + "/sms/send", json={"to": "123", "message": "x"})
    assert bad.status_code == 400
    [sms] = sandbox.sms()
    assert sms["id"] == response.json()["id"]
    assert (sms["to"], sms["message"]) == ("22890000001", "Votre subvention")


def test_subscriber_pays_and_the_operator_calls_back(sandbox: Sandbox, callback_sink):
    sandbox.set_callback_url(callback_sink.url)
    sandbox.put_wallet("90000061", balance=10_000)
    sandbox.put_wallet("96000061", balance=10_000)
    assert sandbox.pay("90000061", 2_200, "KIT-1", "tmoney")["status"] == "succeeded"
    assert sandbox.pay("96000061", 1_600, "KIT-2", "flooz")["status"] == "succeeded"
    assert _callbacks_over(sandbox, callback_sink) == {"KIT-1": 1, "KIT-2": 1}
    calls = dict(callback_sink.calls)
    assert calls["/tmoney"]["refCommande"] == "KIT-1"
    assert calls["/tmoney"]["typeRequete"] == "DEBIT"
    assert calls["/flooz"]["mrchrefid"] == "KIT-2"
    assert sandbox.floats() == {"flooz": 1_600, "tmoney": 2_200}
    assert sandbox.wallet("90000061")["balance"] == 7_800


def test_reset_gives_a_clean_world(sandbox: Sandbox):
    sandbox.topup("flooz", 1_000)
    transfer(sandbox, "96000001", 500, "RS-1")
    name = sandbox.wallet("96000001")["name"]
    sandbox.reset()
    assert sandbox.floats() == {"flooz": 0, "tmoney": 0}
    assert sandbox.transactions() == []
    assert sandbox.wallet("96000001")["name"] == name  # the KYC name follows the number
    assert sandbox.wallet("+228 96 00 00 01")["msisdn"] == "22896000001"


@pytest.mark.parametrize(("dialect", "refused"), [("clients", 401), ("model", 403)])
def test_reset_keeps_the_dialect_the_sandbox_was_started_in(sandbox_in, dialect: str, refused: int):
    sandbox = sandbox_in(dialect)
    assert httpx.get(sandbox.url + "/_sandbox/health").json()["dialect"] == dialect
    reset = httpx.post(sandbox.url + "/_sandbox/reset", json={"seed": 9}).json()
    assert (reset["seed"], reset["dialect"]) == (9, dialect)
    # the wire after the reset is still that dialect's
    no_token = httpx.get(sandbox.url + "/tmoney/m-banking/v1/api/solde")
    assert no_token.status_code == refused
    status = flooz_status(sandbox, transid="NEVER-SENT")
    assert ("description" in status) == (dialect == "clients")


def test_an_unknown_dialect_is_refused_at_start():
    result = subprocess.run(
        [SIKA, "sandbox", "serve", "--port", "1", "--dialect", "tmoney"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "clients" in result.stderr
    assert "model" in result.stderr
