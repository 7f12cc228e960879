"""T-Money adapter against a stand-in for the gateway (httpx.MockTransport): sign-in and
403 handling, the code/status/description tables, and broken answers that stay unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from providers.base import Kind, Outcome, PayoutRequest, Reason
from providers.tmoney import TMONEY_CODES, TMONEY_FAILURES, TMoneyAdapter

PAYOUT = PayoutRequest(reference="AGR-2", msisdn="22890000001", amount=40000)
DESCRIPTIONS = {
    "CLIENT_INCONNU", "COMPTE_BLOQUE", "COMPTE_INACTIF", "PLAFOND_SOLDE", "PLAFOND_JOURNALIER",
    "PLAFOND_MENSUEL", "SOLDE_PARTENAIRE_INSUFFISANT", "MONTANT_INVALIDE",
    "SOLDE_CLIENT_INSUFFISANT",
}  # fmt: skip


def tx(**fields: Any) -> dict[str, Any]:
    base = {
        "idRequete": "AGR-2",
        "refTmoney": "T1",
        "numeroClient": "22890000001",
        "montant": 40000,
        "typeRequete": "CREDIT",
    }
    return {**base, **fields}


class Gateway:
    """Records requests; answers login itself and the rest through `answer`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []
        self.logins = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/login":
            self.logins += 1
            return httpx.Response(
                200, json={"code": "2000", "message": "ok", "data": {"token": f"tok{self.logins}"}}
            )
        return self.answer(request)


def adapter(gateway: Gateway) -> TMoneyAdapter:
    return TMoneyAdapter(
        "http://tmoney.test", "sika", "pw-secret", transport=httpx.MockTransport(gateway)
    )


def fixed(status: int, body: Any) -> Gateway:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Gateway(lambda _r: httpx.Response(status, content=content))


def test_tables_cover_every_documented_value() -> None:
    assert set(TMONEY_FAILURES) == DESCRIPTIONS
    assert {"2000", "4001", "500"} <= set(TMONEY_CODES)


def test_credit_accepted_is_pending_and_token_is_cached() -> None:
    gateway = fixed(200, {"code": "2000", "message": "en cours"})
    tmoney = adapter(gateway)
    assert tmoney.payout(PAYOUT).outcome is Outcome.PENDING
    assert tmoney.payout(PAYOUT.model_copy(update={"reference": "AGR-3"})).outcome is (
        Outcome.PENDING
    )
    assert gateway.logins == 1
    credit = gateway.requests[1]
    assert credit.url.path == "/m-banking/v1/api/tpcredit"
    assert credit.headers["authorization"] == "Bearer tok1"
    body = json.loads(credit.content)
    assert body["idRequete"] == "AGR-2"
    assert body["montant"] == 40000
    assert body["numeroClient"] == "22890000001"
    assert body["refCommande"] == "AGR-2"


def test_403_signs_in_again_once_and_repeats() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok1":
            return httpx.Response(403, json={"code": "403", "message": "Please sign in"})
        return httpx.Response(200, json={"code": "2000"})

    gateway = Gateway(answer)
    assert adapter(gateway).payout(PAYOUT).outcome is Outcome.PENDING
    assert gateway.logins == 2


def test_403_twice_is_a_credentials_failure_not_a_loop() -> None:
    gateway = fixed(403, {"code": "403", "message": "Please sign in before continue"})
    result = adapter(gateway).payout(PAYOUT)
    assert (result.outcome, result.reason) == (Outcome.FAILED, Reason.CREDENTIALS_REJECTED)
    assert gateway.logins == 2


def test_status_success_needs_succes_and_2002() -> None:
    ok = adapter(fixed(200, {"data": [tx(statutRequete="SUCCES", code="2002")]}))
    result = ok.payout_status("AGR-2")
    assert (result.outcome, result.operator_reference, result.amount) == (
        Outcome.SUCCEEDED,
        "T1",
        40000,
    )
    odd = adapter(fixed(200, {"data": [tx(statutRequete="SUCCES", code="2000")]}))
    assert odd.payout_status("AGR-2").outcome is Outcome.UNKNOWN


