"""The T-Money simulator on the wire: hand-built JSON against the sandbox subprocess, in the
`clients` dialect unless a test says otherwise."""

from __future__ import annotations

import time

import httpx
import pytest

from providers.sandbox.people import holder_name, stranger_name
from tests.fixtures.sandbox import Sandbox, TMoney

FIELDS = {
    "code",
    "message",
    "description",
    "refTmoney",
    "dateHeureTmoney",
    "idRequete",
    "statutRequete",
    "typeRequete",
    "dateHeureRequete",
    "refCommande",
    "montant",
    "numeroClient",
    "idPartenaire",
    "nomPartenaire",
    "soldePartenaire",
}


@pytest.mark.parametrize(
    ("number", "statut", "description"),
    [
        ("90000001", "SUCCES", None),
        ("90000002", "ECHEC", "CLIENT_INCONNU"),
        ("90000003", "ECHEC", "COMPTE_BLOQUE"),
        ("90000004", "ECHEC", "COMPTE_INACTIF"),
        ("90000005", "ECHEC", "PLAFOND_SOLDE"),
        ("90000006", "EN_COURS", None),
        ("90000009", "SUCCES", None),
        ("96000001", "ECHEC", "CLIENT_INCONNU"),  # a Moov number is not T-Money's
    ],
)
def test_each_test_number_settles_as_documented(
    sandbox: Sandbox, tmoney: TMoney, number: str, statut: str, description: str | None
):
    sandbox.topup("tmoney", 100_000)
    answer = tmoney.credit(number, 40_000, f"ID-{number}")
    assert answer.status_code == 200
    assert answer.json()["code"] == "2000"
    [tx] = tmoney.check(f"ID-{number}")
    assert set(tx) == FIELDS
    assert tx["statutRequete"] == statut
    assert tx["typeRequete"] == "CREDIT"
    assert tx["montant"] == 40_000
    assert tx["refCommande"] == f"CMD-ID-{number}"
    if statut == "SUCCES":
        assert tx["code"] == "2002"
        assert tx["soldePartenaire"] == 60_000
    if description:
        assert tx["description"] == description
    moved = 40_000 if statut == "SUCCES" else 0
    assert sandbox.floats()["tmoney"] == 100_000 - moved


def test_unknown_id_requete_is_an_empty_array(tmoney: TMoney):
    assert tmoney.check("never-sent") == []


def test_duplicate_id_requete_is_4001_and_moves_nothing(sandbox: Sandbox, tmoney: TMoney):
    sandbox.topup("tmoney", 100_000)
    assert tmoney.credit("90000001", 10_000, "ID-DUP").json()["code"] == "2000"
    assert tmoney.credit("90000001", 10_000, "ID-DUP").json()["code"] == "4001"
    assert tmoney.credit("90000001", 12_000, "ID-DUP").json()["code"] == "4001"
    assert sandbox.floats()["tmoney"] == 90_000


WSO2_INVALID = {
    "code": 900901,
    "message": "Invalid Credentials",
    "description": "Invalid Credentials. Make sure you have provided the correct security "
    "credentials",
}


def _fault(response: httpx.Response) -> dict:
    assert response.status_code == 401
    return response.json()["fault"]


def test_clients_missing_or_bad_token_is_a_wso2_401_fault(sandbox: Sandbox):
    raw = TMoney(sandbox)
    try:
        # no token at all: WSO2's missing-credentials fault
        missing = _fault(raw.credit("90000001", 1_000, "NO-TOKEN"))
        assert (missing["code"], missing["message"]) == (900902, "Missing Credentials")
        # a token the gateway never gave: invalid credentials
        raw.token = "forged"
        assert _fault(raw.credit("90000001", 1_000, "NO-TOKEN")) == WSO2_INVALID
        assert _fault(raw.push_status("NO-TOKEN")) == WSO2_INVALID
        assert _fault(raw.get("/m-banking/v1/api/solde")) == WSO2_INVALID
    finally:
        raw.close()
    assert sandbox.transactions() == []


def test_a_bare_token_without_bearer_is_accepted(sandbox: Sandbox, tmoney: TMoney):
    # Given a token from the gateway, sent bare as one public client sends it
    token = tmoney.token
    with httpx.Client(base_url=sandbox.url + "/tmoney", timeout=10) as client:
        # When a call carries it without the Bearer scheme
        bare = client.get("/m-banking/v1/api/solde", headers={"Authorization": token})
        # Then it is served; a forged bare token is still refused
        forged = client.get("/m-banking/v1/api/solde", headers={"Authorization": "forged"})
    assert bare.status_code == 200
    assert forged.status_code in (401, 403)


