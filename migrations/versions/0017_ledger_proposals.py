"""Manual ledger entries need a maker and a different approver: `ledger_proposals`.

`sika ledger transfer/post/void` no longer write to the ledger: a maker's signed request
becomes a proposal, kept whole with its signature, and `sika ledger approve` by another
agent executes it. The rules (a decision is final, what was signed never changes) are in
ledger_006_proposals.sql; the four-eyes rule is a CHECK.

Revision ID: 0017_ledger_proposals
Revises: 0016_batch_requests
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sqlfile import run_sql_file

revision: str = "0017_ledger_proposals"
down_revision: str | Sequence[str] | None = "0016_batch_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'transfer', 'post', 'void'"
STATUSES = "'proposed', 'executed', 'refused', 'rejected'"


def upgrade() -> None:
    op.create_table(
        "ledger_proposals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("transfer_id", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("arguments", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.BigInteger(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_ledger_proposals_kind_known")),
        sa.CheckConstraint(
            f"status IN ({STATUSES})", name=op.f("ck_ledger_proposals_status_known")
        ),
        sa.CheckConstraint(
            "command = 'ledger.' || kind", name=op.f("ck_ledger_proposals_command_of_kind")
        ),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> proposed_by",
            name=op.f("ck_ledger_proposals_four_eyes"),
        ),
        sa.CheckConstraint(
            "(status = 'proposed') = (decided_by IS NULL)"
            " AND (decided_by IS NULL) = (decided_at IS NULL)",
            name=op.f("ck_ledger_proposals_decision_whole"),
        ),
        sa.CheckConstraint(
            "(status IN ('executed', 'refused')) = (result IS NOT NULL)",
            name=op.f("ck_ledger_proposals_result_of_approval"),
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["agents.id"], name=op.f("fk_ledger_proposals_proposed_by_agents")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["agents.id"], name=op.f("fk_ledger_proposals_decided_by_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_proposals")),
        sa.UniqueConstraint("request_id", name=op.f("uq_ledger_proposals_request_id")),
    )
    op.create_index(
        "ux_ledger_proposals_open",
        "ledger_proposals",
        ["transfer_id"],
        unique=True,
        postgresql_where=sa.text("status = 'proposed'"),
    )
    run_sql_file("ledger_006_proposals.sql")
    # sika_app (app_role_003_grants.sql's defaults: SELECT, INSERT, UPDATE) decides a
    # proposal, and may change nothing else of it
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_app') THEN
                REVOKE UPDATE, DELETE, TRUNCATE ON ledger_proposals FROM sika_app;
                GRANT UPDATE (status, result, decided_by, decided_at)
                    ON ledger_proposals TO sika_app;
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM ledger_proposals WHERE status = 'proposed') THEN
                RAISE EXCEPTION USING MESSAGE = 'manual ledger entries await approval,'
                    ' which the older schema cannot express: approve or reject them first';
            END IF;
        END $$
        """
    )
    op.execute("DROP TRIGGER ledger_proposals_forward_only ON ledger_proposals")
    op.execute("DROP FUNCTION ledger_proposals_forward_only()")
    op.drop_index("ux_ledger_proposals_open", table_name="ledger_proposals")
    op.drop_table("ledger_proposals")
