"""Flooz adapter against a stand-in for the operator's side (httpx.MockTransport): envelopes,
the token, the code table, and hostile or broken answers that must never read as success.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from defusedxml.ElementTree import fromstring
from structlog.testing import capture_logs

from providers.base import Outcome, PayoutRequest, Reason
from providers.config import TLC_DEFAULT_KEY
from providers.flooz import FLOOZ_CODES, NAMESPACE, FloozAdapter, build_token

DOCUMENTED_CODES = {
    "0", "1", "2", "3", "4", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "91", "92", "94", "95", "98", "99", "-1", "100", "555",
}  # fmt: skip

PAYOUT = PayoutRequest(reference="AGR-1", msisdn="22896000001", amount=9000, description="x")


def soap(operation: str, **fields: str) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<ns2:{operation}Response xmlns:ns2="{NAMESPACE}"><return>{inner}</return>'
        f"</ns2:{operation}Response></soap:Body></soap:Envelope>"
    ).encode()


def adapter(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> FloozAdapter:
    return FloozAdapter(
        "http://flooz.test",
        "sika",
        "s3cret-pass",
        TLC_DEFAULT_KEY,
        transport=httpx.MockTransport(handler),
        **{"merchant_msisdn": "22899000000", **kw},  # type: ignore[arg-type]
    )


def answering(body: bytes, status: int = 200) -> FloozAdapter:
    return adapter(lambda _r: httpx.Response(status, content=body))


def test_token_known_answer() -> None:
    # Given the TLC default key; expected values computed with `openssl enc -aes-256-cbc`
    # Then the token matches byte for byte
    assert build_token("sika", "sika", TLC_DEFAULT_KEY) == "MXJC+iIXeMi5vm28IEiZEg=="
    assert (
        build_token("merchant", "s3cret!", TLC_DEFAULT_KEY)
        == "deeULs5ZWRXdJDFy36Hcqj0M8RnVZwbg0kAsSDuSTL8="
    )


def test_code_table_covers_every_documented_code() -> None:
    assert set(FLOOZ_CODES) == DOCUMENTED_CODES
    assert FLOOZ_CODES["0"].outcome is Outcome.SUCCEEDED
    assert [c for c, r in FLOOZ_CODES.items() if r.outcome is Outcome.SUCCEEDED] == ["0"]


def test_payout_envelope_is_exactly_the_tlc_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=soap(
                "transferFlooz", status="0", transactionid="F1", referenceid="AGR-1", message="ok"
            ),
        )

    result = adapter(handler).payout(PAYOUT)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.operator_reference == "F1"
    request = seen[0]
    assert request.url.path == "/com.tlc.merchant.api/UssdPush"
    assert request.headers["content-type"].startswith("text/xml")
    body = fromstring(request.content)
    operation = body.find(f".//{{{NAMESPACE}}}transferFlooz")
    assert operation is not None
    children = [el.tag for el in operation]
    assert children == ["token", "request"]
    assert operation[0].text == build_token("sika", "s3cret-pass", TLC_DEFAULT_KEY)
    fields = {el.tag: el.text for el in operation[1]}
    assert fields == {
        "destination": "22896000001",
        "amount": "9000",
        "referenceid": "AGR-1",
        "walletid": "0",
        "extendeddata": "x",
    }


def test_push_with_pending_puts_fields_directly_after_token() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, content=soap("PushWithPending", status="100", transid="P9"))

    from providers.base import CollectionRequest

    result = adapter(handler).request_collection(
        CollectionRequest(reference="C-1", msisdn="22896000001", amount=160, message="kit")
    )
    assert result.outcome is Outcome.PENDING
    assert result.operator_reference == "P9"
    operation = fromstring(seen[0]).find(f".//{{{NAMESPACE}}}PushWithPending")
    assert [el.tag for el in operation] == [
        "token",
        "msisdn",
        "message",
        "amount",
        "externaldata1",
        "externaldata2",
        "fee",
    ]


@pytest.mark.parametrize("code", sorted(DOCUMENTED_CODES - {"4"}))
def test_every_code_maps_through_the_table(code: str) -> None:
    result = answering(soap("transferFlooz", status=code, referenceid="AGR-1")).payout(PAYOUT)
    rule = FLOOZ_CODES[code]
    assert (result.outcome, result.reason, result.retryable) == (
        rule.outcome,
        rule.reason,
        rule.retryable,
    )


def test_duplicate_reference_is_resolved_by_status_query_not_resend() -> None:
    operations: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        operation = re.search(rb"<api:(\w+)>", request.content).group(1).decode()
        operations.append(operation)
        if operation == "transferFlooz":
            return httpx.Response(
                200, content=soap("transferFlooz", status="4", message="referenceid already used")
            )
        return httpx.Response(
            200,
            content=soap(
                "getTransactionStatus",
                status="0",
                transid="F7",
                referenceid="AGR-1",
                amount="9000",
                destination="22896000001",
            ),
        )

    result = adapter(handler).payout(PAYOUT)
    assert operations == ["transferFlooz", "getTransactionStatus"]
    assert result.outcome is Outcome.SUCCEEDED
    assert result.operator_reference == "F7"


def test_status_94_means_not_found() -> None:
    result = answering(soap("getTransactionStatus", status="94")).payout_status("AGR-1")
    assert (result.outcome, result.reason, result.found) == (
        Outcome.FAILED,
        Reason.NOT_FOUND,
        False,
    )


def test_status_refused_query_learns_nothing() -> None:
    result = answering(soap("getTransactionStatus", status="98")).payout_status("AGR-1")
    assert result.outcome is Outcome.UNKNOWN


def test_transaction_status_asks_by_transid_and_reads_the_merchant_reference() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        body = soap(
            "getTransactionStatus",
            status="0",
            transid="F9",
            referenceid="KIT-1",
            amount="1300",
            destination="22896000031",
        )
        return httpx.Response(200, content=body)

    result = adapter(handler).transaction_status("F9")
    request = fromstring(seen[0]).find(f".//{{{NAMESPACE}}}getTransactionStatus/request")
    assert [(el.tag, el.text) for el in request] == [("transid", "F9")]
    assert (result.outcome, result.reference, result.operator_reference, result.amount) == (
        Outcome.SUCCEEDED,
        "KIT-1",
        "F9",
        1300,
    )
    assert result.kind is None


def test_transaction_status_not_found_other_transid_and_refused_query() -> None:
    missing = answering(soap("getTransactionStatus", status="94")).transaction_status("F9")
    assert (missing.outcome, missing.found, missing.operator_reference) == (
        Outcome.FAILED,
        False,
        "F9",
    )
    other = answering(soap("getTransactionStatus", status="0", transid="F1", amount="5"))
    assert other.transaction_status("F9").outcome is Outcome.UNKNOWN
    refused = answering(soap("getTransactionStatus", status="98")).transaction_status("F9")
    assert refused.outcome is Outcome.UNKNOWN
    broken = answering(b"<nope", status=200).transaction_status("F9")
    assert (broken.outcome, broken.operator_reference) == (Outcome.UNKNOWN, "F9")


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<ns2:transferFlooz xmlns:ns2="http://api.merchant.tlc.com/"><return><status>0</status>
<message>&lol3;</message></return></ns2:transferFlooz></soap:Body></soap:Envelope>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<ns2:transferFloozResponse xmlns:ns2="http://api.merchant.tlc.com/"><return><status>0</status>
<message>&x;</message></return></ns2:transferFloozResponse></soap:Body></soap:Envelope>"""

