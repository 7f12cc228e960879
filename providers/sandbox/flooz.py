"""The Flooz (Moov Africa) TLC merchant API simulator: SOAP at
`/flooz/com.tlc.merchant.api/UssdPush`, AES-token auth, TLC status codes and callbacks.

What the public client libraries of the TLC API show, and this simulator follows in both
dialects: the token derivation, the request elements and their order, the endpoint, the
TLC status table; clients that declare `encoding="utf-16"` on UTF-8 bytes and send
`Content-Type: application/soap+xml` or `application/xml` as well as `text/xml`.

Where the clients show something other than Sika's first model, `Config.dialect` decides:

- `clients` (the default): `getTransactionStatus` answers inside `<response>`,
  `PushWithPending` inside `<result>`, every other operation inside `<return>`; status and
  push answers carry `description` where the others carry `message`; `<transid>` of a
  status query holds the merchant's own reference (the `referenceid` of a transfer, the
  `externaldata1` of a push), Flooz's own id being tried second; `getBalance` comes with
  `<request><msisdn>` (the merchant wallet's number) and its answer carries a `message`.
- `model`: `<return>` and `message` everywhere, `<transid>` is Flooz's id only.

Modelled, with no client code to copy: the status query by `<referenceid>`, replays and
refusals of a reused `referenceid` (status 4), the answers to a wrong content type or a
wrong envelope namespace (a SOAP Fault, as for any request that cannot be read), and the
SOAP 1.2 answer to a SOAP 1.2 request (the same content in a SOAP 1.2 envelope).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
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

from providers.dialects import Dialect
from providers.msisdn import InvalidMsisdn, Operator, normalise
from providers.sandbox.faults import Decision
from providers.sandbox.runtime import BodyTooLarge, Context, context, read_body
from providers.sandbox.state import HANGS, LOOKUP_HANGS, Kind, Reason, Transaction, TxStatus
from providers.xmltext import decode

NS = "http://api.merchant.tlc.com/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
OP = Operator.FLOOZ
# Media types real clients post with; parameters (charset, SOAP 1.2 `action`) are ignored.
XML_MEDIA_TYPES = frozenset({"text/xml", "application/soap+xml", "application/xml"})


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


class Soap(StrEnum):
    """The SOAP version of a request, named by its envelope namespace; answers follow it."""

    V11 = SOAP_NS
    V12 = SOAP12_NS


@dataclass(frozen=True)
class Wire:
    """How one answer is written: the request's SOAP version and the sandbox's dialect."""

    soap: Soap = Soap.V11
    dialect: Dialect = Dialect.CLIENTS


# In the `clients` dialect, the element around an answer's fields, by operation; every
# operation not named here answers in `<return>`.
CLIENT_WRAPPERS: dict[str, str] = {"getTransactionStatus": "response", "PushWithPending": "result"}
# ... and the operations whose answers say `description` where the others say `message`.
DESCRIBED = frozenset(CLIENT_WRAPPERS)


def envelope(inner: str, soap: Soap = Soap.V11) -> str:
    """A SOAP envelope of `soap`'s version around a body's content."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{soap}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    )


def _media_type(soap: Soap) -> str:
    return "application/soap+xml; charset=utf-8" if soap == Soap.V12 else "text/xml; charset=utf-8"


def shaped(
    operation: str, fields: Mapping[str, Any], dialect: Dialect
) -> tuple[str, dict[str, Any]]:
    """(wrapper element, fields) of an answer as `dialect` writes it."""
    if dialect == Dialect.MODEL:
        return "return", dict(fields)
    if operation in DESCRIBED:
        return CLIENT_WRAPPERS[operation], {
            ("description" if k == "message" else k): v for k, v in fields.items()
        }
    return "return", dict(fields)


