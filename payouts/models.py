"""Payout batches and their lines: the tables every programme's disbursements go through.

A batch is built by a programme (AgriPME from its season rules, CIZO from what is owed to
solar companies), submitted by its maker and approved by a second agent, each with a signed
request kept with the batch (`payout_batch_requests`), then dispatched, or cancelled before.
Each line's state only moves forward, by conditional updates (`payouts.dispatch`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

# AES-GCM associated data of a line's phone number
LINE_MSISDN = "payout_lines.msisdn"
# AES-GCM associated data of a wallet holder's name as an operator's look-up gave it, and
# the blind-index context of the number looked up
LOOKUP_HOLDER = "preflight_lookups.holder"
LOOKUP_MSISDN = "preflight_lookups.msisdn"


class BatchStatus(enum.StrEnum):
    """A batch's life: built (and submitted) by its maker, approved, dispatched, every line
    final; or cancelled before dispatch, its payees free for a later batch."""

    CREATED = "created"
    APPROVED = "approved"
    DISPATCHED = "dispatched"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class BatchStep(enum.StrEnum):
    """A signed decision on a batch, kept with it: `<programme>.batch.<step>`."""

    SUBMIT = "submit"
    APPROVE = "approve"
    CANCEL = "cancel"
    # the maker's re-run of the pre-flight and inclusion of a held line (both change the
    # manifest, which the maker then submits again)
    PREFLIGHT = "preflight"
    INCLUDE = "include"


# steps a batch may take more than once (every manifest its maker signed is kept)
REPEATABLE_STEPS = (BatchStep.SUBMIT, BatchStep.PREFLIGHT, BatchStep.INCLUDE)


# the reason of a line whose batch was cancelled before dispatch: failed without ever
# leaving Sika, it frees its payee's place in the scope
CANCELLED_REASON = "cancelled"


class LineStatus(enum.StrEnum):
    """A payout line's state (docs/architecture.md#payout-states). `pending` and `unknown`
    are settled only by a status query, a callback confirmed by one, or reconciliation."""

    CREATED = "created"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (LineStatus.SUCCEEDED, LineStatus.FAILED)


class Verdict(enum.StrEnum):
    """What a pre-flight look-up says of a line's wallet (`payouts.preflight`)."""

    OK = "ok"
    NAME_MISMATCH = "name_mismatch"
    NOT_REGISTERED = "not_registered"
    INACTIVE = "inactive"
    LOCKED = "locked"
    AT_BALANCE_CAP = "at_balance_cap"
    # the number answers at the other operator: the line is paid there
    PORTED = "ported"
    # no answer after retries: shown, never blocking by itself
    UNREACHABLE = "unreachable"
    # not looked up: the operator offers this merchant account no look-up
    SKIPPED = "skipped"

    @property
    def excludes(self) -> bool:
        """Whether a line with this verdict would fail at the operator: kept out, final."""
        return self in EXCLUDING


EXCLUDING = frozenset(
    (Verdict.NOT_REGISTERED, Verdict.INACTIVE, Verdict.LOCKED, Verdict.AT_BALANCE_CAP)
)


IN_FLIGHT = (LineStatus.QUEUED, LineStatus.SUBMITTED, LineStatus.PENDING, LineStatus.UNKNOWN)

_BATCH_STATUSES = ", ".join(f"'{s.value}'" for s in BatchStatus)
_LINE_STATUSES = ", ".join(f"'{s.value}'" for s in LineStatus)
_STEPS = ", ".join(f"'{s.value}'" for s in BatchStep)
_REPEATABLE = ", ".join(f"'{s.value}'" for s in REPEATABLE_STEPS)
_VERDICTS = ", ".join(f"'{v.value}'" for v in Verdict)
_ACCOUNT_STATUSES = (
    "'active', 'inactive', 'locked', 'at_balance_cap', 'not_registered', 'unknown'"
)


