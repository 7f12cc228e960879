"""The provider contract: one Protocol and the frozen models that cross it.

Adapters turn every operator answer, however odd, into an `Outcome`; they raise only for
misconfiguration (`ProviderError`) and for malformed statements or callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ValidationError
from core.settings import Settings


class Outcome(StrEnum):
    """What Sika learnt about one operation."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why an operation failed or stayed unknown, in Sika's words (not the operator's)."""

    NOT_REGISTERED = "not_registered"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_INACTIVE = "account_inactive"
    CANNOT_RECEIVE = "cannot_receive"
    INVALID_NUMBER = "invalid_number"
    BALANCE_CAP = "balance_cap"
    LIMIT_REACHED = "limit_reached"
    INSUFFICIENT_FLOAT = "insufficient_float"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_AMOUNT = "invalid_amount"
    NOT_ALLOWED = "not_allowed"
    INVALID_REQUEST = "invalid_request"
    CREDENTIALS_REJECTED = "credentials_rejected"
    CANCELLED = "cancelled"
    WRONG_PIN = "wrong_pin"
    TRANSACTION_ERROR = "transaction_error"
    OPERATOR_REJECTED = "operator_rejected"
    NOT_FOUND = "not_found"
    DUPLICATE_REFERENCE = "duplicate_reference"
    UNREACHABLE = "unreachable"
    NO_ANSWER = "no_answer"
    OPERATOR_ERROR = "operator_error"
    MALFORMED_ANSWER = "malformed_answer"
    UNMAPPED_CODE = "unmapped_code"


class Kind(StrEnum):
    """Direction of a transaction as seen from Sika's merchant account."""

    PAYOUT = "payout"
    COLLECTION = "collection"
    REVERSAL = "reversal"


class AccountStatus(StrEnum):
    """A wallet's state in a KYC look-up."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    LOCKED = "locked"
    AT_BALANCE_CAP = "at_balance_cap"  # registered and active, but it can receive nothing
    NOT_REGISTERED = "not_registered"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rule:
    """One row of an adapter's code table: the outcome an operator code means for Sika.

    `retryable` answers "could a new attempt of the same payout (same number, same amount)
    succeed later without anyone fixing anything at Sika?". Conditions that need the payee
    to visit an agency (locked, inactive, unregistered wallet) are not retryable: the
    programme tells the farmer and issues a new line once it is fixed.
    """

    outcome: Outcome
    reason: Reason | None = None
    retryable: bool = False


SUCCEEDED = Rule(Outcome.SUCCEEDED)
PENDING = Rule(Outcome.PENDING)


def failed(reason: Reason, *, retryable: bool) -> Rule:
    """A definitive failure."""
    return Rule(Outcome.FAILED, reason, retryable)


def unknown(reason: Reason) -> Rule:
    """The operator may or may not have executed it: only a status query can tell."""
    return Rule(Outcome.UNKNOWN, reason, False)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PayoutRequest(_Frozen):
    """A B2C credit of `amount` francs to `msisdn`, identified by Sika's `reference`.

    The reference is the idempotency key at the operator: a resend must reuse it.
    """

    reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    msisdn: str = Field(pattern=r"^228\d{8}$")
    amount: int = Field(gt=0)
    description: str = Field(default="", max_length=140)


class CollectionRequest(_Frozen):
    """A USSD push asking `msisdn` to pay `amount` francs to Sika's merchant account."""

    reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    msisdn: str = Field(pattern=r"^228\d{8}$")
    amount: int = Field(gt=0)
    message: str = Field(default="", max_length=140)


class TransactionResult(_Frozen):
    """Sika's reading of one operator answer about one transaction (payout, status, push).

    `outcome` is all the dispatcher needs: `succeeded` posts, `failed` voids (a new attempt
    with a new reference only when `retryable`), `pending` and `unknown` mean "query status
    later, never resend under a new reference". `found` is False only when a status query
    learnt that the operator has no transaction under the reference (outcome `failed`,
    reason `not_found`): then a resend must reuse the same reference.

    From `transaction_status` (a query by the operator's own reference), `reference` is the
    merchant reference the operator recorded (Sika's, or what a payer typed), empty when
    the operator has none, and `kind` says the direction when the operator tells it.
    """

    provider: str
    reference: str
    outcome: Outcome
    reason: Reason | None = None
    retryable: bool = False
    detail: str = ""
    operator_code: str | None = None
    operator_reference: str | None = None
    amount: int | None = None
    msisdn: str | None = None
    found: bool = True
    kind: Kind | None = None

    @property
    def final(self) -> bool:
        """True when the outcome will not change any more (succeeded or failed)."""
        return self.outcome in (Outcome.SUCCEEDED, Outcome.FAILED)


