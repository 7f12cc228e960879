"""The T-Money (Togocom) m-banking gateway simulator: JSON under `/tmoney/…`, bearer tokens
that expire on the sandbox clock, credits accepted at once and settled by callback.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from enum import StrEnum
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.msisdn import InvalidMsisdn, Operator, normalise
from providers.sandbox.runtime import BodyTooLarge, Context, context, read_json
from providers.sandbox.state import HANGS, MERCHANT_NAME, Kind, Reason, Transaction, TxStatus

OP = Operator.TMONEY
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class Statut(StrEnum):
    """`statutRequete` values."""

    SUCCES = "SUCCES"
    ECHEC = "ECHEC"
    EN_COURS = "EN_COURS"


class Code(StrEnum):
    """`code` values the gateway answers."""

    ACCEPTED = "2000"
    IN_PROGRESS = "2001"
    SUCCESS = "2002"
    DUPLICATE = "4001"
    BAD_REQUEST = "400"
    UNAUTHORISED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"
    ERROR = "500"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.NOT_REGISTERED: "CLIENT_INCONNU",
    Reason.LOCKED: "COMPTE_BLOQUE",
    Reason.INACTIVE: "COMPTE_INACTIF",
    Reason.BALANCE_CAP: "PLAFOND_SOLDE",
    Reason.DAILY_AMOUNT: "PLAFOND_JOURNALIER",
    Reason.DAILY_COUNT: "PLAFOND_JOURNALIER",
    Reason.MONTHLY_AMOUNT: "PLAFOND_MENSUEL",
    Reason.MONTHLY_COUNT: "PLAFOND_MENSUEL",
    Reason.FLOAT_INSUFFICIENT: "SOLDE_PARTENAIRE_INSUFFISANT",
    Reason.ABOVE_MAX: "MONTANT_INVALIDE",
    Reason.BELOW_MIN: "MONTANT_INVALIDE",
    Reason.FUNDS_INSUFFICIENT: "SOLDE_CLIENT_INSUFFISANT",
}
TYPES: dict[Kind, str] = {
    Kind.PAYOUT: "CREDIT",
    Kind.COLLECTION: "DEBIT",
    Kind.REVERSAL: "REVERSAL",
}
FORBIDDEN = {"code": Code.FORBIDDEN, "message": "Please sign in before continue"}


def statut_of(tx: Transaction) -> Statut:
    """SUCCES, ECHEC or EN_COURS."""
    return {
        TxStatus.SUCCEEDED: Statut.SUCCES,
        TxStatus.FAILED: Statut.ECHEC,
        TxStatus.PENDING: Statut.EN_COURS,
    }[tx.status]


def transaction_fields(tx: Transaction) -> dict[str, Any]:
    """The transaction as T-Money shows it, in status answers and callbacks alike."""
    statut = statut_of(tx)
    code, message, description = {
        Statut.SUCCES: (
            Code.SUCCESS,
            "Transaction effectuée avec succès",
            tx.payload.get("description", ""),
        ),
        Statut.EN_COURS: (
            Code.IN_PROGRESS,
            "Transaction en cours de traitement",
            tx.payload.get("description", ""),
        ),
        Statut.ECHEC: (
            Code.ERROR,
            "Echec de la transaction",
            DESCRIPTIONS[tx.reason] if tx.reason else "ERREUR",
        ),
    }[statut]
    fields: dict[str, Any] = {
        "code": str(code),
        "message": message,
        "description": description,
        "refTmoney": tx.operator_reference,
        "dateHeureTmoney": (tx.completed_at or tx.at).strftime(DATE_FORMAT),
        "idRequete": tx.reference,
        "statutRequete": str(statut),
        "typeRequete": TYPES[tx.kind],
        "dateHeureRequete": tx.payload.get("dateHeureRequete", ""),
        "refCommande": tx.payload.get("refCommande", ""),
        "montant": tx.amount,
        "numeroClient": tx.msisdn,
        "idPartenaire": MERCHANT_NAME,
        "nomPartenaire": MERCHANT_NAME,
    }
    if tx.kind == Kind.PAYOUT:
        fields["soldePartenaire"] = tx.float_after
    return fields


def _authorised(ctx: Context, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    expires = ctx.sim.tokens.get(token.strip())
    return expires is not None and ctx.sim.clock.now() < expires


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"code": Code.BAD_REQUEST, "message": message}, status_code=400)


async def login(request: Request) -> Response:
    """`{"nomUtilisateur", "motDePasse"}` → a bearer token valid `token_ttl_seconds`."""
    ctx = context(request)
    try:
        body = await read_json(request)
    except BodyTooLarge:
        return JSONResponse({"code": "413", "message": "Request too large"}, status_code=413)
    except ValueError:
        return _bad("Corps JSON invalide")
    if not isinstance(body, dict):
        return _bad("Corps JSON invalide")
    cfg = ctx.config
    if body.get("nomUtilisateur") != cfg.username or body.get("motDePasse") != cfg.password:
        return JSONResponse(
            {"code": Code.UNAUTHORISED, "message": "Identifiants incorrects"}, status_code=401
        )
    token = ctx.sim.token()
    ctx.sim.tokens[token] = ctx.sim.clock.now() + timedelta(seconds=cfg.token_ttl_seconds)
    return JSONResponse(
        {"code": Code.ACCEPTED, "message": "Connexion réussie", "data": {"token": token}}
    )


async def tpcredit(request: Request) -> Response:
    """B2C credit: `2000` when accepted; the outcome comes by callback and status query."""
    return await _submit(request, Kind.PAYOUT)


async def debit(request: Request) -> Response:
    """USSD push collection: same body as a credit, settled when the subscriber approves."""
    return await _submit(request, Kind.COLLECTION)


async def _submit(request: Request, kind: Kind) -> Response:
    ctx = context(request)
    if not _authorised(ctx, request):
        return JSONResponse(FORBIDDEN, status_code=403)
    try:
        body = await read_json(request)
    except BodyTooLarge:
        return JSONResponse({"code": "413", "message": "Request too large"}, status_code=413)
    except ValueError:
        return _bad("Corps JSON invalide")
    if not isinstance(body, dict):
        return _bad("Corps JSON invalide")
    missing = [k for k in ("idRequete", "numeroClient", "montant") if body.get(k) in (None, "")]
    if missing:
        return _bad(f"Champs obligatoires manquants: {', '.join(missing)}")
    amount = body["montant"]
    if isinstance(amount, str) and amount.strip().isdigit():
        amount = int(amount.strip())
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _bad("montant doit être un entier positif")
    reference = str(body["idRequete"])
    decision = ctx.sim.faults.decide(f"tmoney|{kind}|{reference}")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.error_before:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    sim = ctx.sim
    sim.tick()
    if sim.find(OP, reference=reference) is not None:
        return JSONResponse(
            {
                "code": Code.DUPLICATE,
                "message": "Requête déjà soumise",
                "data": {"idRequete": reference},
            }
        )
    payload = {
        "refCommande": str(body.get("refCommande", "")),
        "dateHeureRequete": str(body.get("dateHeureRequete", "")),
        "description": str(body.get("description", "")),
    }
    tx = sim.submit(
        OP,
        kind,
        reference,
        str(body["numeroClient"]),
        amount,
        payload,
        decision,
        settle_now=kind == Kind.PAYOUT,
    )
    ctx.flush()
    answer = {
        "code": Code.ACCEPTED,
        "message": "Requête reçue, en cours de traitement",
        "data": {
            "idRequete": reference,
            "refTmoney": tx.operator_reference,
            "statutRequete": str(Statut.EN_COURS),
        },
    }
    if decision.timeout_after or (kind == Kind.PAYOUT and tx.msisdn[-6:] == HANGS):
        await asyncio.sleep(ctx.config.hang_seconds)
    if decision.error_after:
        return JSONResponse({"code": Code.ERROR, "message": "Erreur interne"}, status_code=500)
    return JSONResponse(answer)


async def check_transaction(request: Request) -> Response:
    """`?idRequete=…` → `{"data": [transaction]}`, empty when unknown.

    *Modelled*: `?refTmoney=…` finds a transaction by T-Money's own reference instead, such
    as a payment a subscriber made to the partner's merchant code (no `idRequete` of the
    partner's exists for it; its `idRequete` is the merchant reference the payer typed).
    """
    ctx = context(request)
    if not _authorised(ctx, request):
        return JSONResponse(FORBIDDEN, status_code=403)
    reference = request.query_params.get("idRequete", "")
    operator_ref = request.query_params.get("refTmoney", "")
    if not reference and not operator_ref:
        return _bad("idRequete ou refTmoney manquant")
    decision = ctx.sim.faults.decide(f"tmoney|check|{reference or operator_ref}")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.error_before:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    ctx.flush()
    tx = ctx.sim.find(OP, reference=reference, operator_ref=operator_ref)
    data = [transaction_fields(tx)] if tx is not None else []
    return JSONResponse({"code": Code.ACCEPTED, "message": "OK", "data": data})


async def solde(request: Request) -> Response:
    """The partner (merchant) balance at T-Money."""
    ctx = context(request)
    if not _authorised(ctx, request):
        return JSONResponse(FORBIDDEN, status_code=403)
    return JSONResponse(
        {
            "code": Code.ACCEPTED,
            "message": "OK",
            "data": {"idPartenaire": MERCHANT_NAME, "solde": ctx.sim.floats[OP]},
        }
    )


async def client(request: Request) -> Response:
    """KYC look-up: `{"statut": "ACTIF"|"INACTIF", "nom", "prenom"}`; 404 when unknown."""
    ctx = context(request)
    if not _authorised(ctx, request):
        return JSONResponse(FORBIDDEN, status_code=403)
    numero = request.path_params["numero"]
    try:
        msisdn = normalise(numero)
    except InvalidMsisdn:
        return _bad("numero invalide")
    wallet = ctx.sim.holder(OP, msisdn)
    if wallet is None:
        return JSONResponse({"code": Code.NOT_FOUND, "message": "CLIENT_INCONNU"}, status_code=404)
    return JSONResponse(
        {
            "code": Code.ACCEPTED,
            "numero": msisdn,
            "statut": "ACTIF" if str(wallet.status) == "active" else "INACTIF",
            "nom": wallet.last_name,
            "prenom": wallet.first_name,
        }
    )


routes = [
    Route("/tmoney/login", login, methods=["POST"]),
    Route("/tmoney/m-banking/v1/api/tpcredit", tpcredit, methods=["POST"]),
    Route(
        "/tmoney/m-banking/v1/api/tpcredit/check-transaction-id", check_transaction, methods=["GET"]
    ),
    Route("/tmoney/push-api/v1/debit", debit, methods=["POST"]),
    Route("/tmoney/m-banking/v1/api/solde", solde, methods=["GET"]),
    Route("/tmoney/m-banking/v1/api/client/{numero}", client, methods=["GET"]),
]
