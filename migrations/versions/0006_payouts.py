"""Payout batches and lines (forward-only states), AgriPME seasons.

Revision ID: 0006_payouts
Revises: 0005_outbox
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sqlfile import run_sql_file

revision: str = "0006_payouts"
down_revision: str | Sequence[str] | None = "0005_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agripme_seasons",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("budget", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$'", name=op.f("ck_agripme_seasons_code_format")
        ),
        sa.CheckConstraint("budget > 0", name=op.f("ck_agripme_seasons_budget_positive")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_agripme_seasons_created_by_agents")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_agripme_seasons")),
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("programme", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("debit_account", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("notice", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("maker_id", sa.BigInteger(), nullable=False),
        sa.Column("maker_signature", sa.Text(), nullable=False),
        sa.Column("approver_id", sa.BigInteger(), nullable=True),
        sa.Column("approver_signature", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'approved', 'dispatched', 'completed')",
            name=op.f("ck_payout_batches_status_known"),
        ),
        sa.CheckConstraint(
            "approver_id IS NULL OR approver_id <> maker_id",
            name=op.f("ck_payout_batches_four_eyes"),
        ),
        sa.CheckConstraint(
            "total >= 0 AND lines >= 0", name=op.f("ck_payout_batches_totals_positive")
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"], ["agents.id"], name=op.f("fk_payout_batches_approver_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["maker_id"], ["agents.id"], name=op.f("fk_payout_batches_maker_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    op.create_table(
        "payout_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("payee", sa.Text(), nullable=False),
        sa.Column("msisdn_enc", sa.LargeBinary(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("pending_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("operator_reference", sa.Text(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("check_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flagged", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "operator ~ '^[a-z][a-z0-9_]*$'",
            name=op.f("ck_payout_lines_operator_named"),
        ),
        sa.CheckConstraint(
            "status IN ('created', 'queued', 'submitted', 'pending', 'unknown',"
            " 'succeeded', 'failed')",
            name=op.f("ck_payout_lines_status_known"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payout_lines_amount_positive")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_payout_lines_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_lines_batch_id_payout_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_lines")),
    )
    op.create_index("ix_payout_lines_batch", "payout_lines", ["batch_id", "seq"], unique=True)
    op.create_index(
        "ix_payout_lines_open",
        "payout_lines",
        ["batch_id"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('succeeded', 'failed')"),
    )
    op.create_index(
        "ix_payout_lines_operator_reference", "payout_lines", ["operator_reference"], unique=False
    )
    op.create_index("ix_payout_lines_reference", "payout_lines", ["reference"], unique=True)
    op.create_index(
        "ux_payout_lines_once_per_scope",
        "payout_lines",
        ["scope", "payee"],
        unique=True,
        postgresql_where=sa.text("status <> 'failed'"),
    )
    op.create_table(
        "payout_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("pending_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("operator_reference", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "archived_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["line_id"], ["payout_lines.id"], name=op.f("fk_payout_attempts_line_id_payout_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_attempts")),
        sa.UniqueConstraint("reference", name=op.f("uq_payout_attempts_reference")),
    )
    op.create_index(
        "ix_payout_attempts_line", "payout_attempts", ["line_id", "attempt"], unique=True
    )
    run_sql_file("payouts_line_transitions.sql")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS payout_lines_no_delete ON payout_lines")
    op.execute("DROP TRIGGER IF EXISTS payout_lines_forward_only ON payout_lines")
    op.execute("DROP FUNCTION IF EXISTS payout_lines_no_delete()")
    op.execute("DROP FUNCTION IF EXISTS payout_lines_forward_only()")
    op.drop_index("ix_payout_attempts_line", table_name="payout_attempts")
    op.drop_table("payout_attempts")
    op.drop_index(
        "ux_payout_lines_once_per_scope",
        table_name="payout_lines",
        postgresql_where=sa.text("status <> 'failed'"),
    )
    op.drop_index("ix_payout_lines_reference", table_name="payout_lines")
    op.drop_index("ix_payout_lines_operator_reference", table_name="payout_lines")
    op.drop_index(
        "ix_payout_lines_open",
        table_name="payout_lines",
        postgresql_where=sa.text("status NOT IN ('succeeded', 'failed')"),
    )
    op.drop_index("ix_payout_lines_batch", table_name="payout_lines")
    op.drop_table("payout_lines")
    op.drop_table("payout_batches")
    op.drop_table("agripme_seasons")