HOSTILE = {
    "truncated": soap("transferFlooz", status="0", transactionid="F1")[:-40],
    "xml_bomb": BOMB,
    "external_entity": EXTERNAL_ENTITY,
    "not_xml": b"<html>502 Bad Gateway</html",
    "empty": b"",
    "no_status": soap("transferFlooz", transactionid="F1"),
    "wrong_operation": soap("getBalance", status="0", balance="1"),
    "fault": (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>boom"
        b"</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    ),
    "status_not_a_number": soap("transferFlooz", status="zero"),
    "huge": soap("transferFlooz", status="0", message="A" * 400_000),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_answers_are_unknown_with_a_logged_reason(name: str) -> None:
    with capture_logs() as logs:
        result = answering(HOSTILE[name]).payout(PAYOUT)
    assert result.outcome is Outcome.UNKNOWN, result
    assert result.detail
    assert any(entry.get("detail") for entry in logs if entry["log_level"] == "warning")


def test_a_referenceid_not_ours_is_recorded_not_malformed() -> None:
    # Given a transferFlooz answer whose referenceid is not Sika's reference (which id is
    # the merchant's differs between TLC deployments)
    body = soap("transferFlooz", status="0", transactionid="AGR-1", referenceid="MP2611.1")
    # When Sika reads it
    result = answering(body).payout(PAYOUT)
    # Then the outcome comes from the status, and Flooz's id is the one that is not ours
    assert (result.outcome, result.operator_reference) == (Outcome.SUCCEEDED, "MP2611.1")


def test_wrong_types_in_a_status_answer_are_unknown() -> None:
    body = soap("getTransactionStatus", status="0", referenceid="AGR-1", amount="nine")
    assert answering(body).payout_status("AGR-1").outcome is Outcome.UNKNOWN


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_is_unknown(status: int) -> None:
    assert answering(b"oops", status=status).payout(PAYOUT).outcome is Outcome.UNKNOWN


def raising(exc: Exception) -> FloozAdapter:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return adapter(handler)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("t"),
        httpx.RemoteProtocolError("r"),
        httpx.ReadError("r"),
        httpx.WriteError("w"),
        httpx.WriteTimeout("w"),
    ],
)
def test_errors_after_sending_are_unknown(exc: Exception) -> None:
    result = raising(exc).payout(PAYOUT)
    assert (result.outcome, result.reason) == (Outcome.UNKNOWN, Reason.NO_ANSWER)


