"""T-Money (Togocom) through its m-banking gateway: JSON over HTTP with a bearer token.

Owns the sign-in (token cached; one new sign-in when the gateway refuses the token with
401, 403 or a WSO2 `fault` body), credits, status queries, USSD push debits, balance and
client look-up, and the tables turning T-Money's codes, statuses and failure descriptions
into Sika's outcomes. Answers are read in every shape public client code shows; requests
are written in the dialect the settings choose (docs/operators.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

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
from providers.config import tmoney_credentials
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

LOGIN = "/login"
CREDIT = "/m-banking/v1/api/tpcredit"
CHECK = "/m-banking/v1/api/tpcredit/check-transaction-id"
DEBIT = "/push-api/v1/debit"
DEBIT_CHECK = "/push-api/v1/transactionid"
BALANCE = "/m-banking/v1/api/solde"
CLIENT = "/m-banking/v1/api/client/{numero}"

SUCCESS_CODE = "2002"
# Success as some clients' tables spell it, on a record that carries no statutRequete.
SUCCESS_CODES = frozenset({SUCCESS_CODE, "200"})
SIGNED_IN = "2000"
SIGN_IN_REFUSED = "4001"

# The `code` of a tpcredit / push answer. 2000 only means "accepted, in process": the
# outcome comes later by callback and status query. 4001 (duplicate idRequete) is resolved
# by a status query. A 500 *code in a JSON body* is the gateway saying the transaction
# failed; an HTTP 5xx status is a different thing (unknown, handled before this table).
TMONEY_CODES: dict[str, Rule] = {
    "2000": PENDING,
    # "Callback executed" in client tables: the outcome is whatever the record says.
    "2001": PENDING,
    "2002": SUCCEEDED,
    "200": SUCCEEDED,
    "4001": unknown(Reason.DUPLICATE_REFERENCE),
    "500": failed(Reason.TRANSACTION_ERROR, retryable=True),
    # The payer mistyped the PIN of a push debit; asking again may succeed.
    "501": failed(Reason.WRONG_PIN, retryable=True),
    "403": failed(Reason.CREDENTIALS_REJECTED, retryable=True),
}

# `statutRequete` of a transaction. SUCCES counts only together with code 2002.
TMONEY_STATUSES: dict[str, Rule] = {
    "SUCCES": SUCCEEDED,
    "EN_COURS": PENDING,
    "ECHEC": failed(Reason.OPERATOR_REJECTED, retryable=False),  # refined by description
}

# `description` of an ECHEC. Payee-side conditions are not retryable (see `Rule`).
TMONEY_FAILURES: dict[str, Rule] = {
    "CLIENT_INCONNU": failed(Reason.NOT_REGISTERED, retryable=False),
    "COMPTE_BLOQUE": failed(Reason.ACCOUNT_LOCKED, retryable=False),
    "COMPTE_INACTIF": failed(Reason.ACCOUNT_INACTIVE, retryable=False),
    "PLAFOND_SOLDE": failed(Reason.BALANCE_CAP, retryable=True),
    "PLAFOND_JOURNALIER": failed(Reason.LIMIT_REACHED, retryable=True),
    "PLAFOND_MENSUEL": failed(Reason.LIMIT_REACHED, retryable=True),
    "SOLDE_PARTENAIRE_INSUFFISANT": failed(Reason.INSUFFICIENT_FLOAT, retryable=True),
    "MONTANT_INVALIDE": failed(Reason.INVALID_AMOUNT, retryable=False),
    # Modelled like the others; the sandbox serves it for a push debit the payer cannot
    # cover (docs/operators.md#codes).
    "SOLDE_CLIENT_INSUFFISANT": failed(Reason.INSUFFICIENT_FUNDS, retryable=True),
}

KYC_STATUS: dict[str, AccountStatus] = {
    "ACTIF": AccountStatus.ACTIVE,
    "INACTIF": AccountStatus.INACTIVE,
    "BLOQUE": AccountStatus.LOCKED,
    "CLIENT_INCONNU": AccountStatus.NOT_REGISTERED,
    # Modelled: the failure description of a credit to a wallet at its balance cap, as the
    # look-up's `statut`: live, but it can receive nothing (docs/operators.md#t-money).
    "PLAFOND_SOLDE": AccountStatus.AT_BALANCE_CAP,
}

log = get_logger(__name__)


class TMoneyAnswerError(Exception):
    """An answer that is not a usable gateway reply."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SignInRefused(Exception):
    """The gateway gave no token: unreachable, refused credentials or an unusable answer."""

    def __init__(self, detail: str, rule: Rule) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rule = rule
        self.reason: Reason = rule.reason or Reason.OPERATOR_ERROR


