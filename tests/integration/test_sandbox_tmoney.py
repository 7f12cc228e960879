"""The T-Money simulator on the wire: hand-built JSON against the sandbox subprocess."""

from __future__ import annotations

import time

import httpx
import pytest

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


def test_missing_or_bad_token_is_403(sandbox: Sandbox):
    raw = TMoney(sandbox)
    try:
        response = raw.credit("90000001", 1_000, "NO-TOKEN")
        assert response.status_code == 403
        assert response.json() == {"code": "403", "message": "Please sign in before continue"}
        raw.token = "forged"
        assert raw.credit("90000001", 1_000, "NO-TOKEN").status_code == 403
        assert raw.login(password="wrong").status_code == 401
    finally:
        raw.close()
    assert sandbox.transactions() == []


def test_tokens_expire_on_the_sandbox_clock(sandbox: Sandbox, tmoney: TMoney):
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
    tmoney.credit("90000011", 50, "LIM-MIN")
    tmoney.credit("90000011", 10_000, "LIM-1")
    tmoney.credit("90000011", 10_000, "LIM-2")
    assert tmoney.check("LIM-MIN")[0]["description"] == "MONTANT_INVALIDE"
    assert tmoney.check("LIM-1")[0]["statutRequete"] == "SUCCES"
    assert tmoney.check("LIM-2")[0]["description"] == "PLAFOND_JOURNALIER"
    sandbox.advance_clock(86_400)
    tmoney.login()
    tmoney.credit("90000011", 10_000, "LIM-3")
    tmoney.credit("90000011", 5_000, "LIM-4")
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