def soap_response(operation: str, fields: Mapping[str, Any], wire: Wire = Wire()) -> Response:
    """`<ns2:{operation}Response><{wrapper}>…fields…</{wrapper}></ns2:…>` in an envelope."""
    wrapper, fields = shaped(operation, fields, wire.dialect)
    parts = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    inner = (
        f'<ns2:{operation}Response xmlns:ns2="{NS}"><{wrapper}>{parts}</{wrapper}>'
        f"</ns2:{operation}Response>"
    )
    return Response(envelope(inner, wire.soap), media_type=_media_type(wire.soap))


def soap_fault(code: str, message: str, status: int, soap: Soap = Soap.V11) -> Response:
    """A soap:Fault: `faultcode`/`faultstring` in SOAP 1.1, `Code`/`Reason` in SOAP 1.2.

    `code` is given in SOAP 1.1 terms (`soap:Client`, `soap:Server`); SOAP 1.2 renamed
    those two `Sender` and `Receiver`.
    """
    if soap == Soap.V12:
        value = {"soap:Client": "soap:Sender", "soap:Server": "soap:Receiver"}.get(code, code)
        inner = (
            f"<soap:Fault><soap:Code><soap:Value>{value}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{escape(message)}</soap:Text>'
            "</soap:Reason></soap:Fault>"
        )
    else:
        inner = (
            f"<soap:Fault><faultcode>{code}</faultcode>"
            f"<faultstring>{escape(message)}</faultstring></soap:Fault>"
        )
    return Response(envelope(inner, soap), status_code=status, media_type=_media_type(soap))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _fields(element: Element) -> dict[str, str]:
    return {_local(child.tag): (child.text or "").strip() for child in element}


class WrongEnvelope(ValueError):
    """An `Envelope` in a namespace that is neither SOAP 1.1's nor SOAP 1.2's."""


def _parse(body: bytes, charset: str | None = None) -> tuple[Soap, str, str, dict[str, str]]:
    """(SOAP version, operation, token, request fields) from an envelope.

    Raises `WrongEnvelope` for an envelope of no SOAP version, ValueError otherwise.
    """
    root = fromstring(decode(body, charset), forbid_dtd=True)
    if _local(root.tag) != "Envelope":
        raise ValueError("not a SOAP envelope")
    try:
        soap = Soap(_namespace(root.tag))
    except ValueError as exc:
        raise WrongEnvelope(
            f"envelope namespace must be {Soap.V11} or {Soap.V12}, "
            f"not {_namespace(root.tag) or 'none'}"
        ) from exc
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
    return soap, name, token, fields


def _content_type(request: Request) -> tuple[str | None, str | None]:
    """(media type, charset) of the request; (None, None) when it names none."""
    header = request.headers.get("content-type")
    if not header:
        return None, None
    media, *params = (part.strip() for part in header.split(";"))
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.lower(), charset


