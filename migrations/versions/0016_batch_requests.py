"""Batches keep the signed requests that decided them, and can be cancelled before dispatch.

The maker's and the approver's signatures on a manifest become signed requests
(`<programme>.batch.submit` and `.approve`, naming the batch and its manifest), kept whole
in `payout_batch_requests` so dispatch verifies them again against the lines; the bare
signature columns go. A batch not yet dispatched may be cancelled (`cancelled_at`), which
fails its lines with the reason 'cancelled' and frees their payees. The rules, the line
step and a batch's own forward-only life, are in payouts_batch_requests.sql.

A batch created or approved before this revision has no signed requests: it cannot be
approved or dispatched any more and is cancelled (`sika <programme> batch cancel N`) and
built again.

Revision ID: 0016_batch_requests
Revises: 0015_line_check
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sqlfile import run_sql_file

revision: str = "0016_batch_requests"
down_revision: str | Sequence[str] | None = "0015_line_check"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'created', 'approved', 'dispatched', 'completed', 'cancelled'"
OLD_STATUSES = "'created', 'approved', 'dispatched', 'completed'"
STEPS = "'submit', 'approve', 'cancel'"


def upgrade() -> None:
    op.create_table(
        "payout_batch_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("arguments", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"step IN ({STEPS})", name=op.f("ck_payout_batch_requests_step_known")),
        sa.CheckConstraint(
            "command ~ ('[.]batch[.]' || step || '$')",
            name=op.f("ck_payout_batch_requests_command_of_step"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_batch_requests_batch_id_payout_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_payout_batch_requests_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batch_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_payout_batch_requests_request_id")),
    )
    op.create_index(
        "ux_payout_batch_requests_step",
        "payout_batch_requests",
        ["batch_id", "step"],
        unique=True,
    )

    op.add_column(
        "payout_batches", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_constraint(op.f("ck_payout_batches_status_known"), "payout_batches", type_="check")
    op.create_check_constraint(
        op.f("ck_payout_batches_status_known"), "payout_batches", f"status IN ({STATUSES})"
    )
    op.create_check_constraint(
        op.f("ck_payout_batches_cancel_has_time"),
        "payout_batches",
        "(status = 'cancelled') = (cancelled_at IS NOT NULL)",
    )
    # signatures over the bare manifest: dispatch now verifies signed requests instead
    op.drop_column("payout_batches", "maker_signature")
    op.drop_column("payout_batches", "approver_signature")

    run_sql_file("payouts_batch_requests.sql")
    # evidence, like the audit log: Sika's role appends and reads, never changes
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_app') THEN
                REVOKE UPDATE, DELETE, TRUNCATE ON payout_batch_requests FROM sika_app;
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM payout_batches WHERE status = 'cancelled') THEN
                RAISE EXCEPTION USING MESSAGE = 'cancelled batches exist, which the older'
                    ' schema cannot express, so 0016 stays';
            END IF;
        END $$
        """
    )
    op.execute("DROP TRIGGER payout_batches_forward_only ON payout_batches")
    op.execute("DROP FUNCTION payout_batches_forward_only()")
    # the line rule as revision 0015 left it
    run_sql_file("payouts_line_check.sql")
    # the older columns come back empty: a batch not yet dispatched must be built again
    op.add_column(
        "payout_batches",
        sa.Column("maker_signature", sa.Text(), nullable=False, server_default=""),
    )
    op.alter_column("payout_batches", "maker_signature", server_default=None)
    op.add_column("payout_batches", sa.Column("approver_signature", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_payout_batches_cancel_has_time"), "payout_batches", type_="check")
    op.drop_constraint(op.f("ck_payout_batches_status_known"), "payout_batches", type_="check")
    op.create_check_constraint(
        op.f("ck_payout_batches_status_known"), "payout_batches", f"status IN ({OLD_STATUSES})"
    )
    op.drop_column("payout_batches", "cancelled_at")
    op.drop_index("ux_payout_batch_requests_step", table_name="payout_batch_requests")
    op.drop_table("payout_batch_requests")
