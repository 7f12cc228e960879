"""The Flooz simulator on the wire: hand-built SOAP envelopes against the sandbox subprocess,
in the `clients` dialect unless a test says otherwise."""

from __future__ import annotations

import httpx
import pytest

from providers.sandbox.people import holder_name, stranger_name
from tests.fixtures.sandbox import (
    FLOOZ_PATH,
    SOAP12_NS,
    TLC_NS,
    Sandbox,
    flooz_call,
    flooz_envelope,
    flooz_id,
    flooz_post,
    flooz_push_id,
    flooz_status,
    flooz_token,
    flooz_wrapper,
    parse_flooz,
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
    # clients: `transactionid` is our reference, `referenceid` Flooz's id
    assert answer["transactionid"] == f"REF-{number}"
    theirs = flooz_id(sandbox, answer)
    assert theirs != f"REF-{number}"
    queried = flooz_status(sandbox, transid=theirs)
    assert queried["status"] == status
    assert (queried["transid"], queried["referenceid"]) == (theirs, f"REF-{number}")
    assert flooz_status(sandbox, referenceid=f"REF-{number}")["transid"] == theirs
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
    assert flooz_call(sandbox, "getBalance", {})[1] == {
        "status": "0",
        "balance": "5000",
        "message": "Transaction completed successfully",
    }


def test_per_transaction_limits(sandbox: Sandbox):
    sandbox.topup("flooz", 5_000_000)
    assert transfer(sandbox, "96000001", 99, "L-MIN")[1]["status"] == "12"
    assert transfer(sandbox, "96000001", 1_000_001, "L-MAX")[1]["status"] == "11"


def test_daily_and_monthly_limits(sandbox: Sandbox):
    sandbox.set_clock("2026-11-10T10:00:00")
    sandbox.topup("flooz", 5_000_000)
    sandbox.set_limits("flooz", daily_count=2, daily_amount=30_000, monthly_count=3)
    assert transfer(sandbox, "96000021", 10_000, "D-1")[1]["status"] == "0"
    assert transfer(sandbox, "96000021", 25_000, "D-2")[1]["status"] == "13"
    assert transfer(sandbox, "96000021", 10_000, "D-3")[1]["status"] == "0"
    assert transfer(sandbox, "96000021", 1_000, "D-4")[1]["status"] == "15"
    # The next day the daily limits reset, the monthly count does not
    sandbox.advance_clock(86_400)
    assert transfer(sandbox, "96000021", 1_000, "D-5")[1]["status"] == "0"
    assert transfer(sandbox, "96000021", 1_000, "D-6")[1]["status"] == "16"
    assert transfer(sandbox, "96000021", 2_000_000, "D-7")[1]["status"] == "11"


def test_balance_cap_is_the_bceao_two_million(sandbox: Sandbox):
    sandbox.topup("flooz", 5_000_000)
    sandbox.put_wallet("96000022", balance=1_995_000)
    assert transfer(sandbox, "96000022", 5_001, "CAP-1")[1]["status"] == "18"
    assert transfer(sandbox, "96000022", 5_000, "CAP-2")[1]["status"] == "0"
    assert sandbox.wallet("96000022")["balance"] == 2_000_000
    # a wallet filled to the cap says so when looked up, as 000005 does
    assert _kyc(sandbox, "96000022")["status"] == "18"


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


def _kyc(sandbox: Sandbox, number: str) -> dict[str, str]:
    return flooz_call(sandbox, "getMobileAccountStatus", {"msisdn": number})[1]


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_kyc_names_a_wallet_after_its_number_whatever_the_seed(sandbox: Sandbox):
    # Given a wallet looked up under one seed
    first = _kyc(sandbox, "96123456")
    # When the world is rebuilt from another seed
    sandbox.reset(seed=8)
    again = _kyc(sandbox, "+228 96 12 34 56")
    # Then the holder is the same person, the one `holder_name` names
    assert (first["firstname"], first["lastname"]) == holder_name("96123456")
    assert (again["firstname"], again["lastname"]) == holder_name("96123456")


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_kyc_at_the_balance_cap_is_status_18_with_the_holders_names(sandbox: Sandbox):
    # When Sika looks up a wallet holding the balance cap
    answer = _kyc(sandbox, "96000005")
    # Then it is status 18, the wallet live but closed to transfers, the holder named
    assert answer["status"] == "18"
    assert answer["message"] == "Destination reached maximum balance"
    assert (answer["subscriberstatus"], answer["allowedtransfer"]) == ("ACTIVE", "false")
    assert (answer["firstname"], answer["lastname"]) == holder_name("96000005")
    # and a wallet below the cap is transferable
    below = _kyc(sandbox, "96000001")
    assert (below["status"], below["allowedtransfer"]) == ("0", "true")


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_kyc_of_000010_names_someone_else(sandbox: Sandbox):
    # When Sika looks up a number whose wallet belongs to someone else
    answer = _kyc(sandbox, "97000010")
    # Then the wallet is active, in another person's name than the number's holder
    assert (answer["status"], answer["subscriberstatus"]) == ("0", "ACTIVE")
    named = (answer["firstname"], answer["lastname"])
    assert named == stranger_name("97000010")
    assert named[0][0] != holder_name("97000010")[0][0]
    assert named[1] != holder_name("97000010")[1]
    # and payouts to it succeed: the operator pays whoever holds the wallet
    sandbox.topup("flooz", 10_000)
    assert transfer(sandbox, "97000010", 1_000, "R-STRANGER")[1]["status"] == "0"


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_000011_is_held_by_the_operator_its_prefix_does_not_name(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    # Given a Moov-prefix number ported to T-Money: Flooz knows it not
    assert _kyc(sandbox, "96000011")["status"] == "555"
    assert transfer(sandbox, "96000011", 1_000, "R-PORTED-AWAY")[1]["status"] == "555"
    assert sandbox.wallet("96000011")["operator"] == "tmoney"
    # Given a Togocom-prefix number ported to Moov: Flooz holds it, in the holder's name
    answer = _kyc(sandbox, "90000011")
    assert (answer["status"], answer["subscriberstatus"]) == ("0", "ACTIVE")
    assert (answer["firstname"], answer["lastname"]) == holder_name("90000011")
    assert transfer(sandbox, "90000011", 1_000, "R-PORTED-IN")[1]["status"] == "0"
    assert sandbox.floats()["flooz"] == 9_000


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
    # clients: a pending push is answered with its status alone, no ids
    assert answer == {"status": "100", "description": "Transaction pending"}
    [callback] = callback_sink.wait_for(1)
    assert callback["mrchrefid"] == "COL-1"
    assert callback["status"] == "0"
    # Flooz's id comes from the status query, and is the one called back
    theirs = flooz_push_id(sandbox, answer, "COL-1")
    assert callback["refid"] == theirs
    assert flooz_status(sandbox, transid=theirs)["status"] == "0"
    assert sandbox.wallet("96000021")["balance"] == 8_000
    assert sandbox.floats()["flooz"] == 2_000
    # the same push sent again, now settled: `transid` is our reference, `referenceid` Flooz's
    _, again = flooz_call(sandbox, "PushWithPending", fields)
    assert again == {
        "status": "0",
        "description": "Transaction completed successfully",
        "transid": "COL-1",
        "referenceid": theirs,
    }
    assert sandbox.wallet("96000021")["balance"] == 8_000


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


# --- what every dialect accepts: the envelopes real clients send ---------------------------

UTF16_ON_UTF8 = '<?xml version="1.0" encoding="utf-16"?>'


@pytest.mark.parametrize("dialect", ["clients", "model"])
@pytest.mark.parametrize(
    "declaration",
    [UTF16_ON_UTF8, '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0'?>", ""],
)
def test_any_xml_declaration_is_accepted(sandbox_in, dialect: str, declaration: str):
    # Given a sandbox in either dialect
    sandbox = sandbox_in(dialect)
    sandbox.topup("flooz", 10_000)
    # When a transfer comes as UTF-8 bytes after whatever declaration, accents included
    fields = {
        "destination": "96000001",
        "amount": 1_000,
        "referenceid": "R-DECL",
        "walletid": "0",
        "extendeddata": "Récolte été",
    }
    code, answer = flooz_call(sandbox, "transferFlooz", fields, declaration=declaration)
    # Then it is read as UTF-8 and executed
    assert (code, answer["status"]) == (200, "0")
    [tx] = sandbox.transactions("flooz")
    assert tx["payload"]["extendeddata"] == "Récolte été"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_real_utf16_and_byte_order_marks_are_read_too(sandbox: Sandbox, codec: str):
    body = UTF16_ON_UTF8 + flooz_envelope("getBalance", {})
    response = flooz_post(sandbox, body.encode(codec), "text/xml")
    assert response.status_code == 200
    assert parse_flooz(response.text)["status"] == "0"


def test_non_utf8_bytes_fall_back_on_the_declared_encoding(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    fields = {"destination": "96000001", "amount": 1_000, "referenceid": "R-LATIN"}
    fields["extendeddata"] = "Récolte"
    body = flooz_envelope(
        "transferFlooz", fields, declaration='<?xml version="1.0" encoding="ISO-8859-1"?>'
    )
    response = flooz_post(sandbox, body.encode("latin-1"), "text/xml")
    assert parse_flooz(response.text)["status"] == "0"
    [tx] = sandbox.transactions("flooz")
    assert tx["payload"]["extendeddata"] == "Récolte"


@pytest.mark.parametrize("dialect", ["clients", "model"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/xml",
        "text/xml; charset=utf-8",
        "application/soap+xml",
        'application/soap+xml;charset=UTF-8;action="http://api.merchant.tlc.com/getBalance"',
        "application/xml",
        "application/xml; charset=utf-8",
        None,
    ],
)
def test_xml_content_types_are_accepted(sandbox_in, dialect: str, content_type: str | None):
    sandbox = sandbox_in(dialect)
    code, answer = flooz_call(
        sandbox, "getBalance", {}, declaration=UTF16_ON_UTF8, content_type=content_type
    )
    assert (code, answer["status"], answer["balance"]) == (200, "0", "0")


def test_a_non_xml_content_type_is_a_client_fault(sandbox: Sandbox):
    code, fault = flooz_call(sandbox, "getBalance", {}, content_type="application/json")
    assert code == 415
    assert fault["faultcode"] == "soap:Client"


@pytest.mark.parametrize("dialect", ["clients", "model"])
@pytest.mark.parametrize(
    "namespace", ["http://example.com/soap/envelope/", "http://api.merchant.tlc.com/"]
)
def test_a_wrong_envelope_namespace_is_a_soap_fault(sandbox_in, dialect: str, namespace: str):
    # Given a funded float
    sandbox = sandbox_in(dialect)
    sandbox.topup("flooz", 10_000)
    # When a transfer comes in an envelope of no SOAP version
    fields = {"destination": "96000001", "amount": 1_000, "referenceid": "R-NS"}
    code, fault = flooz_call(sandbox, "transferFlooz", fields, soap_ns=namespace)
    # Then it is refused with a client fault, and nothing moved
    assert code == 400
    assert fault["faultcode"] == "soap:Client"
    assert "VersionMismatch" in fault["faultstring"]
    assert sandbox.transactions() == []
    assert sandbox.floats()["flooz"] == 10_000


def test_an_envelope_in_no_namespace_is_a_soap_fault(sandbox: Sandbox):
    body = (
        f'<Envelope><Body><api:getBalance xmlns:api="{TLC_NS}"><token>{flooz_token()}</token>'
        "</api:getBalance></Body></Envelope>"
    )
    response = flooz_post(sandbox, body)
    assert response.status_code == 400
    fault = parse_flooz(response.text)
    assert fault["faultcode"] == "soap:Client"
    assert "VersionMismatch" in fault["faultstring"]


def test_a_soap12_request_is_answered_in_soap12(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    body = flooz_envelope("getBalance", {"msisdn": "22899999999"}, soap_ns=SOAP12_NS)
    response = flooz_post(sandbox, body, "application/soap+xml; charset=utf-8")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/soap+xml")
    assert f'xmlns:soap="{SOAP12_NS}"' in response.text
    assert (parse_flooz(response.text)["status"], parse_flooz(response.text)["balance"]) == (
        "0",
        "10000",
    )
    # and its faults are SOAP 1.2 faults
    code, fault = flooz_call(sandbox, "stealEverything", {}, soap_ns=SOAP12_NS)
    assert (code, fault["faultcode"]) == (400, "soap:Sender")
    assert "stealEverything" in fault["faultstring"]


# --- the clients dialect: answers as the TLC client libraries read them ------------------------


def _raw(sandbox: Sandbox, operation: str, fields: dict, token: str | None = None) -> str:
    response = flooz_post(sandbox, flooz_envelope(operation, fields, token))
    assert response.status_code == 200
    return response.text


def test_clients_answers_are_wrapped_per_operation(sandbox: Sandbox):
    # Given a payout and a push
    sandbox.topup("flooz", 10_000)
    transfer_text = _raw(
        sandbox,
        "transferFlooz",
        {"destination": "96000001", "amount": 1_000, "referenceid": "W-1", "walletid": "0"},
    )
    push_text = _raw(
        sandbox,
        "PushWithPending",
        {"msisdn": "96000031", "message": "CIZO", "amount": 500, "externaldata1": "W-COL"},
    )
    status_text = _raw(sandbox, "getTransactionStatus", {"transid": "W-1"})
    # Then status answers in <response>, push in <result>, every other one in <return>
    assert flooz_wrapper(status_text) == "response"
    assert flooz_wrapper(push_text) == "result"
    assert flooz_wrapper(transfer_text) == "return"
    assert flooz_wrapper(_raw(sandbox, "getBalance", {"msisdn": "22899999999"})) == "return"
    kyc = _raw(sandbox, "getMobileAccountStatus", {"msisdn": "96000001"})
    assert flooz_wrapper(kyc) == "return"
    # and status and push answers say `description` where the others say `message`
    status, push = parse_flooz(status_text), parse_flooz(push_text)
    assert status["description"] == "Transaction completed successfully"
    assert push["description"] == "Transaction pending"
    assert "message" not in status
    assert "message" not in push
    assert "message" in parse_flooz(transfer_text)


def test_clients_a_refused_token_keeps_the_operations_wrapper(sandbox: Sandbox):
    text = _raw(sandbox, "getTransactionStatus", {"transid": "X"}, token="bad")
    assert flooz_wrapper(text) == "response"
    assert parse_flooz(text) == {"status": "98", "description": "Invalid credentials"}


def test_clients_transid_is_the_merchants_reference_first(sandbox: Sandbox):
    # Given a payout under our reference and a push under our externaldata1
    sandbox.topup("flooz", 10_000)
    _, paid = transfer(sandbox, "96000001", 2_000, "OUR-REF-1")
    _, pushed = flooz_call(
        sandbox,
        "PushWithPending",
        {"msisdn": "96000031", "message": "CIZO", "amount": 500, "externaldata1": "OUR-COL-1"},
    )
    recorded = {tx["reference"]: tx["operator_reference"] for tx in sandbox.transactions("flooz")}
    # (the clients placement: the transfer answer's `transactionid` is our reference and its
    # `referenceid` Flooz's id; the pending push answer carries no id at all)
    assert (paid["transactionid"], paid["referenceid"]) == ("OUR-REF-1", recorded["OUR-REF-1"])
    assert pushed == {"status": "100", "description": "Transaction pending"}
    # When the status is asked with our reference in <transid>, as client code does
    by_ours = flooz_status(sandbox, transid="OUR-REF-1")
    # Then Flooz finds it, and tells both ids: its own in <transid>, ours in <referenceid>
    assert by_ours["status"] == "0"
    assert (by_ours["transid"], by_ours["referenceid"]) == (recorded["OUR-REF-1"], "OUR-REF-1")
    by_col = flooz_status(sandbox, transid="OUR-COL-1")
    assert (by_col["transid"], by_col["referenceid"]) == (recorded["OUR-COL-1"], "OUR-COL-1")
    # Flooz's own id in <transid> and our reference in <referenceid> still answer
    assert flooz_status(sandbox, transid=paid["referenceid"])["referenceid"] == "OUR-REF-1"
    assert flooz_status(sandbox, referenceid="OUR-REF-1")["transid"] == paid["referenceid"]
    # an unknown one is 94, echoing what was asked
    unknown = flooz_status(sandbox, transid="NEVER-SENT")
    assert (unknown["status"], unknown["transid"]) == ("94", "NEVER-SENT")


def test_clients_get_balance_with_the_merchant_msisdn(sandbox: Sandbox):
    sandbox.topup("flooz", 7_000)
    balance = flooz_call(sandbox, "getBalance", {"msisdn": "22899999999"})[1]
    assert balance == {
        "status": "0",
        "balance": "7000",
        "message": "Transaction completed successfully",
    }
    assert flooz_call(sandbox, "getBalance", {})[1] == balance
    assert flooz_call(sandbox, "getBalance", {"msisdn": "12345"})[1]["status"] == "3"


# --- the model dialect: Sika's first model, unchanged ----------------------------------------


@pytest.mark.parametrize("sandbox_dialect", ["model"])
def test_model_answers_in_return_with_message_everywhere(sandbox: Sandbox):
    assert sandbox.dialect == "model"
    sandbox.topup("flooz", 10_000)
    transfer_text = _raw(
        sandbox,
        "transferFlooz",
        {"destination": "96000001", "amount": 1_000, "referenceid": "M-1", "walletid": "0"},
    )
    push_text = _raw(
        sandbox,
        "PushWithPending",
        {"msisdn": "96000031", "message": "CIZO", "amount": 500, "externaldata1": "M-COL"},
    )
    paid = parse_flooz(transfer_text)
    status_text = _raw(sandbox, "getTransactionStatus", {"transid": paid["transactionid"]})
    for text in (transfer_text, push_text, status_text, _raw(sandbox, "getBalance", {})):
        assert flooz_wrapper(text) == "return"
    assert set(parse_flooz(_raw(sandbox, "getBalance", {}))) == {"status", "balance"}
    status, push = parse_flooz(status_text), parse_flooz(push_text)
    assert (status["status"], status["message"]) == ("0", "Transaction completed successfully")
    assert (push["status"], push["message"]) == ("100", "Transaction pending")
    assert "description" not in status


@pytest.mark.parametrize("sandbox_dialect", ["model"])
def test_model_transid_is_floozs_id_only(sandbox: Sandbox):
    sandbox.topup("flooz", 10_000)
    _, paid = transfer(sandbox, "96000001", 2_000, "OUR-REF-2")
    _, pushed = flooz_call(
        sandbox,
        "PushWithPending",
        {"msisdn": "96000031", "message": "CIZO", "amount": 500, "externaldata1": "OUR-COL-2"},
    )
    recorded = {tx["reference"]: tx["operator_reference"] for tx in sandbox.transactions("flooz")}
    # (the model placement: the transfer answer's `transactionid` is Flooz's id and its
    # `referenceid` ours; a push answer's `transid` is Flooz's id, pending as it is)
    assert (paid["transactionid"], paid["referenceid"]) == (recorded["OUR-REF-2"], "OUR-REF-2")
    assert (pushed["status"], pushed["transid"]) == ("100", recorded["OUR-COL-2"])
    assert "referenceid" not in pushed
    assert flooz_id(sandbox, paid) == recorded["OUR-REF-2"]
    assert flooz_push_id(sandbox, pushed, "OUR-COL-2") == recorded["OUR-COL-2"]
    assert flooz_status(sandbox, transid="OUR-REF-2")["status"] == "94"
    assert flooz_status(sandbox, transid=paid["transactionid"])["referenceid"] == "OUR-REF-2"
    assert flooz_status(sandbox, referenceid="OUR-REF-2")["transid"] == paid["transactionid"]
