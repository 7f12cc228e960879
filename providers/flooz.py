"""Flooz (Moov Africa Togo) through the TLC merchant API: SOAP 1.1 over HTTP.

Owns the token builder, the envelopes, the safe parsing of answers (defusedxml) and
`FLOOZ_CODES`, the one table turning every TLC status code into Sika's outcome. Answers
are read tolerantly (every wrapper and field name public client code shows); requests
are written exactly, in the dialect the settings choose (docs/operators.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from core.logging import get_logger
from core.settings import Settings
from providers import statements
from providers.base import (
    PENDING,
    SUCCEEDED,
    AccountStatus,
    BalanceResult,
    CallbackError,
    CallbackEvent,
    CollectionRequest,
    Kind,
    KycResult,
    Outcome,
    PayoutRequest,
    Reason,
    Rule,
    StatementLine,
    TransactionResult,
    failed,
    unknown,
)
from providers.config import flooz_credentials
from providers.dialects import Dialect
from providers.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    Answer,
    ExchangeFailed,
    build_client,
    exchange,
)
from providers.msisdn import mask, mask_text
from providers.xmltext import decode

NAMESPACE = "http://api.merchant.tlc.com/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PATH = "/com.tlc.merchant.api/UssdPush"

# Every TLC status code → Sika's outcome. Conditions the payee must fix at an agency are
# not retryable (see `Rule`); limits and float shortage are, once the day/month turns or
# the float is topped up. 99/-1/95 say the operator itself erred mid-way: unknown.
FLOOZ_CODES: dict[str, Rule] = {
    "0": SUCCEEDED,
    "1": failed(Reason.NOT_ALLOWED, retryable=False),  # not allowed on the method
    "2": failed(Reason.NOT_ALLOWED, retryable=False),  # not allowed
    "3": failed(Reason.INVALID_NUMBER, retryable=False),  # number not valid
    "4": failed(Reason.NOT_ALLOWED, retryable=False),  # no permission (duplicate: see below)
    "6": failed(Reason.CANNOT_RECEIVE, retryable=False),  # destination not allowed to receive
    "7": failed(Reason.ACCOUNT_LOCKED, retryable=False),  # destination locked
    "8": failed(Reason.INSUFFICIENT_FLOAT, retryable=True),  # merchant balance insufficient
    "9": failed(Reason.ACCOUNT_INACTIVE, retryable=False),  # destination inactive
    "10": failed(Reason.INSUFFICIENT_FUNDS, retryable=True),  # sender's funds insufficient
    "11": failed(Reason.INVALID_AMOUNT, retryable=False),  # above maximum amount
    "12": failed(Reason.INVALID_AMOUNT, retryable=False),  # below minimum amount
    "13": failed(Reason.LIMIT_REACHED, retryable=True),  # daily amount reached
    "14": failed(Reason.LIMIT_REACHED, retryable=True),  # monthly amount reached
    "15": failed(Reason.LIMIT_REACHED, retryable=True),  # daily count reached
    "16": failed(Reason.LIMIT_REACHED, retryable=True),  # monthly count reached
    "17": failed(Reason.INVALID_AMOUNT, retryable=False),  # cannot receive below amount
    "18": failed(Reason.BALANCE_CAP, retryable=True),  # destination at maximum balance
    "19": failed(Reason.LIMIT_REACHED, retryable=True),  # sender daily count
    "20": failed(Reason.LIMIT_REACHED, retryable=True),  # sender monthly count
    "91": failed(Reason.INVALID_REQUEST, retryable=False),  # parameters incomplete
    "92": failed(Reason.CANCELLED, retryable=True),  # USSD push timed out or cancelled
    "94": failed(Reason.NOT_FOUND, retryable=True),  # no such transaction (status query)
    "95": unknown(Reason.OPERATOR_ERROR),  # failed due to error
    "98": failed(Reason.CREDENTIALS_REJECTED, retryable=True),  # invalid credentials
    "99": unknown(Reason.OPERATOR_ERROR),  # internal error
    "-1": unknown(Reason.OPERATOR_ERROR),  # internal error
    "100": PENDING,
    "555": failed(Reason.NOT_REGISTERED, retryable=False),  # not on Moov Money
}

# Codes that describe the query itself, not the transaction asked about: a status query
# answered with one of them has learnt nothing.
QUERY_LEVEL_CODES = frozenset({"1", "2", "4", "91", "98"})

DUPLICATE_MESSAGE = "referenceid already used"

KYC_STATUS: dict[str, AccountStatus] = {
    "ACTIVE": AccountStatus.ACTIVE,
    "INACTIVE": AccountStatus.INACTIVE,
    "LOCKED": AccountStatus.LOCKED,
}
KYC_CODES: dict[str, AccountStatus] = {
    "7": AccountStatus.LOCKED,
    "9": AccountStatus.INACTIVE,
    # Modelled: TLC's "destination reached maximum balance", in a look-up: the wallet is
    # live but can receive nothing (docs/operators.md#flooz).
    "18": AccountStatus.AT_BALANCE_CAP,
    "555": AccountStatus.NOT_REGISTERED,
    "3": AccountStatus.NOT_REGISTERED,
}

log = get_logger(__name__)


def build_token(username: str, password: str, key: str) -> str:
    """TLC's token: base64(AES-256-CBC(key, IV=0, PKCS7("0:<username>:<password>")))."""
    raw_key = key.encode()
    if len(raw_key) != 32:
        raise ValueError("the TLC key must be 32 bytes")
    padder = padding.PKCS7(128).padder()
    plain = padder.update(f"0:{username}:{password}".encode()) + padder.finalize()
    # A zero IV is what the operator's decryptor expects; the token is a fixed credential.
    encryptor = Cipher(algorithms.AES(raw_key), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def envelope(
    operation: str, token: str, fields: Sequence[tuple[str, str]], *, wrapped: bool = True
) -> bytes:
    """The SOAP request: `<token>` then the fields, inside `<request>` unless `wrapped` is off."""
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields)
    body = f"<request>{inner}</request>" if wrapped else inner
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:api="{NAMESPACE}">'
        "<soapenv:Header/><soapenv:Body>"
        f"<api:{operation}><token>{escape(token)}</token>{body}</api:{operation}>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


