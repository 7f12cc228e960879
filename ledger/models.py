"""Ledger tables as SQLAlchemy models: accounts, transfers and daily seals.

They mirror migrations/sql/ledger_001_tables.sql; the rules (triggers, CHECKs, the
submit function) live in the SQL files, so these models are for reading.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


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
