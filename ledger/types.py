"""The ledger's vocabulary: account kinds, limits, transfer kinds, result names, and the
frozen values (Account, Balance, Transfer, TransferOutcome) its service functions exchange.

Python validates each value when it is built, for a friendly message; the database
checks the same rules again so nothing goes around them.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

from core.bounds import check_amount
from core.errors import ValidationError

# Same patterns as the CHECK constraints in migrations/sql/ledger_001_tables.sql.
ACCOUNT_CODE = re.compile(r"^[a-z0-9][a-z0-9_.:@-]{0,99}$")
TRANSFER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")
# Caller-chosen ids stay short enough for the derived ids (`<id>:post`, `expire:<id>`).
MAX_CALLER_ID = 190
MAX_CODE = 65535
MAX_TIMEOUT = 2**31 - 1


class AccountKind(enum.StrEnum):
    """Where an account sits in the chart of accounts."""

    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


class Limit(enum.StrEnum):
    """TigerBeetle's balance limits; pending amounts count against them."""

    DEBITS = "debits"  # debits_must_not_exceed_credits
    CREDITS = "credits"  # credits_must_not_exceed_debits


class TransferKind(enum.StrEnum):
    """What a transfer row does to its accounts' counters."""

    SINGLE = "single"  # posted at once
    PENDING = "pending"  # reserves until posted, voided or expired
    POST = "post"  # posts a pending transfer, fully or partly
    VOID = "void"  # releases a pending transfer
    EXPIRE = "expire"  # written by the ledger when a pending transfer times out


class ProposalKind(enum.StrEnum):
    """What a manual entry proposes; its request's command is `ledger.<kind>`."""

    TRANSFER = "transfer"  # a single or pending transfer
    POST = "post"  # post a pending transfer
    VOID = "void"  # void a pending transfer


class ProposalStatus(enum.StrEnum):
    """Where a manual entry stands; every status but `proposed` is final."""

    PROPOSED = "proposed"  # a maker signed it; it awaits a different approver
    EXECUTED = "executed"  # approved and in the ledger (created, or already there)
    REFUSED = "refused"  # approved, and the ledger refused it (`result` says why)
    REJECTED = "rejected"  # an approver turned it down; nothing moved


class Result(enum.StrEnum):
    """Outcome of one submitted transfer, with TigerBeetle's names where they apply."""

    CREATED = "created"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    ID_MUST_BE_VALID = "id_must_be_valid"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    CODE_MUST_BE_VALID = "code_must_be_valid"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"

    @property
    def ok(self) -> bool:
        """True when the transfer is in the ledger (just created, or an identical replay)."""
        return self in (Result.CREATED, Result.EXISTS)

    @property
    def sentence(self) -> str:
        """One readable sentence for people."""
        return _SENTENCES.get(self, self.value.replace("_", " "))


_SENTENCES: dict[Result, str] = {
    Result.EXCEEDS_CREDITS: "the debit would take the account's debits beyond its credits",
    Result.EXCEEDS_DEBITS: "the credit would take the account's credits beyond its debits",
    Result.DEBIT_ACCOUNT_NOT_FOUND: "the debit account does not exist",
    Result.CREDIT_ACCOUNT_NOT_FOUND: "the credit account does not exist",
    Result.ACCOUNTS_MUST_BE_DIFFERENT: "a transfer needs two different accounts",
    Result.PENDING_TRANSFER_NOT_FOUND: "the pending transfer does not exist",
    Result.PENDING_TRANSFER_NOT_PENDING: "that transfer is not a pending transfer",
    Result.PENDING_TRANSFER_ALREADY_POSTED: "the pending transfer was already posted",
    Result.PENDING_TRANSFER_ALREADY_VOIDED: "the pending transfer was already voided",
    Result.PENDING_TRANSFER_EXPIRED: "the pending transfer has expired",
    Result.EXCEEDS_PENDING_TRANSFER_AMOUNT: "the amount exceeds the pending transfer's amount",
    Result.LINKED_EVENT_FAILED: "another transfer of its linked chain was refused",
    Result.LINKED_EVENT_CHAIN_OPEN: "the batch ends inside a linked chain",
}


def check_account_code(code: str) -> str:
    """`code` if it is a valid account code, else a ValidationError."""
    if not ACCOUNT_CODE.fullmatch(code):
        raise ValidationError(
            f"account code {code!r} must be 1-100 characters of a-z, 0-9 and _ . : @ -, "
            "starting with a letter or digit"
        )
    return code


def check_transfer_id(transfer_id: str) -> str:
    """`transfer_id` if it is a valid caller-chosen transfer id, else a ValidationError."""
    if len(transfer_id) > MAX_CALLER_ID or not TRANSFER_ID.fullmatch(transfer_id):
        raise ValidationError(
            f"transfer id {transfer_id!r} must be 1-{MAX_CALLER_ID} characters of letters, "
            "digits and _ . : / @ -, starting with a letter or digit"
        )
    return transfer_id


@dataclass(frozen=True)
class Account:
    """An account and its counters as last read."""

    id: int
    code: str
    kind: AccountKind
    limit: Limit | None
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


@dataclass(frozen=True)
class AccountSpec:
    """An account to create (idempotently)."""

    code: str
    kind: AccountKind
    limit: Limit | None = None

    def __post_init__(self) -> None:
        check_account_code(self.code)
        object.__setattr__(self, "kind", AccountKind(self.kind))
        if self.limit is not None:
            object.__setattr__(self, "limit", Limit(self.limit))