def test_clients_sign_in_answers_under_statut(sandbox: Sandbox):
    raw = TMoney(sandbox)
    try:
        signed = raw.login()
        assert signed.status_code == 200
        body = signed.json()
        assert set(body) == {"statut", "data"}
        assert body["statut"]["code"] == "2000"
        assert body["statut"]["message"]
        assert body["data"]["token"] == raw.token != ""
        # a refusal is read from the body of an ordinary answer, as client code reads it
        raw.token = ""
        refused = raw.login(password="wrong")
        assert refused.status_code == 200
        assert raw.token == ""
        assert set(refused.json()) == {"statut"}
        assert refused.json()["statut"]["code"] == "4001"
    finally:
        raw.close()


def test_clients_tokens_expire_on_the_sandbox_clock(sandbox: Sandbox, tmoney: TMoney):
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 200
    sandbox.advance_clock(901)
    assert _fault(tmoney.get("/m-banking/v1/api/solde")) == WSO2_INVALID
    tmoney.login()
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 200
    sandbox.expire_tokens()
    assert _fault(tmoney.get("/m-banking/v1/api/solde"))["code"] == 900901


@pytest.mark.parametrize("sandbox_dialect", ["model"])
def test_model_missing_or_bad_token_is_403(sandbox: Sandbox):
    raw = TMoney(sandbox)
    try:
        response = raw.credit("90000001", 1_000, "NO-TOKEN")
        assert response.status_code == 403
        assert response.json() == {"code": "403", "message": "Please sign in before continue"}
        raw.token = "forged"
        assert raw.credit("90000001", 1_000, "NO-TOKEN").status_code == 403
        refused = raw.login(password="wrong")
        assert (refused.status_code, refused.json()["code"]) == (401, "401")
        signed = raw.login()
        assert signed.json()["code"] == "2000"
        assert signed.json()["data"]["token"] == raw.token
    finally:
        raw.close()
    assert sandbox.transactions() == []


@pytest.mark.parametrize("sandbox_dialect", ["model"])
def test_model_tokens_expire_on_the_sandbox_clock(sandbox: Sandbox, tmoney: TMoney):
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 200
    sandbox.advance_clock(901)
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 403
    tmoney.login()
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 200
    sandbox.expire_tokens()
    assert tmoney.get("/m-banking/v1/api/solde").status_code == 403


def test_float_runs_out_mid_batch(sandbox: Sandbox, tmoney: TMoney):
    sandbox.topup("tmoney", 25_000)
    for i in range(4):
        assert tmoney.credit("90000001", 10_000, f"FB-{i}").json()["code"] == "2000"
    outcomes = [tmoney.check(f"FB-{i}")[0] for i in range(4)]
    assert [o["statutRequete"] for o in outcomes] == ["SUCCES", "SUCCES", "ECHEC", "ECHEC"]
    assert outcomes[2]["description"] == "SOLDE_PARTENAIRE_INSUFFISANT"
    body = tmoney.get("/m-banking/v1/api/solde").json()
    assert body["data"]["solde"] == 5_000


def test_limits(sandbox: Sandbox, tmoney: TMoney):
    sandbox.set_clock("2026-11-10T10:00:00")
    sandbox.topup("tmoney", 5_000_000)
    sandbox.set_limits("tmoney", daily_amount=15_000, monthly_amount=20_000)
    tmoney.login()
    tmoney.credit("90000021", 50, "LIM-MIN")
    tmoney.credit("90000021", 10_000, "LIM-1")
    tmoney.credit("90000021", 10_000, "LIM-2")
    assert tmoney.check("LIM-MIN")[0]["description"] == "MONTANT_INVALIDE"
    assert tmoney.check("LIM-1")[0]["statutRequete"] == "SUCCES"
    assert tmoney.check("LIM-2")[0]["description"] == "PLAFOND_JOURNALIER"
    sandbox.advance_clock(86_400)
    tmoney.login()
    tmoney.credit("90000021", 10_000, "LIM-3")
    tmoney.credit("90000021", 5_000, "LIM-4")
    assert tmoney.check("LIM-3")[0]["statutRequete"] == "SUCCES"
    assert tmoney.check("LIM-4")[0]["description"] == "PLAFOND_MENSUEL"


def test_malformed_credit_is_400(tmoney: TMoney):
    response = tmoney.client.post(
        "/m-banking/v1/api/tpcredit",
        json={"numeroClient": "90000001", "montant": "beaucoup"},
        headers={"Authorization": f"Bearer {tmoney.token}"},
    )
    assert response.status_code == 400


