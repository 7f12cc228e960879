"""CIZO: solar companies, plans, kits, collections, payments and tokens.

Revision ID: 0007_cizo
Revises: 0006_payouts
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_cizo"
down_revision: str | Sequence[str] | None = "0006_payouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CODE = "^[A-Z0-9][A-Z0-9_-]{1,31}$"
SERIAL = "^[A-Z0-9][A-Z0-9-]{2,39}$"
OPERATORS = "operator IN ('flooz', 'tmoney')"


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "cizo_programme",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("monthly_subsidy_amount", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_months", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_cizo_programme_single_row")),
        sa.CheckConstraint(
            "monthly_subsidy_amount >= 0",
            name=op.f("ck_cizo_programme_monthly_subsidy_not_negative"),
        ),
        sa.CheckConstraint(
            "subsidy_months >= 0", name=op.f("ck_cizo_programme_subsidy_months_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cizo_programme")),
    )
    # the chèque solaire as announced in March 2019: 2,000 FCFA a month for 36 months
    op.execute(
        "INSERT INTO cizo_programme (id, monthly_subsidy_amount, subsidy_months) "
        "VALUES (1, 2000, 36)"
    )
    op.create_table(
        "cizo_companies",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("msisdn_enc", sa.LargeBinary(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.CheckConstraint(f"code ~ '{CODE}'", name=op.f("ck_cizo_companies_code_format")),
        sa.CheckConstraint(OPERATORS, name=op.f("ck_cizo_companies_operator_known")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_cizo_companies_created_by_agents")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_cizo_companies")),
    )
    op.create_table(
        "cizo_plans",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("company", sa.Text(), nullable=False),
        sa.Column("deposit_amount", sa.BigInteger(), nullable=False),
        sa.Column("per_day_amount", sa.BigInteger(), nullable=False),
        sa.Column("term_days", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.CheckConstraint(f"code ~ '{CODE}'", name=op.f("ck_cizo_plans_code_format")),
        sa.CheckConstraint("deposit_amount >= 0", name=op.f("ck_cizo_plans_deposit_not_negative")),
        sa.CheckConstraint("per_day_amount > 0", name=op.f("ck_cizo_plans_per_day_positive")),
        sa.CheckConstraint("term_days > 0", name=op.f("ck_cizo_plans_term_positive")),
        sa.ForeignKeyConstraint(
            ["company"], ["cizo_companies.code"], name=op.f("fk_cizo_plans_company_cizo_companies")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_cizo_plans_created_by_agents")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_cizo_plans")),
    )
    op.create_table(
        "cizo_kits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("serial", sa.Text(), nullable=False),
        sa.Column("company", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("household_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("msisdn_enc", sa.LargeBinary(), nullable=False),
        sa.Column("msisdn_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("opaygo_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("starting_code_enc", sa.LargeBinary(), nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_amount", sa.BigInteger(), nullable=False),
        sa.Column("days_credited", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.CheckConstraint(f"serial ~ '{SERIAL}'", name=op.f("ck_cizo_kits_serial_format")),
        sa.CheckConstraint(
            "status IN ('awaiting_deposit', 'active', 'unlocked')",
            name=op.f("ck_cizo_kits_status_known"),
        ),
        sa.CheckConstraint(OPERATORS, name=op.f("ck_cizo_kits_operator_known")),
        sa.CheckConstraint("price_amount > 0", name=op.f("ck_cizo_kits_price_positive")),
        sa.CheckConstraint(
            "paid_amount >= 0 AND subsidy_amount >= 0 "
            "AND paid_amount + subsidy_amount <= price_amount",
            name=op.f("ck_cizo_kits_paid_within_price"),
        ),
        sa.CheckConstraint("days_credited >= 0", name=op.f("ck_cizo_kits_days_not_negative")),
        sa.CheckConstraint("token_count >= 0", name=op.f("ck_cizo_kits_token_count_not_negative")),
        sa.CheckConstraint(
            "octet_length(msisdn_bidx) = 32", name=op.f("ck_cizo_kits_msisdn_bidx_size")
        ),
        sa.ForeignKeyConstraint(
            ["company"], ["cizo_companies.code"], name=op.f("fk_cizo_kits_company_cizo_companies")
        ),
        sa.ForeignKeyConstraint(
            ["plan"], ["cizo_plans.code"], name=op.f("fk_cizo_kits_plan_cizo_plans")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_cizo_kits_created_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cizo_kits")),
        sa.UniqueConstraint("serial", name=op.f("uq_cizo_kits_serial")),
    )
    op.create_index("ix_cizo_kits_msisdn_bidx", "cizo_kits", ["msisdn_bidx"])
    op.create_table(
        "cizo_collections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("kit_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("operator_reference", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'pending', 'unknown', 'succeeded', 'failed')",
            name=op.f("ck_cizo_collections_status_known"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_cizo_collections_amount_positive")),
        sa.ForeignKeyConstraint(
            ["kit_id"], ["cizo_kits.id"], name=op.f("fk_cizo_collections_kit_id_cizo_kits")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["agents.id"], name=op.f("fk_cizo_collections_requested_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cizo_collections")),
        sa.UniqueConstraint("reference", name=op.f("uq_cizo_collections_reference")),
    )
    op.create_table(
        "cizo_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kit_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("operator_reference", sa.Text(), nullable=False),
        sa.Column("sika_reference", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("collection_id", sa.BigInteger(), nullable=True),
        sa.Column("callback_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("applied_amount", sa.BigInteger(), nullable=False),
        sa.Column("excess_amount", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_amount", sa.BigInteger(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "source IN ('push', 'merchant')", name=op.f("ck_cizo_payments_source_known")
        ),
        sa.CheckConstraint(
            "status IN ('unconfirmed', 'confirmed')", name=op.f("ck_cizo_payments_status_known")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_cizo_payments_amount_positive")),
        sa.CheckConstraint(
            "applied_amount >= 0 AND excess_amount >= 0 AND subsidy_amount >= 0 AND days >= 0",
            name=op.f("ck_cizo_payments_split_not_negative"),
        ),
        sa.CheckConstraint(
            "status <> 'confirmed' OR applied_amount + excess_amount = amount",
            name=op.f("ck_cizo_payments_split_adds_up"),
        ),
        sa.ForeignKeyConstraint(
            ["kit_id"], ["cizo_kits.id"], name=op.f("fk_cizo_payments_kit_id_cizo_kits")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["cizo_collections.id"],
            name=op.f("fk_cizo_payments_collection_id_cizo_collections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cizo_payments")),
        sa.UniqueConstraint("collection_id", name=op.f("uq_cizo_payments_collection_id")),
    )
    op.create_index(
        "ux_cizo_payments_operator_reference",
        "cizo_payments",
        ["provider", "operator_reference"],
        unique=True,
    )
    op.create_index("ix_cizo_payments_kit", "cizo_payments", ["kit_id", "paid_at"])
    op.create_table(
        "cizo_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kit_id", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "kind IN ('add_time', 'set_time', 'disable_payg')",
            name=op.f("ck_cizo_tokens_kind_known"),
        ),
        sa.CheckConstraint(
            "days IS NULL OR (days >= 0 AND days <= 995)", name=op.f("ck_cizo_tokens_days_in_range")
        ),
        sa.CheckConstraint("token ~ '^[0-9]{9}$'", name=op.f("ck_cizo_tokens_token_format")),
        sa.ForeignKeyConstraint(
            ["kit_id"], ["cizo_kits.id"], name=op.f("fk_cizo_tokens_kit_id_cizo_kits")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["cizo_payments.id"],
            name=op.f("fk_cizo_tokens_payment_id_cizo_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cizo_tokens")),
    )
    op.create_index("ux_cizo_tokens_kit_count", "cizo_tokens", ["kit_id", "count"], unique=True)


def downgrade() -> None:
    op.drop_table("cizo_tokens")
    op.drop_table("cizo_payments")
    op.drop_table("cizo_collections")
    op.drop_table("cizo_kits")
    op.drop_table("cizo_plans")
    op.drop_table("cizo_companies")
    op.drop_table("cizo_programme")