def _refused_token(answer: Answer) -> bool:
    """True when the gateway refused the bearer token itself, before any execution.

    T-Money's own gateway answers 403; behind WSO2 API Manager an expired or unknown token
    is a 401, or a body `{"fault": {"code": 900901, ...}}`.
    """
    if answer.status in (401, 403):
        return True
    if b'"fault"' not in answer.body[:200]:
        return False
    try:
        payload = json.loads(answer.body)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(payload, dict) and isinstance(payload.get("fault"), dict)


def sign_in_code(payload: Mapping[str, Any]) -> str | None:
    """The sign-in answer's code: at the top level, or under `statut` or `status` as client
    code reads it (as text or as a JSON number)."""
    code = payload.get("code")
    for scope in ("statut", "status"):
        nested = payload.get(scope)
        if code is None and isinstance(nested, dict):
            code = nested.get("code")
    if isinstance(code, bool) or not isinstance(code, (str, int)):
        return None
    return str(code)


def _json(answer: Answer) -> dict[str, Any]:
    try:
        payload = json.loads(answer.body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TMoneyAnswerError(f"HTTP {answer.status}, body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise TMoneyAnswerError(f"HTTP {answer.status}, body is not a JSON object")
    return payload


def _text(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TMoneyAnswerError(f"field {name} has the wrong type: {type(value).__name__}")
    return str(value)


def _int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        # Gateways written in PHP serialise francs as floats (40000.0).
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise TMoneyAnswerError(f"field {name} is not a whole number: {str(value)[:40]!r}")


def transaction_rule(tx: Mapping[str, Any]) -> Rule:
    """One transaction record → Sika's outcome (status, then failure description).

    A record without `statutRequete` is read from its `code` alone, as some clients do.
    """
    statut = _text(tx, "statutRequete")
    if statut is None:
        code = _text(tx, "code")
        if code is None:
            raise TMoneyAnswerError("transaction has neither statutRequete nor code")
        if code in SUCCESS_CODES:
            return SUCCEEDED
        return TMONEY_CODES.get(code, unknown(Reason.UNMAPPED_CODE))
    rule = TMONEY_STATUSES.get(statut.upper())
    if rule is None:
        return unknown(Reason.UNMAPPED_CODE)
    if rule.outcome is Outcome.SUCCEEDED and _text(tx, "code") not in SUCCESS_CODES:
        # SUCCES without 2002 contradicts the gateway's own rule: not proof of payment.
        return unknown(Reason.MALFORMED_ANSWER)
    if rule.outcome is Outcome.FAILED:
        return TMONEY_FAILURES.get((_text(tx, "description") or "").upper(), rule)
    return rule


class TMoneyAdapter:
    """The T-Money partner gateway: tpcredit, check-transaction-id, push debit, solde, client."""

    name: ClassVar[str] = "tmoney"

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        max_answer_bytes: int = 256 * 1024,
        dialect: Dialect = Dialect.CLIENTS,
    ) -> None:
        self.dialect = Dialect(dialect)
        self._username = username
        self._password = password
        self._client = build_client(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            transport=transport,
        )
        self._max = max_answer_bytes
        self._token: str | None = None
        # Dispatch workers share one adapter across threads; one sign-in at a time.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> TMoneyAdapter:
        """Built from `SIKA_TMONEY_*` (or `SIKA_SANDBOX_URL`); options go to the constructor."""
        creds = tmoney_credentials(settings)
        options.setdefault("dialect", Dialect(settings.tmoney_dialect))
        return cls(creds.base_url, creds.username, creds.password, **options)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    # -- sign-in and one authenticated call -----------------------------------------

    def sign_in(self) -> None:
        """Sign in now, replacing any cached token; `SignInRefused` saying why it failed."""
        self._sign_in(self._token)

    def _sign_in(self, stale: str | None) -> str:
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token  # another thread already signed in again
            try:
                answer = exchange(
                    self._client,
                    "POST",
                    LOGIN,
                    max_bytes=self._max,
                    json={"nomUtilisateur": self._username, "motDePasse": self._password},
                )
            except ExchangeFailed as exc:
                raise SignInRefused(
                    f"sign-in: {exc.detail}", failed(Reason.UNREACHABLE, retryable=True)
                ) from exc
            try:
                payload = _json(answer)
                data = payload.get("data")
                token = data.get("token") if isinstance(data, dict) else None
                if isinstance(token, str):
                    # Some gateways hand the token out already prefixed.
                    token = token.removeprefix("Bearer ").strip()
            except TMoneyAnswerError as exc:
                raise SignInRefused(
                    f"sign-in: {exc.detail}", failed(Reason.OPERATOR_ERROR, retryable=True)
                ) from exc
            code = sign_in_code(payload)
            if answer.status == 200 and code == SIGNED_IN and isinstance(token, str) and token:
                self._token = token
                return token
            if code == SIGN_IN_REFUSED or answer.status in (401, 403) or "fault" in payload:
                raise SignInRefused(
                    f"sign-in refused: HTTP {answer.status} code {code!r}",
                    failed(Reason.CREDENTIALS_REJECTED, retryable=True),
                )
            raise SignInRefused(
                f"sign-in answer unusable: HTTP {answer.status} code {code!r}",
                failed(
                    Reason.OPERATOR_ERROR if answer.status >= 500 else Reason.MALFORMED_ANSWER,
                    retryable=True,
                ),
            )

    def _call(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One call with the cached token; refused token → sign in again once and repeat."""
        token = self._token or self._sign_in(None)
        answer = exchange(
            self._client,
            method,
            path,
            max_bytes=self._max,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )
        if not _refused_token(answer):
            return answer
        # The gateway refuses a token before the request reaches T-Money, so repeating
        # the same request (same idRequete) is safe.
        token = self._sign_in(token)
        return exchange(
            self._client,
            method,
            path,
            max_bytes=self._max,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )

    # -- payouts -------------------------------------------------------------------

    def payout(self, request: PayoutRequest) -> TransactionResult:
        """tpcredit; `2000` is pending until a status query or callback settles it."""
        body = {
            "idRequete": request.reference,
            "numeroClient": request.msisdn,
            "montant": request.amount,
            "refCommande": request.reference,
            "dateHeureRequete": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "description": request.description,
        }
        return self._submit(
            CREDIT, body, request.reference, request.msisdn, request.amount, "payout", payout=True
        )

    def request_collection(self, request: CollectionRequest) -> TransactionResult:
        """Push debit: the payer confirms on the phone; the answer is pending at best."""
        body = {
            "idRequete": request.reference,
            "numeroClient": request.msisdn,
            "montant": request.amount,
            "refCommande": request.reference,
            "dateHeureRequete": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "description": request.message,
        }
        if self.dialect is Dialect.MODEL:
            # No public client sends it: the path already says it is a debit.
            body["typeRequete"] = "DEBIT"
        return self._submit(
            DEBIT, body, request.reference, request.msisdn, request.amount, "collection"
        )

    def _submit(
        self,
        path: str,
        body: dict[str, Any],
        reference: str,
        msisdn: str,
        amount: int,
        what: str,
        *,
        payout: bool = False,
    ) -> TransactionResult:
        bound = log.bind(
            provider=self.name, reference=reference, msisdn=mask(msisdn), amount=amount
        )
        bound.info(f"tmoney.{what}.send")
        try:
            answer = self._call("POST", path, json=body, payout=payout)
        except SignInRefused as exc:
            # The credit itself never left: nothing can have moved.
            return self._outcome(reference, exc.rule, bound, exc.detail)
        except ExchangeFailed as exc:
            rule = (
                failed(Reason.UNREACHABLE, retryable=True)
                if not exc.sent
                else unknown(Reason.NO_ANSWER)
            )
            return self._outcome(reference, rule, bound, exc.detail)
        if _refused_token(answer):
            # Refused at the gateway even after a fresh sign-in: it never reached T-Money.
            return self._outcome(
                reference,
                failed(Reason.CREDENTIALS_REJECTED, retryable=True),
                bound,
                f"HTTP {answer.status}: the gateway refused a fresh token",
            )
        if answer.status >= 500:
            return self._outcome(
                reference,
                unknown(Reason.OPERATOR_ERROR),
                bound,
                f"HTTP {answer.status} from the gateway",
            )
        try:
            payload = _json(answer)
            code = _text(payload, "code")
            tx = _transaction(payload)
            if code == "4001":
                # The idRequete reached T-Money before: learn what became of it.
                bound.warning("tmoney.duplicate_reference", message=payload.get("message"))
                status = (
                    self.collection_status(reference)
                    if path == DEBIT
                    else self.payout_status(reference)
                )
                if status.found:
                    if status.amount is not None and status.amount != amount:
                        return status.model_copy(
                            update={
                                "outcome": Outcome.UNKNOWN,
                                "reason": Reason.DUPLICATE_REFERENCE,
                                "retryable": False,
                                "detail": f"idRequete already used for {status.amount} francs",
                            }
                        )
                    return status
                return self._outcome(
                    reference,
                    unknown(Reason.DUPLICATE_REFERENCE),
                    bound,
                    "duplicate idRequete; status query found nothing",
                    code,
                )
            if answer.status != 200 and code not in TMONEY_CODES:
                return self._outcome(
                    reference,
                    unknown(Reason.OPERATOR_ERROR),
                    bound,
                    f"HTTP {answer.status}: {payload.get('message')!r}",
                    code,
                )
            rule = TMONEY_CODES.get(code or "", unknown(Reason.UNMAPPED_CODE))
            if rule.reason is Reason.UNMAPPED_CODE:
                _log_unmapped(bound, code, answer)
            if tx is not None and _text(tx, "statutRequete"):
                tx_rule = transaction_rule({**tx, "code": _text(tx, "code") or code})
                # An immediate ECHEC is definitive; anything else waits for the status query.
                if tx_rule.outcome is Outcome.FAILED or (
                    tx_rule.outcome is Outcome.SUCCEEDED and rule.outcome is Outcome.SUCCEEDED
                ):
                    rule = tx_rule
            if rule.outcome is Outcome.SUCCEEDED and (tx is None or not _text(tx, "statutRequete")):
                rule = PENDING  # 2002 alone, without a SUCCES record, proves nothing yet
            return self._outcome(reference, rule, bound, _describe(payload, tx), code, tx)
        except TMoneyAnswerError as exc:
            return self._outcome(reference, unknown(Reason.MALFORMED_ANSWER), bound, exc.detail)

    def payout_status(
        self, reference: str, operator_reference: str | None = None
    ) -> TransactionResult:
        """check-transaction-id; an empty `data` array means T-Money has no such idRequete."""
        return self._status_query(CHECK, reference)

    def collection_status(self, reference: str) -> TransactionResult:
        """A push debit's status: `/push-api/v1/transactionid` as public clients read it
        (`clients` dialect), or check-transaction-id (`model`)."""
        return self._status_query(
            DEBIT_CHECK if self.dialect is Dialect.CLIENTS else CHECK, reference
        )

    def _status_query(self, path: str, reference: str) -> TransactionResult:
        bound = log.bind(provider=self.name, reference=reference)
        try:
            answer = self._call("GET", path, params={"idRequete": reference})
        except SignInRefused as exc:
            return self._outcome(reference, unknown(exc.reason), bound, exc.detail)
        except ExchangeFailed as exc:
            reason = Reason.NO_ANSWER if exc.sent else Reason.UNREACHABLE
            return self._outcome(reference, unknown(reason), bound, exc.detail)
        if answer.status != 200:
            return self._outcome(
                reference,
                unknown(Reason.OPERATOR_ERROR),
                bound,
                f"HTTP {answer.status} from the status query",
            )
        try:
            payload = _json(answer)
            records = _records(payload)
            if not records:
                return self._outcome(
                    reference,
                    failed(Reason.NOT_FOUND, retryable=True),
                    bound,
                    "no transaction under this idRequete",
                    found=False,
                )
            # A record that names no idRequete is the one asked for; one naming another
            # is not ours.
            ours = [tx for tx in records if _text(tx, "idRequete") in (None, reference)]
            if len(ours) != 1:
                raise TMoneyAnswerError(
                    f"status answer holds {len(ours)} records for our idRequete"
                )
            tx = {**ours[0]}
            if "statutRequete" not in tx and "code" not in tx and "code" in payload:
                tx["code"] = payload["code"]
            rule = transaction_rule(tx)
            if rule.reason is Reason.UNMAPPED_CODE:
                _log_unmapped(bound, _text(tx, "code"), answer)
            return self._outcome(
                reference, rule, bound, _describe(payload, tx), _text(tx, "code"), tx
            )
        except TMoneyAnswerError as exc:
            return self._outcome(reference, unknown(Reason.MALFORMED_ANSWER), bound, exc.detail)

    def transaction_status(self, operator_reference: str) -> TransactionResult:
        """check-transaction-id by `refTmoney`, T-Money's own reference.

        *Modelled* (docs/operators.md#status-queries): client code queries the gateway by
        `idRequete` only; a payment a subscriber makes to the partner's merchant code
        carries no `idRequete` of Sika's, so Sika asks the same endpoint with `refTmoney=`,
        the closest pattern (TLC's `getTransactionStatus` takes `transid` or `referenceid`).
        The record's `idRequete` is the merchant reference and `typeRequete` its direction.
        """
        bound = log.bind(provider=self.name, operator_reference=operator_reference)
        ref = {"operator_reference": operator_reference}
        try:
            answer = self._call("GET", CHECK, params={"refTmoney": operator_reference})
        except SignInRefused as exc:
            rule = unknown(exc.reason)
            return self._outcome("", rule, bound, exc.detail).model_copy(update=ref)
        except ExchangeFailed as exc:
            rule = unknown(Reason.NO_ANSWER)
            return self._outcome("", rule, bound, exc.detail).model_copy(update=ref)
        if answer.status != 200:
            detail = f"HTTP {answer.status} from the status query"
            result = self._outcome("", unknown(Reason.OPERATOR_ERROR), bound, detail)
            return result.model_copy(update=ref)
        try:
            payload = _json(answer)
            data = payload.get("data")
            if not isinstance(data, list):
                raise TMoneyAnswerError("status answer has no data array")
            if not data:
                result = self._outcome(
                    "",
                    failed(Reason.NOT_FOUND, retryable=True),
                    bound,
                    "no transaction under this refTmoney",
                    found=False,
                )
                return result.model_copy(update=ref)
            ours = [
                tx
                for tx in data
                if isinstance(tx, dict) and _text(tx, "refTmoney") == operator_reference
            ]
            if len(ours) != 1:
                raise TMoneyAnswerError(
                    f"status answer holds {len(ours)} records for our refTmoney"
                )
            tx = ours[0]
            return self._outcome(
                _text(tx, "idRequete") or "",
                transaction_rule(tx),
                bound,
                _describe(payload, tx),
                _text(tx, "code"),
                tx,
            )
        except TMoneyAnswerError as exc:
            result = self._outcome("", unknown(Reason.MALFORMED_ANSWER), bound, exc.detail)
            return result.model_copy(update=ref)

    # -- float and KYC -------------------------------------------------------------

    def balance(self) -> BalanceResult:
        """solde: the partner account's balance in francs."""
        bound = log.bind(provider=self.name)
        try:
            answer = self._call("GET", BALANCE)
            if answer.status != 200:
                raise TMoneyAnswerError(f"HTTP {answer.status} from solde")
            payload = _json(answer)
            for scope in (payload, payload.get("data")):
                if isinstance(scope, dict):
                    for key in ("solde", "soldePartenaire", "balance"):
                        value = _int(scope, key)
                        if value is not None:
                            return BalanceResult(
                                provider=self.name, outcome=Outcome.SUCCEEDED, balance=value
                            )
            raise TMoneyAnswerError("solde answer holds no balance")
        except (SignInRefused, ExchangeFailed, TMoneyAnswerError) as exc:
            detail = str(exc)
            bound.warning("tmoney.balance.unusable", detail=detail)
            return BalanceResult(
                provider=self.name, outcome=Outcome.UNKNOWN, reason=_reason(exc), detail=detail
            )

    def lookup(self, msisdn: str) -> KycResult:
        """client/{numero}: `statut` ACTIF/INACTIF and the holder's names."""
        bound = log.bind(provider=self.name, msisdn=mask(msisdn))
        try:
            answer = self._call("GET", CLIENT.format(numero=msisdn))
            if answer.status == 404:
                return KycResult(
                    provider=self.name,
                    msisdn=msisdn,
                    outcome=Outcome.SUCCEEDED,
                    status=AccountStatus.NOT_REGISTERED,
                    detail="unknown client",
                )
            if answer.status != 200:
                raise TMoneyAnswerError(f"HTTP {answer.status} from client look-up")
            payload = _json(answer)
            record = payload.get("data") if isinstance(payload.get("data"), dict) else payload
            statut = (_text(record, "statut") or _text(record, "description") or "").upper()
            status = KYC_STATUS.get(statut, AccountStatus.UNKNOWN)
            return KycResult(
                provider=self.name,
                msisdn=msisdn,
                outcome=Outcome.SUCCEEDED,
                status=status,
                first_name=_text(record, "prenom") or None,
                last_name=_text(record, "nom") or None,
                detail=str(payload.get("message", ""))[:200],
            )
        except (SignInRefused, ExchangeFailed, TMoneyAnswerError) as exc:
            bound.warning("tmoney.lookup.unusable", detail=str(exc))
            return KycResult(
                provider=self.name,
                msisdn=msisdn,
                outcome=Outcome.UNKNOWN,
                reason=_reason(exc),
                detail=str(exc),
            )

    # -- parsing without credentials ----------------------------------------------

    @staticmethod
    def parse_callback(headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """T-Money's JSON callback (the transaction fields) → a hint to confirm by status."""
        return parse_tmoney_callback(body)

    @staticmethod
    def parse_statement(data: bytes) -> list[StatementLine]:
        """The daily `,`-separated CSV export."""
        return statements.parse_tmoney_statement(data)

    # -- results -------------------------------------------------------------------

    def _outcome(
        self,
        reference: str,
        rule: Rule,
        bound: Any,
        detail: str,
        code: str | None = None,
        tx: Mapping[str, Any] | None = None,
        *,
        found: bool = True,
    ) -> TransactionResult:
        tx = tx or {}
        if rule.outcome is Outcome.UNKNOWN:
            # An unknown must always say why, for whoever resolves it later.
            detail = f"{rule.reason}: code {code!r} {detail}".strip()
        result = TransactionResult(
            provider=self.name,
            reference=reference,
            outcome=rule.outcome,
            reason=rule.reason,
            retryable=rule.retryable,
            detail=detail[:500],
            operator_code=code,
            operator_reference=_text(tx, "refTmoney") or None,
            amount=_int(tx, "montant"),
            msisdn=_text(tx, "numeroClient") or None,
            found=found,
            kind=statements.TMONEY_KINDS.get((_text(tx, "typeRequete") or "").upper()),
        )
        level = "info" if rule.outcome is not Outcome.UNKNOWN else "warning"
        getattr(bound, level)(
            "tmoney.answer",
            outcome=result.outcome,
            reason=result.reason,
            code=code,
            operator_reference=result.operator_reference,
            detail=result.detail,
        )
        return result


def _reason(exc: Exception) -> Reason:
    """Why a balance or look-up call taught nothing, in Sika's words."""
    if isinstance(exc, SignInRefused):
        return exc.reason
    if isinstance(exc, ExchangeFailed):
        return Reason.NO_ANSWER if exc.sent else Reason.UNREACHABLE
    return Reason.MALFORMED_ANSWER


def _log_unmapped(bound: Any, code: str | None, answer: Answer) -> None:
    """A code no table knows: kept unknown, and logged whole (phones masked) for a person."""
    bound.warning(
        "tmoney.answer.unmapped_code",
        code=code,
        http_status=answer.status,
        body=mask_text(answer.body[:2000].decode("utf-8", "replace")),
    )


def _records(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The transaction records of a status answer: `data` as an array or an object, or the
    record at the top level; `TMoneyAnswerError` when the answer holds none of these."""
    data = payload.get("data")
    if isinstance(data, list):
        return [tx for tx in data if isinstance(tx, dict)]
    if isinstance(data, dict):
        return [data]
    if "statutRequete" in payload or "idRequete" in payload:
        return [payload]
    if data is None and "code" in payload and _text(payload, "code") in SUCCESS_CODES:
        return [payload]
    raise TMoneyAnswerError("status answer holds no transaction record")


def _transaction(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The transaction record in an answer: `data` (object or one-element array) or top level."""
    data = payload.get("data")
    if isinstance(data, dict):
        return data
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    if any(name in payload for name in ("statutRequete", "refTmoney", "idRequete")):
        return payload
    return None


def _describe(payload: Mapping[str, Any], tx: Mapping[str, Any] | None) -> str:
    parts = [str(payload.get("message") or "")]
    if tx is not None and tx.get("description"):
        parts.append(str(tx.get("description")))
    return " ".join(p for p in parts if p)


def parse_tmoney_callback(body: bytes) -> CallbackEvent:
    """A T-Money callback: `idRequete`, `refTmoney`, `statutRequete`, `code`, `montant`..."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CallbackError(f"T-Money callback is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise CallbackError("T-Money callback is not a JSON object")
    tx = _transaction(payload) or payload
    try:
        reference = _text(tx, "idRequete")
        if not reference:
            raise CallbackError("T-Money callback has no idRequete (Sika's reference)")
        rule = transaction_rule({**tx, "code": _text(tx, "code") or _text(payload, "code")})
        kind_text = (_text(tx, "typeRequete") or "CREDIT").upper()
        return CallbackEvent(
            provider="tmoney",
            sika_reference=reference,
            operator_reference=_text(tx, "refTmoney") or None,
            outcome=rule.outcome,
            reason=rule.reason,
            operator_code=_text(tx, "code") or _text(payload, "code"),
            amount=_int(tx, "montant"),
            msisdn=_text(tx, "numeroClient") or None,
            kind=Kind.COLLECTION if kind_text == "DEBIT" else Kind.PAYOUT,
            detail=(_text(tx, "description") or _text(tx, "message") or "")[:200],
        )
    except TMoneyAnswerError as exc:
        raise CallbackError(f"T-Money callback: {exc.detail}") from exc