class PayoutBatch(Base):
    """One disbursement run, submitted by its maker and approved by a different agent
    (their signed requests are `BatchRequest`s)."""

    __tablename__ = "payout_batches"
    __table_args__ = (
        CheckConstraint(f"status IN ({_BATCH_STATUSES})", name="status_known"),
        CheckConstraint("approver_id IS NULL OR approver_id <> maker_id", name="four_eyes"),
        CheckConstraint("total >= 0 AND lines >= 0", name="totals_positive"),
        CheckConstraint(
            "(status = 'cancelled') = (cancelled_at IS NOT NULL)", name="cancel_has_time"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    programme: Mapped[str] = mapped_column(Text)
    # what the programme pays under: a season code, a solar company
    scope: Mapped[str] = mapped_column(Text)
    # the ledger account each line's pending transfer debits
    debit_account: Mapped[str] = mapped_column(Text)
    # text the operator shows with the credit (Flooz extendeddata, T-Money description)
    description: Mapped[str] = mapped_column(Text)
    # French SMS sent on success; `{amount}` becomes the amount written the French way
    # (`9 000 FCFA`), `{reference}` the line's operator reference
    notice: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(Text, default=BatchStatus.CREATED.value)
    # random, so operator references never repeat across databases (a rebuilt test system
    # talking to a long-lived operator account)
    nonce: Mapped[str] = mapped_column(Text)
    lines: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 the database computes over the lines (payouts.batches.compute_manifest): what
    # the maker's and the approver's signed requests name
    manifest: Mapped[str] = mapped_column(Text)
    maker_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BatchRequest(Base):
    """A signed request that decided a batch's fate (its maker's submit, its approver's
    approve, a cancel), kept whole so dispatch can verify it again against the lines.

    Append-only: neither Sika's role nor the owner may change or delete one (trigger).
    """

    __tablename__ = "payout_batch_requests"
    __table_args__ = (
        CheckConstraint(f"step IN ({_STEPS})", name="step_known"),
        CheckConstraint("command ~ ('[.]batch[.]' || step || '$')", name="command_of_step"),
        Index(
            "ux_payout_batch_requests_step",
            "batch_id",
            "step",
            unique=True,
            postgresql_where=text(f"step NOT IN ({_REPEATABLE})"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"))
    step: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    # the request as signed (core.authority.SignedRequest); `agent` is the agent's name
    command: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    agent: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text, unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    signature: Mapped[str] = mapped_column(Text)
    # when the service accepted it: the agent's key valid then is the one that verifies it
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PayoutLine(Base):
    """One payee's payout in a batch; its current attempt's state lives here.

    `reference` is the attempt's operator reference (the idempotency key at the operator)
    and `pending_id` the attempt's pending transfer in the ledger. Earlier attempts that
    definitively failed are kept in `payout_attempts`.
    """

    __tablename__ = "payout_lines"
    __table_args__ = (
        CheckConstraint(f"status IN ({_LINE_STATUSES})", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("operator ~ '^[a-z][a-z0-9_]*$'", name="operator_named"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        # a farmer is paid at most once a season: only a definitively failed line frees
        # the place for another
        Index(
            "ux_payout_lines_once_per_scope",
            "scope",
            "payee",
            unique=True,
            postgresql_where=text("status <> 'failed'"),
        ),
        Index("ix_payout_lines_batch", "batch_id", "seq", unique=True),
        Index("ix_payout_lines_reference", "reference", unique=True),
        Index("ix_payout_lines_operator_reference", "operator_reference"),
        Index(
            "ix_payout_lines_open",
            "batch_id",
            postgresql_where=text("status NOT IN ('succeeded', 'failed')"),
        ),
        CheckConstraint("line_mac IS NULL OR octet_length(line_mac) = 32", name="line_mac_size"),
        # only lines written before they had a MAC: dispatch finds them in one probe
        Index("ix_payout_lines_unsealed", "batch_id", postgresql_where=text("line_mac IS NULL")),
        CheckConstraint(f"preflight IS NULL OR preflight IN ({_VERDICTS})", name="preflight_known"),
        CheckConstraint(f"held_out IS NULL OR held_out IN ({_VERDICTS})", name="held_out_known"),
        CheckConstraint(
            "preflight_score IS NULL OR preflight_score BETWEEN 0 AND 100",
            name="preflight_score_range",
        ),
        CheckConstraint(
            "(included_by IS NULL) = (include_reason IS NULL)"
            " AND (included_by IS NULL OR held_out IS NULL)",
            name="inclusion_whole",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"))
    seq: Mapped[int] = mapped_column(Integer)
    scope: Mapped[str] = mapped_column(Text)
    # the programme's payee: `farmer:<id>`, `company:<code>`
    payee: Mapped[str] = mapped_column(Text)
    msisdn_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # HMAC of the line's fields under Sika's secret key (payouts.batches.line_mac); a
    # worker refuses to send a line it does not fit. NULL only on lines written before
    # revision 0015, until dispatch seals them
    line_mac: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    operator: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, default=LineStatus.CREATED.value)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    reference: Mapped[str] = mapped_column(Text)
    pending_id: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    operator_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    # how many times this attempt's request left Sika (resends reuse the reference)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    # when the next status query is due; NULL when none is scheduled
    check_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # why someone must look at this line: a success the operator later reversed (set by
    # reconciliation), a line refused because it changed after it was signed (the worker)
    flagged: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the pre-flight's verdict on the line's wallet and, for a name compared, its score;
    # NULL on lines built before pre-flight existed
    preflight: Mapped[str | None] = mapped_column(Text, nullable=True)
    preflight_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # why the line is out of the manifest (the verdict that put it out); NULL when in. An
    # excluded line is `failed` with that reason; a held name_mismatch line stays
    # `created` until its maker includes it or the batch is approved without it
    held_out: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the maker who put a held line back in, and the reason they gave
    included_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    include_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PayoutAttempt(Base):
    """An earlier attempt of a line that definitively failed and was replaced by a retry."""

    __tablename__ = "payout_attempts"
    __table_args__ = (Index("ix_payout_attempts_line", "line_id", "attempt", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("payout_lines.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(Text, unique=True)
    pending_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    operator_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    archived_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PreflightLookup(Base):
    """One answer of an operator's wallet look-up, kept as the pre-flight's cache: a
    number looked up within SIKA_PREFLIGHT_CACHE_HOURS is not asked again, which is also
    what lets an interrupted pre-flight resume where it stopped.

    Personal data: the number is a blind index and the holder's name a ciphertext; only
    the status, verdict and score are in clear. Appended, never changed.
    """

    __tablename__ = "preflight_lookups"
    __table_args__ = (
        CheckConstraint("operator ~ '^[a-z][a-z0-9_]*$'", name="operator_named"),
        CheckConstraint("octet_length(msisdn_bidx) = 32", name="msisdn_bidx_size"),
        CheckConstraint(f"status IN ({_ACCOUNT_STATUSES})", name="status_known"),
        CheckConstraint(f"verdict IN ({_VERDICTS})", name="verdict_known"),
        CheckConstraint("score IS NULL OR score BETWEEN 0 AND 100", name="score_range"),
        Index("ix_preflight_lookups_number", "operator", "msisdn_bidx", "looked_up_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # the operator asked (for a ported number, the other one is asked too: its own row)
    operator: Mapped[str] = mapped_column(Text)
    msisdn_bidx: Mapped[bytes] = mapped_column(LargeBinary)
    # providers.base.AccountStatus; `unknown` when no usable answer came
    status: Mapped[str] = mapped_column(Text)
    # this answer's verdict for the name compared when it was asked
    verdict: Mapped[str] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    holder_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # why no usable answer came (providers.base.Reason), for `unknown`
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    looked_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
