"""The Flooz simulator on the wire: hand-built SOAP envelopes against the sandbox subprocess."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.sandbox import (
    FLOOZ_PATH,
    Sandbox,
    flooz_call,
    flooz_status,
    flooz_token,
    transfer,
)


@pytest.mark.parametrize(
    ("number", "status"),
    [
        ("96000001", "0"),
        ("96000002", "555"),
        ("96000003", "7"),
        ("96000004", "9"),
        ("96000005", "18"),
        ("96000006", "100"),
        ("96000009", "0"),
        ("79123457", "0"),
    ],
)
def test_each_test_number_answers_its_tlc_status(sandbox: Sandbox, number: str, status: str):
    # Given a funded float
    sandbox.topup("flooz", 100_000)
    # When Sika pays the number
    code, answer = transfer(sandbox, number, 5_000, f"REF-{number}")
    # Then the answer and the status query agree on the documented code
    assert code == 200
    assert answer["status"] == status
    assert answer["referenceid"] == f"REF-{number}"
    queried = flooz_status(sandbox, transid=answer["transactionid"])
    assert queried["status"] == status
    assert flooz_status(sandbox, referenceid=f"REF-{number}")["transid"] == answer["transactionid"]
    moved = 5_000 if status == "0" else 0
    assert sandbox.floats()["flooz"] == 100_000 - moved
    assert int(answer["senderbalanceafter"]) == 100_000 - moved


def test_a_tmoney_number_is_not_registered_at_flooz(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    _, answer = transfer(sandbox, "90000001", 1_000, "R-OTHER-OP")
    assert answer["status"] == "555"


def test_a_ported_number_is_paid_where_it_is_held(sandbox: Sandbox):
    # Given a Togocom-prefix number ported to Moov
    sandbox.put_wallet("+228 90 12 34 56", operator="flooz")
    sandbox.topup("flooz", 10_000)
    # Then Flooz pays it
    _, answer = transfer(sandbox, "90123456", 1_000, "R-PORTED")
    assert answer["status"] == "0"
    assert sandbox.wallet("0022890123456")["operator"] == "flooz"


def test_same_reference_same_payload_replays_without_moving_money_twice(sandbox: Sandbox):
    sandbox.topup("flooz", 50_000)
    _, first = transfer(sandbox, "96000001", 9_000, "DUP-1")
    _, again = transfer(sandbox, "96000001", 9_000, "DUP-1")
    assert again == first
    assert sandbox.floats()["flooz"] == 41_000
    assert len(sandbox.wallet("96000001")["credits"]) == 1


def test_same_reference_other_payload_is_refused_with_status_4(sandbox: Sandbox):
    sandbox.topup("flooz", 50_000)
    transfer(sandbox, "96000001", 9_000, "DUP-2")
    _, answer = transfer(sandbox, "96000001", 9_500, "DUP-2")
    assert answer["status"] == "4"
    assert answer["message"] == "referenceid already used"
    assert sandbox.floats()["flooz"] == 41_000


@pytest.mark.parametrize(
    "token",
    [flooz_token(password="wrong"), flooz_token(key="x" * 32), "not-base64!", ""],
)
def test_a_wrong_token_is_status_98_and_moves_nothing(sandbox: Sandbox, token: str):
    sandbox.topup("flooz", 10_000)
    code, answer = transfer(sandbox, "96000001", 1_000, "R-TOKEN", token=token)
    assert code == 200
    assert answer["status"] == "98"
    assert sandbox.floats()["flooz"] == 10_000
    assert sandbox.transactions("flooz") == []


def test_the_float_runs_out_mid_batch(sandbox: Sandbox):
    # Given a float for two and a half payouts
    sandbox.topup("flooz", 25_000)
    statuses = [transfer(sandbox, "96000001", 10_000, f"B-{i}")[1]["status"] for i in range(4)]
    # Then the third and fourth are refused with code 8, and nothing went negative
    assert statuses == ["0", "0", "8", "8"]
    assert sandbox.floats()["flooz"] == 5_000
    assert flooz_call(sandbox, "getBalance", {})[1] == {"status": "0", "balance": "5000"}


def test_per_transaction_limits(sandbox: Sandbox):
    sandbox.topup("flooz", 5_000_000)
    assert transfer(sandbox, "96000001", 99, "L-MIN")[1]["status"] == "12"
    assert transfer(sandbox, "96000001", 1_000_001, "L-MAX")[1]["status"] == "11"


def test_daily_and_monthly_limits(sandbox: Sandbox):
    sandbox.set_clock("2026-11-10T10:00:00")
    sandbox.topup("flooz", 5_000_000)
    sandbox.set_limits("flooz", daily_count=2, daily_amount=30_000, monthly_count=3)
    assert transfer(sandbox, "96000011", 10_000, "D-1")[1]["status"] == "0"
    assert transfer(sandbox, "96000011", 25_000, "D-2")[1]["status"] == "13"
    assert transfer(sandbox, "96000011", 10_000, "D-3")[1]["status"] == "0"
    assert transfer(sandbox, "96000011", 1_000, "D-4")[1]["status"] == "15"
    # The next day the daily limits reset, the monthly count does not
    sandbox.advance_clock(86_400)
    assert transfer(sandbox, "96000011", 1_000, "D-5")[1]["status"] == "0"
    assert transfer(sandbox, "96000011", 1_000, "D-6")[1]["status"] == "16"
    assert transfer(sandbox, "96000011", 2_000_000, "D-7")[1]["status"] == "11"


def test_balance_cap_is_the_bceao_two_million(sandbox: Sandbox):
    sandbox.topup("flooz", 5_000_000)
    sandbox.put_wallet("96000012", balance=1_995_000)
    assert transfer(sandbox, "96000012", 5_001, "CAP-1")[1]["status"] == "18"
    assert transfer(sandbox, "96000012", 5_000, "CAP-2")[1]["status"] == "0"
    assert sandbox.wallet("96000012")["balance"] == 2_000_000


def test_incomplete_and_invalid_requests(sandbox: Sandbox):
    assert flooz_call(sandbox, "transferFlooz", {"destination": "96000001"})[1]["status"] == "91"
    assert transfer(sandbox, "12345", 1_000, "R-BAD")[1]["status"] == "3"
    assert flooz_status(sandbox, transid="999")["status"] == "94"
    assert flooz_status(sandbox, referenceid="nope")["status"] == "94"


def test_kyc_lookup(sandbox: Sandbox):
    def look(number: str) -> dict[str, str]:
        return flooz_call(sandbox, "getMobileAccountStatus", {"msisdn": number})[1]

    active = look("96000001")
    assert (active["status"], active["subscriberstatus"]) == ("0", "ACTIVE")
    assert active["firstname"]
    assert active["lastname"]
    assert active["msisdn"] == "22896000001"
    assert look("96000002")["status"] == "555"
    assert look("96000003")["status"] == "7"
    assert look("96000004")["subscriberstatus"] == "INACTIVE"
    # names are stable for a seed
    assert look("96000001") == active
    assert sandbox.wallet("96000001")["name"] == f"{active['firstname']} {active['lastname']}"


def test_push_with_pending_collects_from_the_subscriber(sandbox: Sandbox, callback_sink):
    sandbox.set_callback_url(callback_sink.url)
    sandbox.put_wallet("96000021", balance=10_000)
    fields = {
        "msisdn": "96000021",
        "message": "CIZO kit",
        "amount": 2_000,
        "externaldata1": "COL-1",
        "externaldata2": "",
        "fee": 0,
    }
    _, answer = flooz_call(sandbox, "PushWithPending", fields)
    assert answer["status"] == "100"
    [callback] = callback_sink.wait_for(1)
    assert callback["mrchrefid"] == "COL-1"
    assert callback["status"] == "0"
    assert flooz_status(sandbox, transid=answer["transid"])["status"] == "0"
    assert sandbox.wallet("96000021")["balance"] == 8_000
    assert sandbox.floats()["flooz"] == 2_000


def test_malformed_xml_and_unknown_operation_are_client_faults(sandbox: Sandbox):
    response = httpx.post(sandbox.url + FLOOZ_PATH, content=b"<not-xml", timeout=5)
    assert response.status_code == 400
    assert "soap:Client" in response.text
    code, fault = flooz_call(sandbox, "stealEverything", {})
    assert code == 400
    assert fault["faultcode"] == "soap:Client"


def test_xml_bomb_is_refused(sandbox: Sandbox):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body>&lol3;</soapenv:Body></soapenv:Envelope>"
    )
    response = httpx.post(sandbox.url + FLOOZ_PATH, content=bomb, timeout=5)
    assert response.status_code == 400
    assert "soap:Client" in response.text
    assert httpx.get(sandbox.url + "/_sandbox/health").status_code == 200


def test_oversize_body_is_refused(sandbox: Sandbox):
    huge = "<x>" + "a" * (200 * 1024) + "</x>"
    response = httpx.post(sandbox.url + FLOOZ_PATH, content=huge, timeout=5)
    assert response.status_code == 413


def test_a_merchant_payment_is_found_by_transid_only(sandbox: Sandbox):
    sandbox.put_wallet("96000074", balance=10_000)
    paid = sandbox.pay("96000074", 1_600, "KIT-9", "flooz")
    status = flooz_status(sandbox, transid=paid["operator_reference"])
    assert (status["status"], status["referenceid"], status["amount"]) == ("0", "KIT-9", "1600")
    # many payments share a merchant reference: it is no key of Flooz's
    assert flooz_status(sandbox, referenceid="KIT-9")["status"] == "94"
