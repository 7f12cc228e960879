"""The T-Money (Togocom) m-banking gateway simulator: JSON under `/tmoney/…`, bearer tokens
that expire on the sandbox clock, credits accepted at once and settled by callback.

What the public client libraries of the gateway show, and this simulator follows in both
dialects: the sign-in body, the credit and push-debit bodies, the paths, the transaction
and callback fields, `statutRequete` and the `2000`/`2002`/`4001` codes; amounts sent as
whole-valued JSON numbers (`1000.0`), which are taken as integers.

Where the clients show something other than Sika's first model, `Config.dialect` decides:

- `clients` (the default): the sign-in answer carries its code under `statut`
  (`{"statut": {"code": "2000", …}, "data": {"token": …}}`; `4001`, in an HTTP 200
  answer, when refused); a missing, bad or expired token is refused by the WSO2 API
  Manager in front of the gateway, HTTP 401 with a `fault` body; push debits are read back
  at `GET /push-api/v1/transactionid`.
- `model`: the sign-in code at top level (a refusal is HTTP 401, code `401`); a refused
  token is HTTP 403 `{"code": "403", …}`; no push-debit status route (push debits are read
  back with check-transaction-id, as every transaction is in both dialects).

Modelled, with no client code to copy: the failure reasons in `description`, `/solde`,
`/client/{numero}`, the `refTmoney` look-up of check-transaction-id, the content of the
`fault` body (the clients only test that there is one and read its `message`; codes and
texts are WSO2's own: `900901` Invalid Credentials, `900902` Missing Credentials), and
the shape of error answers the clients never read (`{"code", "message"}`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from enum import StrEnum
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.dialects import Dialect
from providers.msisdn import InvalidMsisdn, Operator, normalise
from providers.sandbox.runtime import BodyTooLarge, Context, context, read_json
from providers.sandbox.state import (
    HANGS,
    LOOKUP_HANGS,
    MERCHANT_NAME,
    Kind,
    Reason,
    Transaction,
    TxStatus,
)

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
    # the same code answers a refused sign-in, as the clients read it (`clients` dialect)
    SIGN_IN_REFUSED = "4001"
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
# The WSO2 API Manager's own error codes for a call it refuses before the gateway sees it.
WSO2_INVALID_CREDENTIALS = 900901
WSO2_MISSING_CREDENTIALS = 900902


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


def _token(request: Request) -> str:
    """The token of the request, or "": `Bearer <token>`, or the bare token one public
    client sends."""
    value = request.headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return value if value and " " not in value else ""


def _authorised(ctx: Context, request: Request) -> bool:
    token = _token(request)
    expires = ctx.sim.tokens.get(token) if token else None
    return expires is not None and ctx.sim.clock.now() < expires


def _refused(ctx: Context, request: Request) -> JSONResponse:
    """The answer to a call without a valid token, as the dialect has it."""
    if ctx.config.dialect == Dialect.MODEL:
        return JSONResponse(FORBIDDEN, status_code=403)
    if _token(request):
        code, message = WSO2_INVALID_CREDENTIALS, "Invalid Credentials"
        description = (
            "Invalid Credentials. Make sure you have provided the correct security credentials"
        )
    else:
        code, message = WSO2_MISSING_CREDENTIALS, "Missing Credentials"
        description = (
            "Invalid Credentials. Make sure your API invocation call has a header: "
            "'Authorization : Bearer ACCESS_TOKEN'"
        )
    return JSONResponse(
        {"fault": {"code": code, "message": message, "description": description}},
        status_code=401,
        headers={
            "WWW-Authenticate": 'OAuth2 realm="WSO2 API Manager", error="invalid_token", '
            f'error_description="{message}"'
        },
    )


def _bad(message: str, description: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": Code.BAD_REQUEST, "message": message}
    if description:
        body["description"] = description
    return JSONResponse(body, status_code=400)


def _signin_answer(
    ctx: Context, code: str, message: str, status: int = 200, **data: Any
) -> Response:
    """A sign-in answer: the code under `statut` in `clients`, at top level in `model`."""
    head = {"code": code, "message": message}
    body: dict[str, Any] = head if ctx.config.dialect == Dialect.MODEL else {"statut": head}
    if data:
        body["data"] = data
    return JSONResponse(body, status_code=status)


async def login(request: Request) -> Response:
    """`{"nomUtilisateur", "motDePasse"}` → a bearer token valid `token_ttl_seconds`."""
    ctx = context(request)
    try:
        body = await read_json(request)
    except BodyTooLarge:
        return _signin_answer(ctx, "413", "Request too large", 413)
    except ValueError:
        return _signin_answer(ctx, Code.BAD_REQUEST, "Corps JSON invalide", 400)
    if not isinstance(body, dict):
        return _signin_answer(ctx, Code.BAD_REQUEST, "Corps JSON invalide", 400)
    cfg = ctx.config
    if body.get("nomUtilisateur") != cfg.username or body.get("motDePasse") != cfg.password:
        if cfg.dialect == Dialect.MODEL:
            return _signin_answer(ctx, Code.UNAUTHORISED, "Identifiants incorrects", 401)
        # Client code reads the refusal from the body of an ordinary answer (`statut.code`
        # 4001), which an HTTP error status would have stopped before the body was read.
        return _signin_answer(ctx, Code.SIGN_IN_REFUSED, "Identifiants incorrects")
    token = ctx.sim.token()
    ctx.sim.tokens[token] = ctx.sim.clock.now() + timedelta(seconds=cfg.token_ttl_seconds)
    return _signin_answer(ctx, Code.ACCEPTED, "Connexion réussie", token=token)


def montant(value: Any) -> int | None:
    """A positive whole amount from a JSON `montant`, or None.

    An integer, a string of digits, or a number with no fraction (`1000.0`, as one client
    sends it); `1000.5` is no amount in francs.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