class FloozAnswerError(Exception):
    """An answer that is not a usable TLC reply (malformed, hostile, a fault)."""

    def __init__(self, detail: str, *, fault: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fault = fault


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_answer(body: bytes, operation: str) -> dict[str, str]:
    """The fields of `{operation}Response`, or `FloozAnswerError` saying why not.

    TLC wraps the fields in `<return>` for most operations, `<response>` for
    getTransactionStatus and `<result>` for PushWithPending: the first child element is
    the wrapper whatever its name. An answer with the fields directly under the
    `…Response` element is read too.
    """
    try:
        root: Element = fromstring(decode(body), forbid_dtd=True, forbid_entities=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise FloozAnswerError(f"unreadable XML: {type(exc).__name__}: {exc}") from exc
    body_el = next((el for el in root.iter() if _local(el.tag) == "Body"), None)
    if body_el is None or len(body_el) == 0:
        raise FloozAnswerError("no SOAP Body in the answer")
    first = body_el[0]
    if _local(first.tag) == "Fault":
        code = next((el.text for el in first.iter() if _local(el.tag) == "faultcode"), None)
        text = next((el.text for el in first.iter() if _local(el.tag) == "faultstring"), None)
        raise FloozAnswerError(f"SOAP fault {code}: {text}", fault=True)
    if _local(first.tag) != f"{operation}Response":
        raise FloozAnswerError(f"expected {operation}Response, got {_local(first.tag)}")
    children = list(first)
    if not children:
        raise FloozAnswerError(f"{operation}Response is empty")
    wrapper = children[0] if len(children[0]) else first
    return {_local(el.tag): (el.text or "").strip() for el in wrapper if not len(el)}


def message_of(fields: Mapping[str, str]) -> str:
    """The operator's words about an answer: `message`, or `description` where TLC uses it."""
    return fields.get("message") or fields.get("description") or ""


def operator_reference_of(fields: Mapping[str, str], ours: str) -> str | None:
    """Flooz's own id in an answer: the first of its id fields that is not Sika's reference.

    Which of `transactionid` and `referenceid` carries the merchant's id differs between
    TLC deployments, so neither is trusted to be ours or theirs by name.
    """
    for name in ("transactionid", "transid", "referenceid"):
        value = fields.get(name)
        if value and value != ours:
            return value
    return None


def _int_field(fields: Mapping[str, str], name: str) -> int | None:
    """An integer field, None when absent; `FloozAnswerError` when it is not an integer."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise FloozAnswerError(f"field {name} is not an integer: {value[:40]!r}") from None


def rule_for(code: str | None) -> Rule:
    """The table's rule for a status code; a code absent from it is unknown."""
    if code is None or code == "":
        return unknown(Reason.MALFORMED_ANSWER)
    return FLOOZ_CODES.get(code, unknown(Reason.UNMAPPED_CODE))


class FloozAdapter:
    """The TLC merchant API for Flooz payouts, status, USSD push, balance and KYC."""

    name: ClassVar[str] = "flooz"

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        key: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        max_answer_bytes: int = 256 * 1024,
        dialect: Dialect = Dialect.CLIENTS,
        merchant_msisdn: str | None = None,
    ) -> None:
        self._token = build_token(username, password, key)
        self.dialect = Dialect(dialect)
        self._merchant_msisdn = merchant_msisdn
        self._client = build_client(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            transport=transport,
        )
        self._max = max_answer_bytes

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> FloozAdapter:
        """Built from `SIKA_FLOOZ_*` (or `SIKA_SANDBOX_URL`); options go to the constructor."""
        creds = flooz_credentials(settings)
        options.setdefault("dialect", Dialect(settings.flooz_dialect))
        options.setdefault("merchant_msisdn", creds.msisdn or None)
        return cls(creds.base_url, creds.username, creds.password, creds.key, **options)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    # -- one SOAP call -------------------------------------------------------------

    def _call(
        self,
        operation: str,
        fields: Sequence[tuple[str, str]],
        *,
        wrapped: bool = True,
        payout: bool = False,
    ) -> Answer:
        return exchange(
            self._client,
            "POST",
            PATH,
            max_bytes=self._max,
            payout=payout,
            content=envelope(operation, self._token, fields, wrapped=wrapped),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        )

    def _fields(self, answer: Answer, operation: str) -> dict[str, str]:
        """Parse a 200 or a SOAP fault (HTTP 400 or 500, as TLC servers send them); anything
        else is an unusable answer."""
        if answer.status != 200 and not (answer.status in (400, 500) and b"Fault" in answer.body):
            raise FloozAnswerError(f"HTTP {answer.status} from the operator", fault=True)
        return parse_answer(answer.body, operation)

    # -- payouts -------------------------------------------------------------------

    def payout(self, request: PayoutRequest) -> TransactionResult:
        """transferFlooz. A duplicate reference is resolved by a status query, never resent."""
        bound = log.bind(
            provider=self.name,
            reference=request.reference,
            msisdn=mask(request.msisdn),
            amount=request.amount,
        )
        fields = [
            ("destination", request.msisdn),
            ("amount", str(request.amount)),
            ("referenceid", request.reference),
            ("walletid", "0"),
            ("extendeddata", request.description),
        ]
        bound.info("flooz.payout.send")
        try:
            answer = self._call("transferFlooz", fields, payout=True)
        except ExchangeFailed as exc:
            return self._transport_result(request.reference, exc, bound, may_execute=True)
        try:
            values = self._fields(answer, "transferFlooz")
            code = values.get("status")
            if code == "4" and DUPLICATE_MESSAGE in message_of(values).lower():
                # The reference reached the operator before with another payload; only a
                # status query can say what happened to it.
                bound.warning("flooz.payout.duplicate_reference", message=message_of(values))
                status = self.payout_status(request.reference)
                if status.found and status.outcome is not Outcome.UNKNOWN:
                    return _same_payout(status, request)
                return self._result(
                    request.reference,
                    unknown(Reason.DUPLICATE_REFERENCE),
                    code,
                    values,
                    bound,
                    "referenceid already used; status query inconclusive",
                )
            # Both ids are logged: which one TLC calls ours varies (see operator_reference_of).
            bound.info(
                "flooz.payout.ids",
                transactionid=values.get("transactionid"),
                referenceid=values.get("referenceid"),
            )
            return self._result(request.reference, rule_for(code), code, values, bound)
        except FloozAnswerError as exc:
            return self._malformed(request.reference, exc, bound)

    def payout_status(
        self, reference: str, operator_reference: str | None = None
    ) -> TransactionResult:
        """getTransactionStatus by our reference; `found=False` when the operator has none.

        In the `clients` dialect our reference travels in `<transid>`, as every public
        client sends it; if that finds nothing and Flooz's own id is known, the query is
        repeated with it. The `model` dialect asks by `<referenceid>`.
        """
        result = self._status_query(reference, reference)
        if (
            self.dialect is Dialect.CLIENTS
            and not result.found
            and operator_reference
            and operator_reference != reference
        ):
            result = self._status_query(reference, operator_reference)
        return result

    def collection_status(self, reference: str) -> TransactionResult:
        """getTransactionStatus of a USSD push, asked by the reference sent in externaldata1."""
        return self._status_query(reference, reference)

    def _status_query(self, reference: str, asked: str) -> TransactionResult:
        bound = log.bind(provider=self.name, reference=reference)
        field = "referenceid" if self.dialect is Dialect.MODEL and asked == reference else "transid"
        try:
            answer = self._call("getTransactionStatus", [(field, asked)])
        except ExchangeFailed as exc:
            return self._transport_result(reference, exc, bound, may_execute=False)
        try:
            values = self._fields(answer, "getTransactionStatus")
            code = values.get("status")
            if code in QUERY_LEVEL_CODES:
                rule = unknown(Reason.OPERATOR_ERROR)
                detail = f"status query refused: {code} {message_of(values)}"
                return self._result(reference, rule, code, values, bound, detail)
            return self._result(reference, rule_for(code), code, values, bound)
        except FloozAnswerError as exc:
            return self._malformed(reference, exc, bound)

    def transaction_status(self, operator_reference: str) -> TransactionResult:
        """getTransactionStatus by `transid`, Flooz's own reference (as a callback's `refid`).

        The answer's `referenceid` is the merchant reference Flooz recorded; TLC gives no
        direction, so `kind` stays None and the caller checks the reference it expects.
        """
        bound = log.bind(provider=self.name, operator_reference=operator_reference)
        try:
            answer = self._call("getTransactionStatus", [("transid", operator_reference)])
        except ExchangeFailed as exc:
            result = self._transport_result("", exc, bound, may_execute=False)
            return result.model_copy(update={"operator_reference": operator_reference})
        try:
            values = self._fields(answer, "getTransactionStatus")
            code = values.get("status")
            echoed = values.get("transid")
            ids = {values.get(name) for name in ("transid", "transactionid", "referenceid")}
            if echoed and operator_reference not in ids:
                # This query confirms money Sika did not send: an answer about another
                # transaction must not be taken for the one asked about.
                raise FloozAnswerError(f"status is about transid {echoed!r}, not ours")
            # The merchant reference Flooz recorded is whichever id is not its own.
            reference = next(
                (
                    values[name]
                    for name in ("referenceid", "transactionid", "transid")
                    if values.get(name) and values[name] != operator_reference
                ),
                "",
            )
            if code in QUERY_LEVEL_CODES:
                rule = unknown(Reason.OPERATOR_ERROR)
                detail = f"status query refused: {code} {message_of(values)}"
                result = self._result(reference, rule, code, values, bound, detail)
            else:
                result = self._result(reference, rule_for(code), code, values, bound)
        except FloozAnswerError as exc:
            result = self._malformed("", exc, bound)
        return result.model_copy(update={"operator_reference": operator_reference})

    def request_collection(self, request: CollectionRequest) -> TransactionResult:
        """PushWithPending: fields directly after `<token>`; `100` means the payer was asked."""
        bound = log.bind(
            provider=self.name,
            reference=request.reference,
            msisdn=mask(request.msisdn),
            amount=request.amount,
        )
        fields = [
            ("msisdn", request.msisdn),
            ("message", request.message),
            ("amount", str(request.amount)),
            ("externaldata1", request.reference),
            ("externaldata2", ""),
            ("fee", "0"),
        ]
        bound.info("flooz.collection.send")
        try:
            answer = self._call("PushWithPending", fields, wrapped=False)
        except ExchangeFailed as exc:
            return self._transport_result(request.reference, exc, bound, may_execute=True)
        try:
            values = self._fields(answer, "PushWithPending")
            code = values.get("status")
            rule = rule_for(code)
            if code == "4":
                # The reference was used before: a push may already be under way under it,
                # so the line waits for a status query instead of failing.
                rule = unknown(Reason.DUPLICATE_REFERENCE)
            return self._result(request.reference, rule, code, values, bound)
        except FloozAnswerError as exc:
            return self._malformed(request.reference, exc, bound)

    # -- float and KYC -------------------------------------------------------------

    def balance(self) -> BalanceResult:
        """getBalance: the merchant wallet's balance in francs."""
        bound = log.bind(provider=self.name)
        fields: list[tuple[str, str]] = []
        if self.dialect is Dialect.CLIENTS:
            # Public clients always name the merchant wallet whose balance they want.
            if not self._merchant_msisdn:
                return BalanceResult(
                    provider=self.name,
                    outcome=Outcome.FAILED,
                    reason=Reason.INVALID_REQUEST,
                    detail="SIKA_FLOOZ_MSISDN is not set: getBalance needs the merchant "
                    "wallet's number",
                )
            fields = [("msisdn", self._merchant_msisdn)]
        try:
            values = self._fields(self._call("getBalance", fields), "getBalance")
            code = values.get("status")
            if code != "0":
                rule = rule_for(code)
                bound.warning("flooz.balance.refused", code=code)
                return BalanceResult(
                    provider=self.name,
                    outcome=Outcome.FAILED if rule.outcome is Outcome.FAILED else Outcome.UNKNOWN,
                    reason=rule.reason,
                    detail=f"status {code}: {message_of(values)}",
                )
            amount = _int_field(values, "balance")
            if amount is None:
                raise FloozAnswerError("getBalance answer has no balance")
            return BalanceResult(provider=self.name, outcome=Outcome.SUCCEEDED, balance=amount)
        except ExchangeFailed as exc:
            bound.warning("flooz.balance.no_answer", detail=exc.detail)
            return BalanceResult(
                provider=self.name,
                outcome=Outcome.UNKNOWN,
                reason=Reason.NO_ANSWER,
                detail=exc.detail,
            )
        except FloozAnswerError as exc:
            bound.warning("flooz.balance.malformed", detail=exc.detail)
            return BalanceResult(
                provider=self.name,
                outcome=Outcome.UNKNOWN,
                reason=Reason.MALFORMED_ANSWER,
                detail=exc.detail,
            )

    def lookup(self, msisdn: str) -> KycResult:
        """getMobileAccountStatus: subscriber status and names."""
        bound = log.bind(provider=self.name, msisdn=mask(msisdn))
        try:
            answer = self._call("getMobileAccountStatus", [("msisdn", msisdn)])
            values = self._fields(answer, "getMobileAccountStatus")
        except ExchangeFailed as exc:
            bound.warning("flooz.lookup.no_answer", detail=exc.detail)
            return KycResult(
                provider=self.name,
                msisdn=msisdn,
                outcome=Outcome.UNKNOWN,
                reason=Reason.NO_ANSWER,
                detail=exc.detail,
            )
        except FloozAnswerError as exc:
            bound.warning("flooz.lookup.malformed", detail=exc.detail)
            return KycResult(
                provider=self.name,
                msisdn=msisdn,
                outcome=Outcome.UNKNOWN,
                reason=Reason.MALFORMED_ANSWER,
                detail=exc.detail,
            )
        code = values.get("status")
        if code == "0":
            status = KYC_STATUS.get(
                values.get("subscriberstatus", "").upper(), AccountStatus.UNKNOWN
            )
        elif code in KYC_CODES:
            status = KYC_CODES[code]
        else:
            rule = rule_for(code)
            return KycResult(
                provider=self.name,
                msisdn=msisdn,
                outcome=rule.outcome if rule.outcome is not Outcome.SUCCEEDED else Outcome.UNKNOWN,
                reason=rule.reason,
                detail=f"status {code}: {message_of(values)}",
            )
        first = " ".join(p for p in (values.get("firstname"), values.get("secondname")) if p)
        return KycResult(
            provider=self.name,
            msisdn=msisdn,
            outcome=Outcome.SUCCEEDED,
            status=status,
            first_name=first or None,
            last_name=values.get("lastname") or None,
            detail=message_of(values),
        )

    # -- parsing without credentials ----------------------------------------------

    @staticmethod
    def parse_callback(headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """Flooz's unsigned callback, JSON or form-encoded → a hint to confirm by status."""
        return parse_flooz_callback(body)

    @staticmethod
    def parse_statement(data: bytes) -> list[StatementLine]:
        """The daily `;`-separated CSV export."""
        return statements.parse_flooz_statement(data)

    # -- results -------------------------------------------------------------------

    def _result(
        self,
        reference: str,
        rule: Rule,
        code: str | None,
        values: Mapping[str, str],
        bound: Any,
        detail: str | None = None,
    ) -> TransactionResult:
        amount = _int_field(values, "amount")
        destination = values.get("destination") or None
        if detail is None:
            detail = message_of(values)[:500]
        if rule.outcome is Outcome.UNKNOWN:
            # An unknown must always say why, for whoever resolves it later.
            detail = f"{rule.reason}: status {code!r} {detail}".strip()
        if rule.reason is Reason.UNMAPPED_CODE:
            bound.warning(
                "flooz.answer.unmapped_code",
                code=code,
                body=mask_text(json.dumps(dict(values), ensure_ascii=False))[:2000],
            )
        result = TransactionResult(
            provider=self.name,
            reference=reference,
            outcome=rule.outcome,
            reason=rule.reason,
            retryable=rule.retryable,
            detail=detail,
            operator_code=code,
            operator_reference=operator_reference_of(values, reference),
            amount=amount,
            msisdn=destination,
            found=rule.reason is not Reason.NOT_FOUND,
        )
        level = "warning" if result.outcome is Outcome.UNKNOWN else "info"
        getattr(bound, level)(
            "flooz.answer",
            outcome=result.outcome,
            reason=result.reason,
            code=code,
            operator_reference=result.operator_reference,
            detail=result.detail,
        )
        return result

    def _malformed(self, reference: str, exc: FloozAnswerError, bound: Any) -> TransactionResult:
        reason = Reason.OPERATOR_ERROR if exc.fault else Reason.MALFORMED_ANSWER
        bound.warning("flooz.answer.unusable", reason=reason, detail=exc.detail)
        return TransactionResult(
            provider=self.name,
            reference=reference,
            outcome=Outcome.UNKNOWN,
            reason=reason,
            detail=exc.detail,
        )

    def _transport_result(
        self, reference: str, exc: ExchangeFailed, bound: Any, *, may_execute: bool
    ) -> TransactionResult:
        # A request that surely never left cannot have moved money: a plain retryable
        # failure. For a status query nothing was learnt either way: unknown.
        if not exc.sent and may_execute:
            rule = failed(Reason.UNREACHABLE, retryable=True)
        else:
            rule = unknown(Reason.NO_ANSWER if exc.sent else Reason.UNREACHABLE)
        bound.warning("flooz.no_answer", outcome=rule.outcome, detail=exc.detail)
        return TransactionResult(
            provider=self.name,
            reference=reference,
            outcome=rule.outcome,
            reason=rule.reason,
            retryable=rule.retryable,
            detail=exc.detail,
        )


def _same_payout(status: TransactionResult, request: PayoutRequest) -> TransactionResult:
    """The status found under a reused reference, unless it is about another payment."""
    if status.amount is not None and status.amount != request.amount:
        return status.model_copy(
            update={
                "outcome": Outcome.UNKNOWN,
                "reason": Reason.DUPLICATE_REFERENCE,
                "retryable": False,
                "detail": f"reference already used for {status.amount} francs, "
                f"not {request.amount}",
            }
        )
    return status


def _callback_fields(body: bytes) -> dict[str, Any]:
    """A callback body as a mapping: a JSON object, or form-encoded fields."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise CallbackError(f"Flooz callback is not UTF-8: {exc}") from exc
    if text.startswith("{") or text.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CallbackError(f"Flooz callback is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CallbackError("Flooz callback is not a JSON object")
        return data
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=50)
    except ValueError as exc:
        raise CallbackError(f"Flooz callback is neither JSON nor form-encoded: {exc}") from exc
    return dict(pairs)


def parse_flooz_callback(body: bytes) -> CallbackEvent:
    """`amount, refid, mrchrefid, msisdn, status, message`, as JSON or a form → `CallbackEvent`."""
    data = _callback_fields(body)
    reference = data.get("mrchrefid")
    if not isinstance(reference, str) or not reference:
        raise CallbackError("Flooz callback has no mrchrefid (Sika's reference)")
    code = data.get("status")
    code_text = str(code) if isinstance(code, (int, str)) and not isinstance(code, bool) else None
    rule = rule_for(code_text)
    amount = data.get("amount")
    if isinstance(amount, str) and amount.strip().isdigit():
        amount = int(amount)
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        raise CallbackError(f"Flooz callback amount is not an integer: {amount!r}")
    refid = data.get("refid")
    msisdn = data.get("msisdn")
    kind = (
        Kind.COLLECTION
        if str(data.get("type", "")).lower() in ("collection", "c2b")
        else (Kind.PAYOUT)
    )
    return CallbackEvent(
        provider="flooz",
        sika_reference=reference,
        operator_reference=str(refid) if refid not in (None, "") else None,
        outcome=rule.outcome,
        reason=rule.reason,
        operator_code=code_text,
        amount=amount,
        msisdn=str(msisdn) if msisdn else None,
        kind=kind,
        detail=str(data.get("message") or data.get("description") or "")[:200],
    )