@pytest.mark.parametrize("description", sorted(DESCRIPTIONS))
def test_every_failure_description_maps(description: str) -> None:
    body = {"data": [tx(statutRequete="ECHEC", code="5000", description=description)]}
    result = adapter(fixed(200, body)).payout_status("AGR-2")
    rule = TMONEY_FAILURES[description]
    assert (result.outcome, result.reason, result.retryable) == (
        Outcome.FAILED,
        rule.reason,
        rule.retryable,
    )


def test_en_cours_is_pending_and_empty_data_is_not_found() -> None:
    pending = adapter(fixed(200, {"data": [tx(statutRequete="EN_COURS")]}))
    assert pending.payout_status("AGR-2").outcome is Outcome.PENDING
    missing = adapter(fixed(200, {"data": []})).payout_status("AGR-2")
    assert (missing.outcome, missing.reason, missing.found) == (
        Outcome.FAILED,
        Reason.NOT_FOUND,
        False,
    )


def test_transaction_status_asks_by_ref_tmoney() -> None:
    merchant = tx(
        idRequete="KIT-1", refTmoney="T9", montant=2200, typeRequete="DEBIT", statutRequete="SUCCES"
    )
    gateway = fixed(200, {"data": [{**merchant, "code": "2002"}]})
    result = adapter(gateway).transaction_status("T9")
    [check] = [r for r in gateway.requests if r.url.path.endswith("check-transaction-id")]
    assert dict(check.url.params) == {"refTmoney": "T9"}
    assert (result.outcome, result.reference, result.operator_reference, result.amount) == (
        Outcome.SUCCEEDED,
        "KIT-1",
        "T9",
        2200,
    )
    assert result.kind is Kind.COLLECTION


def test_transaction_status_not_found_and_records_about_another_ref() -> None:
    missing = adapter(fixed(200, {"data": []})).transaction_status("T9")
    assert (missing.outcome, missing.found, missing.operator_reference) == (
        Outcome.FAILED,
        False,
        "T9",
    )
    other = adapter(fixed(200, {"data": [tx(statutRequete="SUCCES", code="2002")]}))
    result = other.transaction_status("T9")
    assert (result.outcome, result.reason, result.operator_reference) == (
        Outcome.UNKNOWN,
        Reason.MALFORMED_ANSWER,
        "T9",
    )
    assert adapter(fixed(503, b"down")).transaction_status("T9").outcome is Outcome.UNKNOWN


def test_duplicate_is_resolved_by_status_query() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("tpcredit"):
            return httpx.Response(200, json={"code": "4001", "message": "already submitted"})
        return httpx.Response(200, json={"data": [tx(statutRequete="SUCCES", code="2002")]})

    gateway = Gateway(answer)
    result = adapter(gateway).payout(PAYOUT)
    assert result.outcome is Outcome.SUCCEEDED
    paths = [r.url.path for r in gateway.requests]
    assert paths.count("/m-banking/v1/api/tpcredit") == 1


def test_json_code_500_is_a_retryable_failure_but_http_5xx_is_unknown() -> None:
    failed = adapter(fixed(200, {"code": "500", "message": "transaction error"})).payout(PAYOUT)
    assert (failed.outcome, failed.reason, failed.retryable) == (
        Outcome.FAILED,
        Reason.TRANSACTION_ERROR,
        True,
    )
    for status in (500, 502, 503):
        assert adapter(fixed(status, b"Bad gateway")).payout(PAYOUT).outcome is Outcome.UNKNOWN


