"""The Flooz (Moov Africa) TLC merchant API simulator: SOAP 1.1 at
`/flooz/com.tlc.merchant.api/UssdPush`, AES-token auth, TLC status codes and callbacks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from providers.msisdn import InvalidMsisdn, Operator, normalise
from providers.sandbox.faults import Decision
from providers.sandbox.runtime import BodyTooLarge, Context, context, read_body
from providers.sandbox.state import HANGS, Kind, Reason, Transaction, TxStatus

NS = "http://api.merchant.tlc.com/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OP = Operator.FLOOZ


class Code(StrEnum):
    """TLC status codes the simulator answers."""

    COMPLETED = "0"
    NO_PERMISSION = "4"
    NUMBER_NOT_VALID = "3"
    LOCKED = "7"
    MERCHANT_BALANCE = "8"
    INACTIVE = "9"
    FUNDS_INSUFFICIENT = "10"
    ABOVE_MAX = "11"
    BELOW_MIN = "12"
    DAILY_AMOUNT = "13"
    MONTHLY_AMOUNT = "14"
    DAILY_COUNT = "15"
    MONTHLY_COUNT = "16"
    MAX_BALANCE = "18"
    PARAMETERS_INCOMPLETE = "91"
    NOT_EXIST = "94"
    INVALID_CREDENTIALS = "98"
    PENDING = "100"
    NOT_REGISTERED = "555"


MESSAGES: dict[Code, str] = {
    Code.COMPLETED: "Transaction completed successfully",
    Code.NO_PERMISSION: "referenceid already used",
    Code.NUMBER_NOT_VALID: "Number not valid",
    Code.LOCKED: "Destination account is locked",
    Code.MERCHANT_BALANCE: "Merchant balance insufficient",
    Code.INACTIVE: "Destination account is inactive",
    Code.FUNDS_INSUFFICIENT: "Funds insufficient",
    Code.ABOVE_MAX: "Amount above maximum",
    Code.BELOW_MIN: "Amount below minimum",
    Code.DAILY_AMOUNT: "Destination daily amount limit reached",
    Code.MONTHLY_AMOUNT: "Destination monthly amount limit reached",
    Code.DAILY_COUNT: "Destination daily count limit reached",
    Code.MONTHLY_COUNT: "Destination monthly count limit reached",
    Code.MAX_BALANCE: "Destination reached maximum balance",
    Code.PARAMETERS_INCOMPLETE: "Parameters incomplete",
    Code.NOT_EXIST: "Transaction does not exist",
    Code.INVALID_CREDENTIALS: "Invalid credentials",
    Code.PENDING: "Transaction pending",
    Code.NOT_REGISTERED: "Destination not registered on Moov Money",
}

REASON_CODES: dict[Reason, Code] = {
    Reason.NOT_REGISTERED: Code.NOT_REGISTERED,
    Reason.LOCKED: Code.LOCKED,
    Reason.INACTIVE: Code.INACTIVE,
    Reason.BALANCE_CAP: Code.MAX_BALANCE,
    Reason.ABOVE_MAX: Code.ABOVE_MAX,
    Reason.BELOW_MIN: Code.BELOW_MIN,
    Reason.DAILY_AMOUNT: Code.DAILY_AMOUNT,
    Reason.MONTHLY_AMOUNT: Code.MONTHLY_AMOUNT,
    Reason.DAILY_COUNT: Code.DAILY_COUNT,
    Reason.MONTHLY_COUNT: Code.MONTHLY_COUNT,
    Reason.FLOAT_INSUFFICIENT: Code.MERCHANT_BALANCE,
    Reason.FUNDS_INSUFFICIENT: Code.FUNDS_INSUFFICIENT,
}

DATE_FORMAT = "%d/%m/%Y %H:%M:%S"


def code_of(tx: Transaction) -> Code:
    """The TLC status of a transaction as it stands."""
    if tx.status == TxStatus.PENDING:
        return Code.PENDING
    if tx.status == TxStatus.SUCCEEDED:
        return Code.COMPLETED
    return REASON_CODES[tx.reason] if tx.reason else Code.PARAMETERS_INCOMPLETE


def callback_body(tx: Transaction) -> dict[str, Any]:
    """The merchant callback: amount, refid, mrchrefid, msisdn, status, message."""
    code = code_of(tx)
    return {
        "amount": tx.amount,
        "refid": tx.operator_reference,
        "mrchrefid": tx.reference,
        "msisdn": tx.msisdn,
        "status": str(code),
        "message": MESSAGES[code],
    }


# --- the token -----------------------------------------------------------------------------


def make_token(username: str, password: str, key: str) -> str:
    """base64(AES-256-CBC("0:user:password"), PKCS7, zero IV): what clients send."""
    padder = padding.PKCS7(128).padder()
    plain = padder.update(f"0:{username}:{password}".encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key.encode()), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def token_ok(token: str, username: str, password: str, key: str) -> bool:
    """True when `token` decrypts to `0:<username>:<password>` under `key`."""
    try:
        raw = base64.b64decode(token.strip(), validate=True)
        decryptor = Cipher(algorithms.AES(key.encode()), modes.CBC(bytes(16))).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = (unpadder.update(padded) + unpadder.finalize()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return plain == f"0:{username}:{password}"


# --- SOAP ----------------------------------------------------------------------------------


def envelope(inner: str) -> str:
    """A SOAP 1.1 envelope around a body's content."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    )


