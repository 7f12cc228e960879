"""CIZO tables: solar companies, plans, kits, collections, payments and activation tokens.

Household names, phone numbers and OpenPAYGO secrets are stored only as AES-GCM
ciphertexts (`core.crypto`); a kit's phone number is found again through a blind index.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
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
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

# ciphertext contexts (AES-GCM associated data) and blind-index contexts
COMPANY_MSISDN = "cizo_companies.msisdn"
HOUSEHOLD_NAME = "cizo_kits.household_name"
KIT_MSISDN = "cizo_kits.msisdn"
OPAYGO_KEY = "cizo_kits.opaygo_key"
STARTING_CODE = "cizo_kits.starting_code"

CODE_PATTERN = "^[A-Z0-9][A-Z0-9_-]{1,31}$"
SERIAL_PATTERN = "^[A-Z0-9][A-Z0-9-]{2,39}$"


class KitStatus(enum.StrEnum):
    """A kit's life: waiting for its deposit, paying by the day, paid off for good."""

    AWAITING_DEPOSIT = "awaiting_deposit"
    ACTIVE = "active"
    UNLOCKED = "unlocked"


class CollectionStatus(enum.StrEnum):
    """A USSD push Sika asked for; only `succeeded` (confirmed by a status query) counts."""

    REQUESTED = "requested"
    PENDING = "pending"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PaymentSource(enum.StrEnum):
    """How the household paid: answering Sika's push, or paying the merchant reference."""

    PUSH = "push"
    MERCHANT = "merchant"


class PaymentStatus(enum.StrEnum):
    """A payment counts (ledger, subsidy, days, tokens) only once `confirmed`."""

    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"


class TokenKind(enum.StrEnum):
    """OpenPAYGO Token types Sika issues."""

    ADD_TIME = "add_time"
    SET_TIME = "set_time"
    DISABLE_PAYG = "disable_payg"


def _in(enum_type: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum_type)


class Programme(Base):
    """The chèque solaire's settings: one row, changed only by an admin."""

    __tablename__ = "cizo_programme"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("monthly_subsidy_amount >= 0", name="monthly_subsidy_not_negative"),
        CheckConstraint("subsidy_months >= 0", name="subsidy_months_not_negative"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    monthly_subsidy_amount: Mapped[int] = mapped_column(BigInteger)
    subsidy_months: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Company(Base):
    """A solar company approved for CIZO, paid on its own mobile-money number."""

    __tablename__ = "cizo_companies"
    __table_args__ = (
        CheckConstraint(f"code ~ '{CODE_PATTERN}'", name="code_format"),
        CheckConstraint("operator IN ('flooz', 'tmoney')", name="operator_known"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    msisdn_enc: Mapped[bytes] = mapped_column(LargeBinary)
    operator: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Plan(Base):
    """A PAYG price list: a deposit, then a price per day for `term_days` days."""

    __tablename__ = "cizo_plans"
    __table_args__ = (
        CheckConstraint(f"code ~ '{CODE_PATTERN}'", name="code_format"),
        CheckConstraint("deposit_amount >= 0", name="deposit_not_negative"),
        CheckConstraint("per_day_amount > 0", name="per_day_positive"),
        CheckConstraint("term_days > 0", name="term_positive"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    company: Mapped[str] = mapped_column(ForeignKey("cizo_companies.code"))
    deposit_amount: Mapped[int] = mapped_column(BigInteger)
    per_day_amount: Mapped[int] = mapped_column(BigInteger)
    term_days: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Kit(Base):
    """A household's solar kit on a plan, with what it has paid and its token counter.

    `paid_amount + subsidy_amount` never exceeds the plan's price (a CHECK, and the
    household's ledger account limit); `token_count` is OpenPAYGO's last count used.
    """

    __tablename__ = "cizo_kits"
    __table_args__ = (
        CheckConstraint(f"serial ~ '{SERIAL_PATTERN}'", name="serial_format"),
        CheckConstraint(f"status IN ({_in(KitStatus)})", name="status_known"),
        CheckConstraint("operator IN ('flooz', 'tmoney')", name="operator_known"),
        CheckConstraint("price_amount > 0", name="price_positive"),
        CheckConstraint(
            "paid_amount >= 0 AND subsidy_amount >= 0 "
            "AND paid_amount + subsidy_amount <= price_amount",
            name="paid_within_price",
        ),
        CheckConstraint("days_credited >= 0", name="days_not_negative"),
        CheckConstraint("token_count >= 0", name="token_count_not_negative"),
        CheckConstraint("octet_length(msisdn_bidx) = 32", name="msisdn_bidx_size"),
        Index("ix_cizo_kits_msisdn_bidx", "msisdn_bidx"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    serial: Mapped[str] = mapped_column(Text, unique=True)
    company: Mapped[str] = mapped_column(ForeignKey("cizo_companies.code"))
    plan: Mapped[str] = mapped_column(ForeignKey("cizo_plans.code"))
    household_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    msisdn_enc: Mapped[bytes] = mapped_column(LargeBinary)
    msisdn_bidx: Mapped[bytes] = mapped_column(LargeBinary)
    operator: Mapped[str] = mapped_column(Text)
    opaygo_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    starting_code_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # the plan's price when the kit was sold: a later plan never changes a household's debt
    price_amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    subsidy_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    days_credited: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    unlocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Collection(Base):
    """A USSD push Sika sent for a kit under its own unique `reference`."""

    __tablename__ = "cizo_collections"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(CollectionStatus)})", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reference: Mapped[str] = mapped_column(Text, unique=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("cizo_kits.id"))
    provider: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    operator_reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Payment(Base):
    """Money a household paid for a kit, known by the operator's reference.

    The unique (provider, operator_reference) is what makes a duplicated callback, a
    replayed status answer and a statement line all count the same payment once.
    """

    __tablename__ = "cizo_payments"
    __table_args__ = (
        CheckConstraint(f"source IN ({_in(PaymentSource)})", name="source_known"),
        CheckConstraint(f"status IN ({_in(PaymentStatus)})", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "applied_amount >= 0 AND excess_amount >= 0 AND subsidy_amount >= 0 AND days >= 0",
            name="split_not_negative",
        ),
        CheckConstraint(
            "status <> 'confirmed' OR applied_amount + excess_amount = amount",
            name="split_adds_up",
        ),
        Index(
            "ux_cizo_payments_operator_reference",
            "provider",
            "operator_reference",
            unique=True,
        ),
        Index("ix_cizo_payments_kit", "kit_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("cizo_kits.id"))
    provider: Mapped[str] = mapped_column(Text)
    operator_reference: Mapped[str] = mapped_column(Text)
    sika_reference: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("cizo_collections.id"), unique=True, nullable=True
    )
    callback_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    applied_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    excess_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    subsidy_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    days: Mapped[int] = mapped_column(Integer, default=0)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Token(Base):
    """Every OpenPAYGO token issued for a kit, in count order; kept for resending."""

    __tablename__ = "cizo_tokens"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(TokenKind)})", name="kind_known"),
        CheckConstraint("days IS NULL OR (days >= 0 AND days <= 995)", name="days_in_range"),
        CheckConstraint("token ~ '^[0-9]{9}$'", name="token_format"),
        Index("ux_cizo_tokens_kit_count", "kit_id", "count", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kit_id: Mapped[int] = mapped_column(ForeignKey("cizo_kits.id"))
    count: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token: Mapped[str] = mapped_column(Text)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("cizo_payments.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