def test_client_lookup(tmoney: TMoney, sandbox: Sandbox):
    body = tmoney.get("/m-banking/v1/api/client/22890000001").json()
    assert body["statut"] == "ACTIF"
    assert body["nom"]
    assert body["prenom"]
    assert tmoney.get("/m-banking/v1/api/client/90000004").json()["statut"] == "INACTIF"
    assert tmoney.get("/m-banking/v1/api/client/90000002").status_code == 404
    assert tmoney.get("/m-banking/v1/api/client/96000001").status_code == 404
    assert sandbox.wallet("90000001")["name"] == f"{body['prenom']} {body['nom']}"


def _client(tmoney: TMoney, number: str) -> httpx.Response:
    return tmoney.get(f"/m-banking/v1/api/client/{number}")


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_client_lookup_names_a_wallet_after_its_number(sandbox: Sandbox, tmoney: TMoney):
    body = _client(tmoney, "90123456").json()
    assert (body["prenom"], body["nom"]) == holder_name("90123456")


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_client_lookup_at_the_balance_cap_is_plafond_solde(sandbox: Sandbox, tmoney: TMoney):
    # When Sika looks up a wallet holding the balance cap
    answer = _client(tmoney, "90000005")
    # Then the statut says so, with the holder's names
    assert answer.status_code == 200
    body = answer.json()
    assert body["statut"] == "PLAFOND_SOLDE"
    assert (body["prenom"], body["nom"]) == holder_name("90000005")
    # and a locked or inactive wallet at no cap keeps its own statut
    assert _client(tmoney, "90000004").json()["statut"] == "INACTIF"


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_client_lookup_of_000010_names_someone_else(sandbox: Sandbox, tmoney: TMoney):
    body = _client(tmoney, "91000010").json()
    assert body["statut"] == "ACTIF"
    assert (body["prenom"], body["nom"]) == stranger_name("91000010")
    assert body["nom"] != holder_name("91000010")[1]
    # and a credit to it succeeds: the operator pays whoever holds the wallet
    sandbox.topup("tmoney", 10_000)
    tmoney.credit("91000010", 1_000, "ID-STRANGER")
    assert tmoney.check("ID-STRANGER")[0]["statutRequete"] == "SUCCES"


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_000011_is_held_by_the_operator_its_prefix_does_not_name(sandbox: Sandbox, tmoney: TMoney):
    sandbox.topup("tmoney", 10_000)
    # Given a Togocom-prefix number ported to Moov: T-Money knows it not
    assert _client(tmoney, "90000011").status_code == 404
    tmoney.credit("90000011", 1_000, "ID-PORTED-AWAY")
    [away] = tmoney.check("ID-PORTED-AWAY")
    assert (away["statutRequete"], away["description"]) == ("ECHEC", "CLIENT_INCONNU")
    # Given a Moov-prefix number ported to T-Money: T-Money holds it, in the holder's name
    body = _client(tmoney, "96000011").json()
    assert body["statut"] == "ACTIF"
    assert (body["prenom"], body["nom"]) == holder_name("96000011")
    tmoney.credit("96000011", 1_000, "ID-PORTED-IN")
    assert tmoney.check("ID-PORTED-IN")[0]["statutRequete"] == "SUCCES"
    assert sandbox.floats()["tmoney"] == 9_000


def test_push_debit_collects_and_calls_back(sandbox: Sandbox, tmoney: TMoney, callback_sink):
    sandbox.set_callback_url(callback_sink.url)
    sandbox.put_wallet("90000021", balance=5_000)
    assert tmoney.debit("90000021", 2_000, "COL-T1").json()["code"] == "2000"
    assert tmoney.debit("90000021", 9_000, "COL-T2").json()["code"] == "2000"
    callbacks = {c["idRequete"]: c for c in callback_sink.wait_for(2)}
    assert callbacks["COL-T1"]["statutRequete"] == "SUCCES"
    assert callbacks["COL-T1"]["typeRequete"] == "DEBIT"
    assert callbacks["COL-T2"]["statutRequete"] == "ECHEC"
    assert sandbox.wallet("90000021")["balance"] == 3_000
    assert sandbox.floats()["tmoney"] == 2_000
    assert callback_sink.calls[0][0] == "/tmoney"