async def tpcredit(request: Request) -> Response:
    """B2C credit: `2000` when accepted; the outcome comes by callback and status query."""
    return await _submit(request, Kind.PAYOUT)


async def debit(request: Request) -> Response:
    """USSD push collection: same body as a credit, settled when the subscriber approves."""
    return await _submit(request, Kind.COLLECTION)


async def _submit(request: Request, kind: Kind) -> Response:
    ctx = context(request)
    if not _authorised(ctx, request):
        return _refused(ctx, request)
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
    amount = montant(body["montant"])
    if amount is None:
        return _bad("montant doit être un entier positif", "MONTANT_INVALIDE")
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
    return await _lookup(request, "check", kinds=None)


async def push_status(request: Request) -> Response:
    """`clients` only: `?idRequete=…` → a push debit, in check-transaction-id's shape.

    Client code reads the status of a collection here, not at check-transaction-id; only
    push debits are found (a credit's `idRequete` answers an empty array). The `model`
    dialect has no such route: 404, as for any path the gateway does not serve.
    """
    if context(request).config.dialect == Dialect.MODEL:
        return JSONResponse({"code": Code.NOT_FOUND, "message": "Not Found"}, status_code=404)
    return await _lookup(request, "push-check", kinds={Kind.COLLECTION})


async def _lookup(request: Request, name: str, kinds: set[Kind] | None) -> Response:
    ctx = context(request)
    if not _authorised(ctx, request):
        return _refused(ctx, request)
    reference = request.query_params.get("idRequete", "")
    operator_ref = request.query_params.get("refTmoney", "")
    if not reference and not operator_ref:
        return _bad("idRequete ou refTmoney manquant")
    decision = ctx.sim.faults.decide(f"tmoney|{name}|{reference or operator_ref}")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.error_before:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    ctx.flush()
    tx = ctx.sim.find(OP, reference=reference, operator_ref=operator_ref)
    if tx is not None and kinds is not None and tx.kind not in kinds:
        tx = None
    ctx.sim.queried(tx, f"tmoney:{reference or operator_ref}")
    data = [transaction_fields(tx)] if tx is not None else []
    return JSONResponse({"code": Code.ACCEPTED, "message": "OK", "data": data})


async def solde(request: Request) -> Response:
    """The partner (merchant) balance at T-Money."""
    ctx = context(request)
    if not _authorised(ctx, request):
        return _refused(ctx, request)
    return JSONResponse(
        {
            "code": Code.ACCEPTED,
            "message": "OK",
            "data": {"idPartenaire": MERCHANT_NAME, "solde": ctx.sim.floats[OP]},
        }
    )


async def client(request: Request) -> Response:
    """KYC look-up: `{"statut": "ACTIF"|"INACTIF"|"PLAFOND_SOLDE", "nom", "prenom"}`; 404
    when unknown.

    *Modelled*: `PLAFOND_SOLDE` (the failure description of a credit to a wallet at its
    balance cap) for an active wallet that holds the cap; the answer to a number ending
    000012 is held `hang_seconds`, past the client's timeout.
    """
    ctx = context(request)
    if not _authorised(ctx, request):
        return _refused(ctx, request)
    numero = request.path_params["numero"]
    try:
        msisdn = normalise(numero)
    except InvalidMsisdn:
        return _bad("numero invalide")
    wallet = ctx.sim.holder(OP, msisdn)
    if wallet is None:
        answer = JSONResponse(
            {"code": Code.NOT_FOUND, "message": "CLIENT_INCONNU"}, status_code=404
        )
    else:
        statut = "ACTIF" if str(wallet.status) == "active" else "INACTIF"
        if statut == "ACTIF" and ctx.sim.at_cap(wallet):
            statut = DESCRIPTIONS[Reason.BALANCE_CAP]
        answer = JSONResponse(
            {
                "code": Code.ACCEPTED,
                "numero": msisdn,
                "statut": statut,
                "nom": wallet.last_name,
                "prenom": wallet.first_name,
            }
        )
    if msisdn[-6:] == LOOKUP_HANGS:
        await asyncio.sleep(ctx.config.hang_seconds)
    return answer


routes = [
    Route("/tmoney/login", login, methods=["POST"]),
    Route("/tmoney/m-banking/v1/api/tpcredit", tpcredit, methods=["POST"]),
    Route(
        "/tmoney/m-banking/v1/api/tpcredit/check-transaction-id", check_transaction, methods=["GET"]
    ),
    Route("/tmoney/push-api/v1/debit", debit, methods=["POST"]),
    Route("/tmoney/push-api/v1/transactionid", push_status, methods=["GET"]),
    Route("/tmoney/m-banking/v1/api/solde", solde, methods=["GET"]),
    Route("/tmoney/m-banking/v1/api/client/{numero}", client, methods=["GET"]),
]
