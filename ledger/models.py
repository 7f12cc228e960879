"""Ledger tables as SQLAlchemy models: accounts, transfers, daily seals and the proposals
of manual entries.

They mirror migrations/sql/ledger_001_tables.sql; the rules (triggers, CHECKs, the
submit function) live in the SQL files, so the ledger's own models are for reading.
Proposals are written by `ledger.manual`; ledger_006_proposals.sql keeps them final.
"""

from __future__ import annotations

import datetime as dt
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
from ledger.types import ProposalKind, ProposalStatus


def _values(enum_type: type[ProposalKind] | type[ProposalStatus]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_type)


class AccountRow(Base):
    """An account and its four counters, moved only by the transfer trigger."""

    __tablename__ = "ledger_accounts"
    # CHECK constraints (limits, formats) live in the SQL file only: alembic does not
    # compare them, and the database is where they must hold.
    __table_args__ = (UniqueConstraint("code", name="uq_ledger_accounts_code"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    limit_on: Mapped[str | None] = mapped_column(Text)
    debits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    debits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TransferRow(Base):
    """One transfer; a pending one is resolved by a later row naming it in `pending_id`."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        Index(
            "ix_ledger_transfers_pending_id",
            "pending_id",
            unique=True,
            postgresql_where=text("pending_id IS NOT NULL"),
        ),
        Index("ix_ledger_transfers_debit_account_id", "debit_account_id"),
        Index("ix_ledger_transfers_credit_account_id", "credit_account_id"),
        Index("ix_ledger_transfers_created_at", "created_at", postgresql_using="brin"),
        Index(
            "ix_ledger_transfers_expires_at",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    pending_id: Mapped[str | None] = mapped_column(Text, ForeignKey("ledger_transfers.id"))
    timeout: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    code: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class SealRow(Base):
    """One day's link of the signed hash chain over the transfers."""

    __tablename__ = "ledger_seals"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    transfers: Mapped[int] = mapped_column(BigInteger)
    rows_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)
    previous: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)
    key_fingerprint: Mapped[str] = mapped_column(Text)
    sealed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ProposalRow(Base):
    """A manual ledger entry a maker signed, waiting for (or given) a different approver.

    `command`, `arguments`, `agent`, `request_id`, `issued_at` and `signature` are the
    maker's signed request, kept whole so the approval verifies it again; they never
    change, and neither does a decision.
    """

    __tablename__ = "ledger_proposals"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(ProposalKind)})", name="kind_known"),
        CheckConstraint(f"status IN ({_values(ProposalStatus)})", name="status_known"),
        CheckConstraint("command = 'ledger.' || kind", name="command_of_kind"),
        CheckConstraint("decided_by IS NULL OR decided_by <> proposed_by", name="four_eyes"),
        CheckConstraint(
            "(status = 'proposed') = (decided_by IS NULL)"
            " AND (decided_by IS NULL) = (decided_at IS NULL)",
            name="decision_whole",
        ),
        CheckConstraint(
            "(status IN ('executed', 'refused')) = (result IS NOT NULL)", name="result_of_approval"
        ),
        UniqueConstraint("request_id", name="uq_ledger_proposals_request_id"),
        # one open proposal a transfer: a second would only be answered `exists`
        Index(
            "ux_ledger_proposals_open",
            "transfer_id",
            unique=True,
            postgresql_where=text("status = 'proposed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    # the id the ledger will write (`--id`, or the post's or void's derived id)
    transfer_id: Mapped[str] = mapped_column(Text)
    command: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    agent: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    signature: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    proposed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