def test_oversize_json_is_refused(tmoney: TMoney):
    response = tmoney.client.post(
        "/m-banking/v1/api/tpcredit",
        content=b'{"x": "' + b"a" * (200 * 1024) + b'"}',
        headers={"Authorization": f"Bearer {tmoney.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_callback_is_sent_without_delaying_the_answer(sandbox, tmoney, callback_sink):
    sandbox.topup("tmoney", 10_000)
    sandbox.set_callback_url(callback_sink.url)
    started = time.monotonic()
    assert tmoney.credit("90000001", 1_000, "FAST").json()["code"] == "2000"
    assert time.monotonic() - started < 1
    [callback] = callback_sink.wait_for(1)
    assert set(callback) == FIELDS
    assert callback["statutRequete"] == "SUCCES"
    assert callback["code"] == "2002"


def test_wrong_method_is_not_served(sandbox: Sandbox):
    assert httpx.get(sandbox.url + "/tmoney/login").status_code == 405


def test_a_merchant_payment_is_checked_by_ref_tmoney_only(sandbox: Sandbox, tmoney: TMoney):
    sandbox.put_wallet("90000073", balance=10_000)
    paid = sandbox.pay("90000073", 2_200, "KIT-9", "tmoney")
    response = tmoney.client.get(
        "/m-banking/v1/api/tpcredit/check-transaction-id",
        params={"refTmoney": paid["operator_reference"]},
        headers=tmoney._headers(),
    )
    [tx] = response.json()["data"]
    assert (tx["idRequete"], tx["refTmoney"], tx["typeRequete"], tx["statutRequete"]) == (
        "KIT-9",
        paid["operator_reference"],
        "DEBIT",
        "SUCCES",
    )
    assert tx["montant"] == 2_200
    # the merchant reference is not the partner's idRequete: nothing under it
    assert tmoney.check("KIT-9") == []


# --- amounts as JSON numbers, in both dialects ----------------------------------------------


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
def test_a_whole_valued_json_number_is_an_amount(sandbox: Sandbox, tmoney: TMoney):
    sandbox.topup("tmoney", 10_000)
    assert tmoney.credit("90000001", 1000.0, "AMT-FLOAT").json()["code"] == "2000"
    [tx] = tmoney.check("AMT-FLOAT")
    assert (tx["montant"], tx["statutRequete"]) == (1_000, "SUCCES")
    assert sandbox.floats()["tmoney"] == 9_000


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
@pytest.mark.parametrize("amount", [1000.5, 0.0, -1000.0, True, "1000.5"])
def test_a_fraction_is_refused_as_montant_invalide(sandbox: Sandbox, tmoney: TMoney, amount):
    sandbox.topup("tmoney", 10_000)
    response = tmoney.credit("90000001", amount, "AMT-BAD")
    assert response.status_code == 400
    assert response.json()["description"] == "MONTANT_INVALIDE"
    assert sandbox.transactions() == []


# --- the push-debit status route ------------------------------------------------------------


def test_clients_push_debits_are_read_back_at_push_api(sandbox: Sandbox, tmoney: TMoney):
    # Given a push debit that succeeded, one that failed and a credit
    sandbox.put_wallet("90000021", balance=5_000)
    sandbox.topup("tmoney", 10_000)
    tmoney.debit("90000021", 2_000, "PUSH-OK")
    tmoney.debit("90000021", 9_000, "PUSH-KO")
    tmoney.credit("90000001", 1_000, "CREDIT-1")
    # When each is read at /push-api/v1/transactionid
    for _ in range(50):  # a push settles when the subscriber approves, a moment later
        ok = tmoney.push_status("PUSH-OK").json()["data"]
        if ok and ok[0]["statutRequete"] != "EN_COURS":
            break
        time.sleep(0.1)
    # Then a push answers as check-transaction-id does, and nothing else is found there
    assert ok == tmoney.check("PUSH-OK")
    [record] = ok
    assert set(record) == FIELDS - {"soldePartenaire"}
    assert (record["typeRequete"], record["statutRequete"]) == ("DEBIT", "SUCCES")
    assert record["montant"] == 2_000
    response = tmoney.push_status("PUSH-KO")
    assert response.status_code == 200
    assert response.json()["code"] == "2000"
    [failed] = response.json()["data"]
    assert failed["idRequete"] == "PUSH-KO"
    assert failed["statutRequete"] in ("EN_COURS", "ECHEC")
    assert tmoney.push_status("CREDIT-1").json()["data"] == []
    assert tmoney.push_status("NEVER-SENT").json()["data"] == []
    missing = tmoney.client.get("/push-api/v1/transactionid", headers=tmoney._headers())
    assert missing.status_code == 400


@pytest.mark.parametrize("sandbox_dialect", ["model"])
def test_model_has_no_push_api_status_route(sandbox: Sandbox, tmoney: TMoney):
    sandbox.put_wallet("90000021", balance=5_000)
    tmoney.debit("90000021", 2_000, "PUSH-M")
    assert tmoney.push_status("PUSH-M").status_code == 404
    assert tmoney.check("PUSH-M")[0]["typeRequete"] == "DEBIT"
