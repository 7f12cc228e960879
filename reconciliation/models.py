"""Reconciliation tables: runs (one current per operator and day, earlier ones kept), the
breaks each run found with their evidence, the exceptions auditors work on, fee rules.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class Category(enum.StrEnum):
    """How one statement line (or one of Sika's lines) compares
    (docs/architecture.md#reconciliation)."""

    MATCHED = "matched"
    MISSING_AT_PROVIDER = "missing_at_provider"
    MISSING_IN_LEDGER = "missing_in_ledger"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    DUPLICATE_AT_PROVIDER = "duplicate_at_provider"
    REVERSED_AFTER_SUCCESS = "reversed_after_success"
    AGED_PENDING = "aged_pending"
    FEE_MISMATCH = "fee_mismatch"


class ExceptionCategory(enum.StrEnum):
    """What an exception is about: a break category, or the day's closing float."""

    MISSING_AT_PROVIDER = "missing_at_provider"
    MISSING_IN_LEDGER = "missing_in_ledger"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    DUPLICATE_AT_PROVIDER = "duplicate_at_provider"
    REVERSED_AFTER_SUCCESS = "reversed_after_success"
    AGED_PENDING = "aged_pending"
    FEE_MISMATCH = "fee_mismatch"
    FLOAT_MISMATCH = "float_mismatch"


class Resolution(enum.StrEnum):
    """What a run did about a break."""

    OPEN = "open"  # left to an auditor as an exception
    POSTED = "posted"  # the line's pending transfer was posted (statement: succeeded)
    VOIDED = "voided"  # voided (statement: failed, or absent and unknown to the operator)
    SUSPENSE = "suspense"  # a reversal after success, moved into suspense:<operator>
    ACCEPTED = "accepted"  # an auditor already resolved the same break


class ExceptionStatus(enum.StrEnum):
    """An exception's life: open, a money-moving resolution waiting for a second agent,
    resolved, or cleared because a later run no longer saw the break."""

    OPEN = "open"
    AWAITING_APPROVAL = "awaiting_approval"
    RESOLVED = "resolved"
    CLEARED = "cleared"


class Action(enum.StrEnum):
    """What an auditor can do with an exception."""

    ACKNOWLEDGE = "acknowledge"  # explained, nothing to book
    POST = "post"  # post the payout line's pending transfer
    VOID = "void"  # void it
    BOOK_FEE = "book_fee"  # book the statement's fee to fees:<operator>
    TO_SUSPENSE = "to_suspense"  # align the float, the amount held in suspense:<operator>

    @property
    def moves_money(self) -> bool:
        """True when the action writes to the ledger, so a second agent must approve it."""
        return self is not Action.ACKNOWLEDGE


def _values(kind: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in kind)


# matched lines are counted on the run, never stored as breaks
_BREAK_CATEGORIES = ", ".join(f"'{c.value}'" for c in Category if c is not Category.MATCHED)


class ReconRun(Base):
    """One reconciliation of one operator's statement for one day.

    Running a day again supersedes the current run (superseded_at set) and keeps it.
    """

    __tablename__ = "recon_runs"
    __table_args__ = (
        CheckConstraint("provider ~ '^[a-z][a-z0-9_]*$'", name="provider_named"),
        Index(
            "ux_recon_runs_current",
            "provider",
            "day",
            unique=True,
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    # where the statement came from: "operator" or the file's path
    source: Mapped[str] = mapped_column(Text)
    statement_sha256: Mapped[str] = mapped_column(Text)
    statement_lines: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    amounts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    float_ledger: Mapped[int] = mapped_column(BigInteger)
    float_provider: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    auto_resolved: Mapped[int] = mapped_column(Integer)
    open_exceptions: Mapped[int] = mapped_column(Integer)
    report_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReconBreak(Base):
    """A line a run could not simply match, what it did about it and why (`evidence`).

    Matched lines are counted on the run, not stored: a million of them teach nothing.
    """

    __tablename__ = "recon_breaks"
    __table_args__ = (
        CheckConstraint(f"category IN ({_BREAK_CATEGORIES})", name="category_known"),
        CheckConstraint(f"resolution IN ({_values(Resolution)})", name="resolution_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        Index("ix_recon_breaks_run", "run_id", "category"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_runs.id"))
    category: Mapped[str] = mapped_column(Text)
    # the statement's line number; NULL for a line of Sika's absent from the statement
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str | None] = mapped_column(Text, nullable=True)
    payout_line_id: Mapped[int | None] = mapped_column(ForeignKey("payout_lines.id"), nullable=True)
    sika_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    operator_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    statement_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    sika_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    statement_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ledger_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    statement_fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expected_fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the francs at stake, for the report's amounts by category
    amount: Mapped[int] = mapped_column(BigInteger)
    resolution: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    exception_id: Mapped[int | None] = mapped_column(
        ForeignKey("recon_exceptions.id"), nullable=True
    )


class ReconException(Base):
    """A break waiting for (or given) an auditor's decision; one per break across reruns."""

    __tablename__ = "recon_exceptions"
    __table_args__ = (
        CheckConstraint(f"category IN ({_values(ExceptionCategory)})", name="category_known"),
        CheckConstraint(f"status IN ({_values(ExceptionStatus)})", name="status_known"),
        CheckConstraint(f"action IS NULL OR action IN ({_values(Action)})", name="action_known"),
        CheckConstraint("approved_by IS NULL OR approved_by <> proposed_by", name="four_eyes"),
        UniqueConstraint("provider", "day", "category", "key", name="uq_recon_exceptions_break"),
        Index(
            "ix_recon_exceptions_open",
            "provider",
            "day",
            postgresql_where=text("status IN ('open', 'awaiting_approval')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(Text)
    # identifies the same break across reruns of the day (operator reference and
    # occurrence, `line:<payout line id>`, or `float`)
    key: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_runs.id"))
    payout_line_id: Mapped[int | None] = mapped_column(ForeignKey("payout_lines.id"), nullable=True)
    kind: Mapped[str | None] = mapped_column(Text, nullable=True)
    sika_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    operator_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    proposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FeeRule(Base):
    """The fee an operator charges on a payout from `valid_from` on:
    `fee_fixed + amount * fee_bps // 10000` francs (the operators' published grid)."""

    __tablename__ = "recon_fee_rules"
    __table_args__ = (
        CheckConstraint("fee_fixed >= 0 AND fee_bps >= 0 AND fee_bps <= 10000", name="fee_sane"),
        UniqueConstraint("provider", "valid_from", name="uq_recon_fee_rules_provider"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[date] = mapped_column(Date)
    fee_fixed: Mapped[int] = mapped_column(BigInteger)
    fee_bps: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