HOSTILE = {
    "truncated": b'{"data": [{"idRequete": "AGR-2", "statutRequete": "SUC',
    "not_json": b"<html>oops</html>",
    "array": b"[1, 2]",
    "data_not_array": json.dumps({"data": {"statutRequete": "SUCCES"}}).encode(),
    "wrong_amount_type": json.dumps(
        {"data": [tx(statutRequete="SUCCES", code="2002", montant="forty")]}
    ).encode(),
    "status_is_a_list": json.dumps({"data": [tx(statutRequete=["SUCCES"], code="2002")]}).encode(),
    "neither_status_nor_code": json.dumps({"data": [tx()]}).encode(),
    "unmapped_code_no_status": json.dumps({"data": [tx(code="7777")]}).encode(),
    "other_reference": json.dumps(
        {"data": [tx(idRequete="OTHER", statutRequete="SUCCES", code="2002")]}
    ).encode(),
    "huge": json.dumps(
        {"data": [tx(statutRequete="SUCCES", code="2002", message="A" * 400_000)]}
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_status_answers_are_unknown_with_a_logged_reason(name: str) -> None:
    with capture_logs() as logs:
        result = adapter(fixed(200, HOSTILE[name])).payout_status("AGR-2")
    assert result.outcome is Outcome.UNKNOWN, result
    assert result.detail
    assert any(e["log_level"] == "warning" and e.get("detail") for e in logs)


@pytest.mark.parametrize("name", ["truncated", "not_json", "array"])
def test_hostile_credit_answers_are_unknown(name: str) -> None:
    assert adapter(fixed(200, HOSTILE[name])).payout(PAYOUT).outcome is Outcome.UNKNOWN


def raising_after_login(exc: Exception) -> TMoneyAdapter:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return adapter(Gateway(answer))


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("t"),
        httpx.RemoteProtocolError("r"),
        httpx.ReadError("r"),
        httpx.WriteError("w"),
    ],
)
def test_errors_after_sending_are_unknown(exc: Exception) -> None:
    result = raising_after_login(exc).payout(PAYOUT)
    assert (result.outcome, result.reason) == (Outcome.UNKNOWN, Reason.NO_ANSWER)


def test_connect_error_is_retryable_failure_and_a_failed_sign_in_sends_nothing() -> None:
    result = raising_after_login(httpx.ConnectError("refused")).payout(PAYOUT)
    assert (result.outcome, result.retryable) == (Outcome.FAILED, True)

    def login_times_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("login")

    tmoney = TMoneyAdapter(
        "http://tmoney.test", "sika", "pw", transport=httpx.MockTransport(login_times_out)
    )
    result = tmoney.payout(PAYOUT)
    assert (result.outcome, result.retryable) == (Outcome.FAILED, True)


def test_logs_never_carry_token_or_password() -> None:
    with capture_logs() as logs:
        adapter(fixed(200, {"code": "2000"})).payout(PAYOUT)
    text = repr(logs)
    assert "tok1" not in text
    assert "pw-secret" not in text
    assert "22890000001" not in text


def test_balance_and_lookup() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/solde"):
            return httpx.Response(200, json={"code": "2000", "data": {"solde": 77000}})
        if request.url.path.endswith("/22890000002"):
            return httpx.Response(404, json={"code": "404", "message": "CLIENT_INCONNU"})
        return httpx.Response(200, json={"statut": "ACTIF", "nom": "Mensah", "prenom": "Kossi"})

    tmoney = adapter(Gateway(answer))
    assert tmoney.balance().balance == 77000
    kyc = tmoney.lookup("22890000001")
    assert (kyc.status, kyc.name) == ("active", "Kossi Mensah")
    assert tmoney.lookup("22890000002").status == "not_registered"


@pytest.mark.parametrize(
    ("statut", "status"),
    [
        ("ACTIF", "active"),
        ("INACTIF", "inactive"),
        ("BLOQUE", "locked"),
        ("PLAFOND_SOLDE", "at_balance_cap"),
        ("CLIENT_INCONNU", "not_registered"),
        ("QUELQUE_CHOSE", "unknown"),
    ],
)
@pytest.mark.parametrize("under_data", [False, True])
def test_lookup_statut_maps_to_account_states(statut: str, status: str, under_data: bool) -> None:
    # Given a client look-up answer with this `statut`, at the top level or under `data`
    record = {"statut": statut, "nom": "MENSAH", "prenom": "Kossi", "numero": "22890000005"}
    body = {"code": "2000", "data": record} if under_data else {"code": "2000", **record}
    tmoney = adapter(Gateway(lambda _r: httpx.Response(200, json=body)))
    # When Sika looks the number up
    kyc = tmoney.lookup("22890000005")
    # Then the statut decides the wallet's state, and the names are read whatever it is
    assert (kyc.outcome, kyc.status) == (Outcome.SUCCEEDED, status)
    assert kyc.name == "Kossi MENSAH"


def test_lookup_without_an_answer_is_unknown_no_answer() -> None:
    # Given a gateway that signs in, then never answers the look-up in time
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    # When Sika looks a number up
    kyc = adapter(Gateway(answer)).lookup("22890000012")
    # Then nothing is known about the wallet: unknown, no answer
    assert (kyc.outcome, kyc.reason, kyc.status) == (Outcome.UNKNOWN, Reason.NO_ANSWER, "unknown")