class BalanceResult(_Frozen):
    """The merchant float as the operator reports it (`balance` None unless succeeded)."""

    provider: str
    outcome: Outcome
    balance: int | None = None
    reason: Reason | None = None
    detail: str = ""


class KycResult(_Frozen):
    """The operator's answer to "who holds this wallet?" (`name` as the operator spells it)."""

    provider: str
    msisdn: str
    outcome: Outcome
    status: AccountStatus = AccountStatus.UNKNOWN
    first_name: str | None = None
    last_name: str | None = None
    reason: Reason | None = None
    detail: str = ""

    @property
    def name(self) -> str | None:
        """First and last names joined, or None when the operator gave none."""
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None


class CallbackEvent(_Frozen):
    """A parsed operator callback. A HINT only, never proof.

    Callbacks are unsigned and may be forged, duplicated, delayed or out of order: the
    consumer must confirm with `payout_status(sika_reference)` before any money moves.
    """

    provider: str
    sika_reference: str
    operator_reference: str | None = None
    outcome: Outcome
    reason: Reason | None = None
    operator_code: str | None = None
    amount: int | None = None
    msisdn: str | None = None
    kind: Kind = Kind.PAYOUT
    detail: str = ""


class StatementStatus(StrEnum):
    """Status of a line in an operator's daily statement."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


class StatementLine(_Frozen):
    """One line of an operator's daily statement. `line` is its 1-based line in the file."""

    provider: str
    line: int
    operator_reference: str
    sika_reference: str
    at: datetime
    kind: Kind
    msisdn: str | None
    amount: int
    fee: int
    status: StatementStatus


class StatementError(ValidationError):
    """A statement Sika cannot read; names the line and the field."""

    def __init__(self, provider: str, line: int, field: str, problem: str) -> None:
        super().__init__(f"{provider} statement, line {line}, field {field!r}: {problem}")
        self.provider = provider
        self.line = line
        self.field = field


class CallbackError(ValidationError):
    """A callback body Sika cannot read (stored raw anyway, with this message)."""


@runtime_checkable
class ProviderAdapter(Protocol):
    """What Sika asks of a mobile-money operator.

    Methods that talk to the operator never raise for what the operator answers (or fails
    to answer): they return a result with an `Outcome`. `parse_callback` and
    `parse_statement` are static, so the callback receiver and reconciliation need no
    credentials; they raise `CallbackError` / `StatementError` for input they cannot read.
    """

    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> ProviderAdapter:
        """Build the adapter from Sika's settings; `ProviderError` naming a missing variable."""
        ...

    def payout(self, request: PayoutRequest) -> TransactionResult:
        """Credit a wallet from the merchant float (B2C)."""
        ...

    def payout_status(
        self, reference: str, operator_reference: str | None = None
    ) -> TransactionResult:
        """The operator's current view of the transaction sent under Sika's `reference`.

        `operator_reference`, when Sika recorded one, lets an adapter ask again by the
        operator's own id if the query by Sika's reference finds nothing.
        """
        ...

    def collection_status(self, reference: str) -> TransactionResult:
        """The operator's current view of the USSD push Sika requested under `reference`."""
        ...

    def transaction_status(self, operator_reference: str) -> TransactionResult:
        """The operator's current view of the transaction it numbered `operator_reference`.

        How Sika confirms what it did not start, such as a payment a subscriber made to a
        merchant reference on their own: `reference` in the answer is the merchant reference
        the operator holds, and `found=False` says the operator has no such transaction.
        """
        ...

    def request_collection(self, request: CollectionRequest) -> TransactionResult:
        """Ask a payer, by USSD push, to pay the merchant (usually answers `pending`)."""
        ...

    def balance(self) -> BalanceResult:
        """The merchant float at the operator."""
        ...

    def lookup(self, msisdn: str) -> KycResult:
        """The wallet's status and holder's name."""
        ...

    @staticmethod
    def parse_callback(headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """Raw callback → typed hint."""
        ...

    @staticmethod
    def parse_statement(data: bytes) -> list[StatementLine]:
        """A daily statement file → its lines, in file order."""
        ...

    def close(self) -> None:
        """Release the HTTP connections."""
        ...