@dataclass(frozen=True)
class Balance:
    """The four counters of one account."""

    account: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def posted(self) -> int:
        """Credits minus debits, posted only (positive for a credit balance)."""
        return self.credits_posted - self.debits_posted

    def as_dict(self) -> dict[str, int | str]:
        """The `sika ledger balance --json` shape."""
        return {
            "account": self.account,
            "debits_pending": self.debits_pending,
            "debits_posted": self.debits_posted,
            "credits_pending": self.credits_pending,
            "credits_posted": self.credits_posted,
        }


@dataclass(frozen=True)
class Transfer:
    """A transfer to submit. Build it with `single`, `pending`, `post` or `void`.

    For post and void, `debit`/`credit`/`amount` may be None: they come from the pending
    transfer (a post without an amount posts it in full). `linked` chains this transfer
    to the next one of the same batch: the chain applies entirely or not at all.
    """

    id: str
    kind: TransferKind
    debit: str | None = None
    credit: str | None = None
    amount: int | None = None
    pending_id: str | None = None
    timeout: int = 0
    code: int = 0
    linked: bool = False

    def __post_init__(self) -> None:
        check_transfer_id(self.id)
        object.__setattr__(self, "kind", TransferKind(self.kind))
        if self.kind is TransferKind.EXPIRE:
            raise ValidationError("expire transfers are written by the ledger, not submitted")
        if self.amount is not None:
            check_amount(self.amount, f"transfer {self.id}: the amount")
        if not 0 <= self.code <= MAX_CODE:
            raise ValidationError(f"transfer {self.id}: code must be between 0 and {MAX_CODE}")
        if not 0 <= self.timeout <= MAX_TIMEOUT:
            raise ValidationError(f"transfer {self.id}: timeout must be 0 or more seconds")
        if self.timeout and self.kind is not TransferKind.PENDING:
            raise ValidationError(f"transfer {self.id}: only a pending transfer has a timeout")
        if self.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            if self.debit is None or self.credit is None or self.amount is None:
                raise ValidationError(
                    f"transfer {self.id}: debit, credit and amount are required"
                )
            if self.pending_id is not None:
                raise ValidationError(f"transfer {self.id}: only post and void name a pending id")
        elif self.pending_id is None:
            raise ValidationError(f"transfer {self.id}: post and void need the pending id")
        for code in (self.debit, self.credit):
            if code is not None:
                check_account_code(code)
        if self.debit is not None and self.debit == self.credit:
            raise ValidationError(f"transfer {self.id}: debit and credit accounts must differ")

    @classmethod
    def single(
        cls, id: str, debit: str, credit: str, amount: int, *, code: int = 0, linked: bool = False
    ) -> Transfer:
        """A transfer posted at once."""
        return cls(id, TransferKind.SINGLE, debit, credit, amount, code=code, linked=linked)

    @classmethod
    def pending(
        cls,
        id: str,
        debit: str,
        credit: str,
        amount: int,
        *,
        timeout: int = 0,
        code: int = 0,
        linked: bool = False,
    ) -> Transfer:
        """A reservation, later posted or voided (or expired after `timeout` seconds)."""
        return cls(
            id, TransferKind.PENDING, debit, credit, amount, timeout=timeout, code=code,
            linked=linked,
        )

    @classmethod
    def post(
        cls,
        pending_id: str,
        *,
        amount: int | None = None,
        id: str | None = None,
        code: int = 0,
        linked: bool = False,
    ) -> Transfer:
        """Post a pending transfer, in full or `amount` of it (the rest is released)."""
        return cls(
            id or derived_id(pending_id, TransferKind.POST), TransferKind.POST,
            amount=amount, pending_id=pending_id, code=code, linked=linked,
        )

    @classmethod
    def void(
        cls, pending_id: str, *, id: str | None = None, code: int = 0, linked: bool = False
    ) -> Transfer:
        """Release a pending transfer."""
        return cls(
            id or derived_id(pending_id, TransferKind.VOID), TransferKind.VOID,
            pending_id=pending_id, code=code, linked=linked,
        )


def derived_id(pending_id: str, kind: TransferKind) -> str:
    """The stable id of the post or void of `pending_id`, so a repeat is a replay."""
    return f"{pending_id}:{kind.value}"


@dataclass(frozen=True)
class TransferOutcome:
    """What the ledger answered for one submitted transfer."""

    id: str
    result: Result

    @property
    def ok(self) -> bool:
        """True when the transfer is in the ledger."""
        return self.result.ok

    def as_dict(self) -> dict[str, str]:
        """The `--json` shape of transfer, post and void."""
        return {"id": self.id, "result": self.result.value}


@dataclass(frozen=True)
class StatementLine:
    """One transfer as seen from one account."""

    at: dt.datetime
    id: str
    kind: TransferKind
    side: str  # "debit" or "credit"
    counterpart: str
    amount: int
    pending_id: str | None


@dataclass(frozen=True)
class VerifyReport:
    """The result of recomputing every account from the transfers."""

    accounts: int
    transfers: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when nothing disagrees."""
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        """The `sika ledger verify --json` shape."""
        return {
            "ok": self.ok,
            "accounts": self.accounts,
            "transfers": self.transfers,
            "problems": list(self.problems),
        }