@pytest.mark.parametrize("exc", [httpx.ConnectError("c"), httpx.ConnectTimeout("c")])
def test_errors_before_sending_are_retryable_failures(exc: Exception) -> None:
    result = raising(exc).payout(PAYOUT)
    assert (result.outcome, result.reason, result.retryable) == (
        Outcome.FAILED,
        Reason.UNREACHABLE,
        True,
    )
    # but a status query that could not be sent has learnt nothing
    assert raising(exc).payout_status("AGR-1").outcome is Outcome.UNKNOWN


def test_logs_mask_msisdn_and_never_carry_the_token() -> None:
    token = build_token("sika", "s3cret-pass", TLC_DEFAULT_KEY)
    with capture_logs() as logs:
        answering(soap("transferFlooz", status="0", transactionid="F1")).payout(PAYOUT)
    text = repr(logs)
    assert token not in text
    assert "s3cret-pass" not in text
    assert "22896000001" not in text
    assert "22896****01" in text
    assert all(entry["provider"] == "flooz" and entry["reference"] == "AGR-1" for entry in logs)


def test_balance_and_lookup() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if b"getBalance" in request.content:
            return httpx.Response(200, content=soap("getBalance", status="0", balance="125000"))
        return httpx.Response(
            200,
            content=soap(
                "getMobileAccountStatus",
                status="0",
                subscriberstatus="ACTIVE",
                firstname="Afi",
                lastname="Mensah",
                msisdn="22896000001",
            ),
        )

    flooz = adapter(handler)
    assert flooz.balance().balance == 125000
    kyc = flooz.lookup("22896000001")
    assert (kyc.status, kyc.name) == ("active", "Afi Mensah")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("7", "locked"),
        ("9", "inactive"),
        ("18", "at_balance_cap"),
        ("555", "not_registered"),
        ("3", "not_registered"),
    ],
)
def test_lookup_status_codes_map_to_account_states(code: str, status: str) -> None:
    # Given a getMobileAccountStatus answer with a status other than 0
    flooz = answering(
        soap(
            "getMobileAccountStatus",
            status=code,
            message="Destination reached maximum balance",
            subscriberstatus="ACTIVE",
            firstname="Kossi",
            lastname="MENSAH",
            msisdn="22896000005",
        )
    )
    # When Sika looks the number up
    kyc = flooz.lookup("22896000005")
    # Then the code alone decides the wallet's state, and the look-up itself succeeded
    assert (kyc.outcome, kyc.status) == (Outcome.SUCCEEDED, status)


def test_lookup_at_the_balance_cap_keeps_the_holders_names() -> None:
    # Given the modelled answer for a wallet at its cap: status 18, names, no transfer
    flooz = answering(
        soap(
            "getMobileAccountStatus",
            status="18",
            message="Destination reached maximum balance",
            subscriberstatus="ACTIVE",
            allowedtransfer="false",
            firstname="Essowè",
            secondname="Yao",
            lastname="TCHALLA",
            msisdn="22896000005",
        )
    )
    # When Sika looks it up
    kyc = flooz.lookup("22896000005")
    # Then it is at the cap, and the holder's names are there to be compared
    assert kyc.status == "at_balance_cap"
    assert (kyc.first_name, kyc.last_name) == ("Essowè Yao", "TCHALLA")


def test_lookup_without_an_answer_is_unknown_no_answer() -> None:
    # Given a Flooz that takes the request and never answers in time
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    # When Sika looks a number up
    kyc = adapter(handler).lookup("22896000012")
    # Then nothing is known about the wallet: unknown, no answer
    assert (kyc.outcome, kyc.reason, kyc.status) == (Outcome.UNKNOWN, Reason.NO_ANSWER, "unknown")