def _amount(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 13 else None


# --- operations ----------------------------------------------------------------------------


async def ussd_push(request: Request) -> Response:
    """The one SOAP endpoint: dispatch on the operation element."""
    ctx = context(request)
    media, charset = _content_type(request)
    # No Content-Type at all is let through: the body still has to be a SOAP envelope.
    if media is not None and media not in XML_MEDIA_TYPES:
        return soap_fault("soap:Client", f"unsupported content type {media}", 415)
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return soap_fault("soap:Client", "request entity too large", 413)
    try:
        soap, operation, token, fields = _parse(body, charset)
    except WrongEnvelope as exc:
        return soap_fault("soap:Client", f"VersionMismatch: {exc}", 400)
    except (DefusedXmlException, ValueError, SyntaxError) as exc:
        return soap_fault("soap:Client", f"malformed request: {type(exc).__name__}", 400)
    wire = Wire(soap, ctx.config.dialect)
    handler = OPERATIONS.get(operation)
    if handler is None:
        return soap_fault("soap:Client", f"unknown operation {operation}", 400, soap)
    key = fields.get("referenceid") or fields.get("externaldata1") or fields.get("transid") or ""
    decision = ctx.sim.faults.decide(f"flooz|{operation}|{key or '-'}")
    if decision.latency:
        await asyncio.sleep(decision.latency)
    if decision.error_before:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")
    cfg = ctx.config
    if not token_ok(token, cfg.username, cfg.password, cfg.flooz_key):
        code = Code.INVALID_CREDENTIALS
        return soap_response(operation, {"status": code, "message": MESSAGES[code]}, wire)
    ctx.sim.tick()
    answer, hang = handler(ctx, fields, decision)
    ctx.flush()
    if hang or decision.timeout_after:
        await asyncio.sleep(ctx.config.hang_seconds)
    if decision.error_after:
        return soap_fault("soap:Server", "Internal error", 500, soap)
    return soap_response(operation, answer, wire)


Answer = tuple[dict[str, Any], bool]


def _status(code: Code, **extra: Any) -> dict[str, Any]:
    return {"status": code, "message": MESSAGES[code], **extra}


def transfer_flooz(ctx: Context, f: dict[str, str], decision: Decision) -> Answer:
    """B2C payout from the merchant wallet."""
    amount = _amount(f.get("amount", ""))
    reference = f.get("referenceid", "")
    if not f.get("destination") or amount is None or not reference:
        return _status(Code.PARAMETERS_INCOMPLETE, **_our_id(ctx, reference)), False
    try:
        destination = normalise(f["destination"])
    except InvalidMsisdn:
        return _status(Code.NUMBER_NOT_VALID, **_our_id(ctx, reference)), False
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
            return _status(Code.NO_PERMISSION, **_our_id(ctx, reference)), False
        return _transfer_answer(earlier, ctx.config.dialect), False
    before = sim.floats[OP]
    tx = sim.submit(OP, Kind.PAYOUT, reference, destination, amount, payload, decision)
    tx.payload["senderbalancebefore"] = before
    return _transfer_answer(tx, ctx.config.dialect), destination[-6:] == HANGS


def _our_id(ctx: Context, reference: str) -> dict[str, str]:
    """The merchant's reference in a refused transfer's answer, where the dialect puts it."""
    return {"referenceid" if ctx.config.dialect == Dialect.MODEL else "transactionid": reference}


def _transfer_answer(tx: Transaction, dialect: Dialect) -> dict[str, Any]:
    """In `clients`, `transactionid` is the merchant's reference and `referenceid` Flooz's
    (as four client codebases read a transferFlooz answer); `model` has them the other way."""
    code = code_of(tx)
    before = tx.payload.get("senderbalancebefore", 0)
    after = before - tx.amount - tx.fee if tx.status == TxStatus.SUCCEEDED else before
    ours, theirs = tx.reference, tx.operator_reference
    if dialect == Dialect.MODEL:
        ours, theirs = theirs, ours
    return {
        "transactionid": ours,
        "status": code,
        "message": MESSAGES[code],
        "referenceid": theirs,
        "senderbalancebefore": before,
        "senderbalanceafter": after,
    }


def get_transaction_status(ctx: Context, f: dict[str, str], _d: Decision) -> Answer:
    """Status by `transid` or `referenceid`.

    `clients`: `transid` is the merchant's own reference first, as client code sends it,
    then Flooz's id. `model`: `transid` is Flooz's id only. In both, `referenceid` is the
    merchant's reference. A payment a subscriber made to a merchant reference is found by
    Flooz's id only: many payments share that reference, and its `referenceid` in the
    answer is what was typed.
    """
    transid, referenceid = f.get("transid", ""), f.get("referenceid", "")
    if not transid and not referenceid:
        return _status(Code.PARAMETERS_INCOMPLETE), False
    sim = ctx.sim
    if ctx.config.dialect == Dialect.CLIENTS and transid:
        tx = (
            sim.find(OP, reference=transid)
            or sim.find(OP, operator_ref=transid)
            or (sim.find(OP, reference=referenceid) if referenceid else None)
        )
    else:
        tx = sim.find(OP, operator_ref=transid, reference=referenceid)
    sim.queried(tx, f"flooz:{transid or referenceid}")
    if tx is None:
        return _status(Code.NOT_EXIST, transid=transid, referenceid=referenceid), False
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


def get_balance(ctx: Context, f: dict[str, str], _d: Decision) -> Answer:
    """The merchant float at Flooz.

    Client code always sends `<request><msisdn>` with the merchant wallet's number; Sika's
    first model sent no field. Both are answered with the one merchant float the sandbox
    keeps, whatever valid number was sent; a number that is not one is status 3.
    """
    if f.get("msisdn"):
        try:
            normalise(f["msisdn"])
        except InvalidMsisdn:
            return _status(Code.NUMBER_NOT_VALID), False
    answer: dict[str, Any] = {"status": Code.COMPLETED, "balance": ctx.sim.floats[OP]}
    if ctx.config.dialect == Dialect.CLIENTS:
        # the balance answers client code is tested against carry a `message` as well
        answer["message"] = MESSAGES[Code.COMPLETED]
    return answer, False


def get_mobile_account_status(ctx: Context, f: dict[str, str], _d: Decision) -> Answer:
    """KYC look-up: 0 active, 7 locked, 9 inactive, 555 not registered, 3 not valid.

    *Modelled*: 18 (the TLC code of a transfer to a wallet at its balance cap) for an
    active wallet that holds the cap, with the holder's names and `allowedtransfer` false;
    the answer to a number ending 000012 is held `hang_seconds`, past the client's timeout.
    """
    if not f.get("msisdn"):
        return _status(Code.PARAMETERS_INCOMPLETE), False
    try:
        msisdn = normalise(f["msisdn"])
    except InvalidMsisdn:
        return _status(Code.NUMBER_NOT_VALID, msisdn=f["msisdn"]), False
    hang = msisdn[-6:] == LOOKUP_HANGS
    wallet = ctx.sim.holder(OP, msisdn)
    if wallet is None:
        return _status(Code.NOT_REGISTERED, msisdn=msisdn), hang
    code = {"locked": Code.LOCKED, "inactive": Code.INACTIVE}.get(
        str(wallet.status), Code.COMPLETED
    )
    if code == Code.COMPLETED and ctx.sim.at_cap(wallet):
        code = Code.MAX_BALANCE
    active = code in (Code.COMPLETED, Code.MAX_BALANCE)
    return {
        "status": code,
        "message": MESSAGES[code],
        "subscriberstatus": "ACTIVE" if active else "INACTIVE",
        "accounttype": "SUBSCRIBER",
        "allowedtransfer": "true" if code == Code.COMPLETED else "false",
        "firstname": wallet.first_name,
        "lastname": wallet.last_name,
        "secondname": "",
        "msisdn": msisdn,
    }, hang


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
            return _push_answer(ctx, earlier), False
    tx = sim.submit(
        OP, Kind.COLLECTION, reference, msisdn, amount, payload, decision, settle_now=False
    )
    return _push_answer(ctx, tx), False


def _push_answer(ctx: Context, tx: Transaction) -> dict[str, Any]:
    """In `clients`, a pending push is answered with its status alone, and a settled one
    names the merchant's reference in `transid` and Flooz's in `referenceid`, as client
    code reads them; `model` gives Flooz's id in `transid`."""
    code = code_of(tx)
    if ctx.config.dialect == Dialect.MODEL:
        return _status(code, transid=tx.operator_reference)
    if code == Code.PENDING:
        return _status(code)
    return _status(code, transid=tx.reference, referenceid=tx.operator_reference)


OPERATIONS = {
    "transferFlooz": transfer_flooz,
    "getTransactionStatus": get_transaction_status,
    "getBalance": get_balance,
    "getMobileAccountStatus": get_mobile_account_status,
    "PushWithPending": push_with_pending,
}

routes = [Route("/flooz/com.tlc.merchant.api/UssdPush", ussd_push, methods=["POST"])]