def soap_response(operation: str, fields: Mapping[str, Any]) -> Response:
    """`<ns2:{operation}Response><return>…fields…</return></ns2:…>` in an envelope."""
    parts = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    inner = (
        f'<ns2:{operation}Response xmlns:ns2="{NS}"><return>{parts}</return>'
        f"</ns2:{operation}Response>"
    )
    return Response(envelope(inner), media_type="text/xml; charset=utf-8")


def soap_fault(code: str, message: str, status: int) -> Response:
    """A soap:Fault with faultcode / faultstring."""
    inner = (
        f"<soap:Fault><faultcode>{code}</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soap:Fault>"
    )
    return Response(envelope(inner), status_code=status, media_type="text/xml; charset=utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(element: Element) -> dict[str, str]:
    return {_local(child.tag): (child.text or "").strip() for child in element}


def _parse(body: bytes) -> tuple[str, str, dict[str, str]]:
    """(operation, token, request fields) from an envelope; raises ValueError."""
    root = fromstring(body, forbid_dtd=True)
    if _local(root.tag) != "Envelope":
        raise ValueError("not a SOAP envelope")
    soap_body = next((c for c in root if _local(c.tag) == "Body"), None)
    if soap_body is None or len(soap_body) == 0:
        raise ValueError("SOAP Body missing or empty")
    operation = soap_body[0]
    if not operation.tag.startswith("{" + NS + "}"):
        raise ValueError(f"operation must be in namespace {NS}")
    name = _local(operation.tag)
    token = ""
    fields: dict[str, str] = {}
    for child in operation:
        local = _local(child.tag)
        if local == "token":
            token = (child.text or "").strip()
        elif local == "request":
            fields.update(_fields(child))
        else:
            fields[local] = (child.text or "").strip()
    return name, token, fields


def _amount(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 13 else None


# --- operations ----------------------------------------------------------------------------


async def ussd_push(request: Request) -> Response:
    """The one SOAP endpoint: dispatch on the operation element."""
    ctx = context(request)
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return soap_fault("soap:Client", "request entity too large", 413)
    try:
        operation, token, fields = _parse(body)
    except (DefusedXmlException, ValueError, SyntaxError) as exc:
        return soap_fault("soap:Client", f"malformed request: {type(exc).__name__}", 400)
    handler = OPERATIONS.get(operation)
    if handler is None:
        return soap_fault("soap:Client", f"unknown operation {operation}", 400)
    key = fields.get("referenceid") or fields.get("externaldata1") or fields.get("transid") or ""
    decision = ctx.sim.faults.decide(f"flooz|{operation}|{key or '-'}")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.error_before:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    cfg = ctx.config
    if not token_ok(token, cfg.username, cfg.password, cfg.flooz_key):
        code = Code.INVALID_CREDENTIALS
        return soap_response(operation, {"status": code, "message": MESSAGES[code]})
    ctx.sim.tick()
    answer, hang = handler(ctx, fields, decision)
    ctx.flush()
    if hang or decision.timeout_after:
        await asyncio.sleep(ctx.config.hang_seconds)
    if decision.error_after:
        return soap_fault("soap:Server", "Internal error", 500)
    return soap_response(operation, answer)


Answer = tuple[dict[str, Any], bool]


def _status(code: Code, **extra: Any) -> dict[str, Any]:
    return {"status": code, "message": MESSAGES[code], **extra}


def transfer_flooz(ctx: Context, f: dict[str, str], decision: Decision) -> Answer:
    """B2C payout from the merchant wallet."""
    amount = _amount(f.get("amount", ""))
    reference = f.get("referenceid", "")
    if not f.get("destination") or amount is None or not reference:
        return _status(Code.PARAMETERS_INCOMPLETE, referenceid=reference), False
    try:
        destination = normalise(f["destination"])
    except InvalidMsisdn:
        return _status(Code.NUMBER_NOT_VALID, referenceid=reference), False
    payload = {
        "destination": destination,
        "amount": amount,
        "walletid": f.get("walletid", ""),
        "extendeddata": f.get("extendeddata", ""),
    }
    sim = ctx.sim
    earlier = sim.find(OP, reference=reference)
    if earlier is not None:
        if earlier.kind != Kind.PAYOUT or {k: earlier.payload.get(k) for k in payload} != payload:
            return _status(Code.NO_PERMISSION, referenceid=reference), False
        return _transfer_answer(earlier), False
    before = sim.floats[OP]
    tx = sim.submit(OP, Kind.PAYOUT, reference, destination, amount, payload, decision)
    tx.payload["senderbalancebefore"] = before
    return _transfer_answer(tx), destination[-6:] == HANGS


def _transfer_answer(tx: Transaction) -> dict[str, Any]:
    code = code_of(tx)
    before = tx.payload.get("senderbalancebefore", 0)
    after = before - tx.amount - tx.fee if tx.status == TxStatus.SUCCEEDED else before
    return {
        "transactionid": tx.operator_reference,
        "status": code,
        "message": MESSAGES[code],
        "referenceid": tx.reference,
        "senderbalancebefore": before,
        "senderbalanceafter": after,
    }


def get_transaction_status(ctx: Context, f: dict[str, str], _d: Decision) -> Answer:
    """Status by `transid` (Flooz's reference) or `referenceid` (Sika's).

    A payment a subscriber made to a merchant reference is found by `transid` only: many
    payments share that reference, and its `referenceid` in the answer is what was typed.
    """
    if not f.get("transid") and not f.get("referenceid"):
        return _status(Code.PARAMETERS_INCOMPLETE), False
    tx = ctx.sim.find(OP, operator_ref=f.get("transid", ""), reference=f.get("referenceid", ""))
    if tx is None:
        return _status(
            Code.NOT_EXIST, transid=f.get("transid", ""), referenceid=f.get("referenceid", "")
        ), False
    code = code_of(tx)
    return {
        "status": code,
        "message": MESSAGES[code],
        "transid": tx.operator_reference,
        "referenceid": tx.reference,
        "amount": tx.amount,
        "destination": tx.msisdn,
        "date": tx.at.strftime(DATE_FORMAT),
    }, False


def get_balance(ctx: Context, _f: dict[str, str], _d: Decision) -> Answer:
    """The merchant float at Flooz."""
    return {"status": Code.COMPLETED, "balance": ctx.sim.floats[OP]}, False


def get_mobile_account_status(ctx: Context, f: dict[str, str], _d: Decision) -> Answer:
    """KYC look-up: 0 active, 7 locked, 9 inactive, 555 not registered, 3 not valid."""
    if not f.get("msisdn"):
        return _status(Code.PARAMETERS_INCOMPLETE), False
    try:
        msisdn = normalise(f["msisdn"])
    except InvalidMsisdn:
        return _status(Code.NUMBER_NOT_VALID, msisdn=f["msisdn"]), False
    wallet = ctx.sim.holder(OP, msisdn)
    if wallet is None:
        return _status(Code.NOT_REGISTERED, msisdn=msisdn), False
    code = {"locked": Code.LOCKED, "inactive": Code.INACTIVE}.get(
        str(wallet.status), Code.COMPLETED
    )
    active = code == Code.COMPLETED
    return {
        "status": code,
        "subscriberstatus": "ACTIVE" if active else "INACTIVE",
        "accounttype": "SUBSCRIBER",
        "allowedtransfer": "true" if active else "false",
        "firstname": wallet.first_name,
        "lastname": wallet.last_name,
        "secondname": "",
        "msisdn": msisdn,
    }, False


def push_with_pending(ctx: Context, f: dict[str, str], decision: Decision) -> Answer:
    """USSD push collection: answered 100 at once, settled when the subscriber approves."""
    amount = _amount(f.get("amount", ""))
    if not f.get("msisdn") or amount is None:
        return _status(Code.PARAMETERS_INCOMPLETE), False
    try:
        msisdn = normalise(f["msisdn"])
    except InvalidMsisdn:
        return _status(Code.NUMBER_NOT_VALID), False
    reference = f.get("externaldata1", "")
    payload = {
        "msisdn": msisdn,
        "amount": amount,
        "externaldata1": reference,
        "externaldata2": f.get("externaldata2", ""),
        "message": f.get("message", ""),
    }
    sim = ctx.sim
    if reference:
        earlier = sim.find(OP, reference=reference)
        if earlier is not None:
            if earlier.kind != Kind.COLLECTION or earlier.payload != payload:
                return _status(Code.NO_PERMISSION), False
            return _status(code_of(earlier), transid=earlier.operator_reference), False
    tx = sim.submit(
        OP, Kind.COLLECTION, reference, msisdn, amount, payload, decision, settle_now=False
    )
    return _status(Code.PENDING, transid=tx.operator_reference), False


OPERATIONS = {
    "transferFlooz": transfer_flooz,
    "getTransactionStatus": get_transaction_status,
    "getBalance": get_balance,
    "getMobileAccountStatus": get_mobile_account_status,
    "PushWithPending": push_with_pending,
}

routes = [Route("/flooz/com.tlc.merchant.api/UssdPush", ussd_push, methods=["POST"])]
