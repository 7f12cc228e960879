"""Reconciliation: runs, breaks with their evidence, exceptions and operator fee rules.

Revision ID: 0008_reconciliation
Revises: 0007_cizo
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sqlfile import run_sql_file

revision: str = "0008_reconciliation"
down_revision: str | Sequence[str] | None = "0007_cizo"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recon_fee_rules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("fee_fixed", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "fee_fixed >= 0 AND fee_bps >= 0 AND fee_bps <= 10000",
            name=op.f("ck_recon_fee_rules_fee_sane"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["agents.id"], name=op.f("fk_recon_fee_rules_created_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_fee_rules")),
        sa.UniqueConstraint("provider", "valid_from", name="uq_recon_fee_rules_provider"),
    )
    op.create_table(
        "recon_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("statement_sha256", sa.Text(), nullable=False),
        sa.Column("statement_lines", sa.Integer(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("amounts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("float_ledger", sa.BigInteger(), nullable=False),
        sa.Column("float_provider", sa.BigInteger(), nullable=True),
        sa.Column("auto_resolved", sa.Integer(), nullable=False),
        sa.Column("open_exceptions", sa.Integer(), nullable=False),
        sa.Column("report_dir", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "provider ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_recon_runs_provider_named")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_recon_runs_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_runs")),
    )
    op.create_index(
        "ux_recon_runs_current",
        "recon_runs",
        ["provider", "day"],
        unique=True,
        postgresql_where=sa.text("superseded_at IS NULL"),
    )
    op.create_table(
        "recon_exceptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("payout_line_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("sika_reference", sa.Text(), nullable=True),
        sa.Column("operator_reference", sa.Text(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.BigInteger(), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IS NULL OR action IN ('acknowledge', 'post', 'void', 'book_fee',"
            " 'to_suspense')",
            name=op.f("ck_recon_exceptions_action_known"),
        ),
        sa.CheckConstraint(
            "category IN ('missing_at_provider', 'missing_in_ledger', 'amount_mismatch',"
            " 'status_mismatch', 'duplicate_at_provider',"
            " 'reversed_after_success', 'aged_pending', 'fee_mismatch', 'float_mismatch')",
            name=op.f("ck_recon_exceptions_category_known"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'awaiting_approval', 'resolved', 'cleared')",
            name=op.f("ck_recon_exceptions_status_known"),
        ),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by <> proposed_by",
            name=op.f("ck_recon_exceptions_four_eyes"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["agents.id"], name=op.f("fk_recon_exceptions_approved_by_agents")
        ),
        sa.ForeignKeyConstraint(
            ["payout_line_id"],
            ["payout_lines.id"],
            name=op.f("fk_recon_exceptions_payout_line_id_payout_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["agents.id"], name=op.f("fk_recon_exceptions_proposed_by_agents")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name=op.f("fk_recon_exceptions_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_exceptions")),
        sa.UniqueConstraint("provider", "day", "category", "key", name="uq_recon_exceptions_break"),
    )
    op.create_index(
        "ix_recon_exceptions_open",
        "recon_exceptions",
        ["provider", "day"],
        unique=False,
        postgresql_where=sa.text("status IN ('open', 'awaiting_approval')"),
    )
    op.create_table(
        "recon_breaks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("payout_line_id", sa.BigInteger(), nullable=True),
        sa.Column("sika_reference", sa.Text(), nullable=True),
        sa.Column("operator_reference", sa.Text(), nullable=True),
        sa.Column("statement_status", sa.Text(), nullable=True),
        sa.Column("sika_status", sa.Text(), nullable=True),
        sa.Column("statement_amount", sa.BigInteger(), nullable=True),
        sa.Column("ledger_amount", sa.BigInteger(), nullable=True),
        sa.Column("statement_fee", sa.BigInteger(), nullable=True),
        sa.Column("expected_fee", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("exception_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "category IN ('missing_at_provider', 'missing_in_ledger', 'amount_mismatch',"
            " 'status_mismatch', 'duplicate_at_provider',"
            " 'reversed_after_success', 'aged_pending', 'fee_mismatch')",
            name=op.f("ck_recon_breaks_category_known"),
        ),
        sa.CheckConstraint(
            "resolution IN ('open', 'posted', 'voided', 'suspense', 'accepted')",
            name=op.f("ck_recon_breaks_resolution_known"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_recon_breaks_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["recon_exceptions.id"],
            name=op.f("fk_recon_breaks_exception_id_recon_exceptions"),
        ),
        sa.ForeignKeyConstraint(
            ["payout_line_id"],
            ["payout_lines.id"],
            name=op.f("fk_recon_breaks_payout_line_id_payout_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name=op.f("fk_recon_breaks_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_breaks")),
    )
    op.create_index("ix_recon_breaks_run", "recon_breaks", ["run_id", "category"], unique=False)
    run_sql_file("recon_evidence.sql")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS recon_runs_keep ON recon_runs")
    op.execute("DROP TRIGGER IF EXISTS recon_breaks_immutable ON recon_breaks")
    op.execute("DROP FUNCTION IF EXISTS recon_runs_keep()")
    op.execute("DROP FUNCTION IF EXISTS recon_breaks_immutable()")
    op.drop_index("ix_recon_breaks_run", table_name="recon_breaks")
    op.drop_table("recon_breaks")
    op.drop_index(
        "ix_recon_exceptions_open",
        table_name="recon_exceptions",
        postgresql_where=sa.text("status IN ('open', 'awaiting_approval')"),
    )
    op.drop_table("recon_exceptions")
    op.drop_index(
        "ux_recon_runs_current",
        table_name="recon_runs",
        postgresql_where=sa.text("superseded_at IS NULL"),
    )
    op.drop_table("recon_runs")
    op.drop_table("recon_fee_rules")
