"""Pre-flight account checks: look-ups kept (`preflight_lookups`), verdicts on lines.

Before a batch is signed, each line's wallet is looked up at its operator. Each look-up
is kept in `preflight_lookups` (the cache, and what lets an interrupted pre-flight
resume): the number as a blind index, the holder's name encrypted, the status, verdict
and score in clear; appended, never changed. Payout lines gain their verdict
(`preflight`, `preflight_score`), why they are out of the manifest (`held_out`), and who
put a held line back in and why (`included_by`, `include_reason`).

A batch may now be signed by its maker more than once (each manifest the maker signed is
kept: a re-run of the pre-flight or an inclusion changes it), and keeps the maker's
pre-flight and include requests; approval, dispatch and cancel stay once per batch. The
line and batch rules are in payouts_preflight.sql.

Revision ID: 0018_preflight
Revises: 0017_ledger_proposals
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision: str = "0018_preflight"
down_revision: str | Sequence[str] | None = "0017_ledger_proposals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERDICTS = (
    "'ok', 'name_mismatch', 'not_registered', 'inactive', 'locked', 'at_balance_cap',"
    " 'ported', 'unreachable', 'skipped'"
)
STATUSES = "'active', 'inactive', 'locked', 'at_balance_cap', 'not_registered', 'unknown'"
STEPS = "'submit', 'approve', 'cancel', 'preflight', 'include'"
OLD_STEPS = "'submit', 'approve', 'cancel'"
# the steps a batch takes once; the maker's submit, pre-flight and include may repeat
ONCE = sa.text("step NOT IN ('submit', 'preflight', 'include')")


def upgrade() -> None:
    op.create_table(
        "preflight_lookups",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("msisdn_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("holder_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "operator ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_preflight_lookups_operator_named")
        ),
        sa.CheckConstraint(
            "octet_length(msisdn_bidx) = 32", name=op.f("ck_preflight_lookups_msisdn_bidx_size")
        ),
        sa.CheckConstraint(
            f"status IN ({STATUSES})", name=op.f("ck_preflight_lookups_status_known")
        ),
        sa.CheckConstraint(
            f"verdict IN ({VERDICTS})", name=op.f("ck_preflight_lookups_verdict_known")
        ),
        sa.CheckConstraint(
            "score IS NULL OR score BETWEEN 0 AND 100",
            name=op.f("ck_preflight_lookups_score_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preflight_lookups")),
    )
    op.create_index(
        "ix_preflight_lookups_number",
        "preflight_lookups",
        ["operator", "msisdn_bidx", "looked_up_at"],
        unique=False,
    )

    op.add_column("payout_lines", sa.Column("preflight", sa.Text(), nullable=True))
    op.add_column("payout_lines", sa.Column("preflight_score", sa.SmallInteger(), nullable=True))
    op.add_column("payout_lines", sa.Column("held_out", sa.Text(), nullable=True))
    op.add_column("payout_lines", sa.Column("included_by", sa.BigInteger(), nullable=True))
    op.add_column("payout_lines", sa.Column("include_reason", sa.Text(), nullable=True))
    op.create_foreign_key(
        op.f("fk_payout_lines_included_by_agents"),
        "payout_lines",
        "agents",
        ["included_by"],
        ["id"],
    )
    op.create_check_constraint(
        op.f("ck_payout_lines_preflight_known"),
        "payout_lines",
        f"preflight IS NULL OR preflight IN ({VERDICTS})",
    )
    op.create_check_constraint(
        op.f("ck_payout_lines_held_out_known"),
        "payout_lines",
        f"held_out IS NULL OR held_out IN ({VERDICTS})",
    )
    op.create_check_constraint(
        op.f("ck_payout_lines_preflight_score_range"),
        "payout_lines",
        "preflight_score IS NULL OR preflight_score BETWEEN 0 AND 100",
    )
    op.create_check_constraint(
        op.f("ck_payout_lines_inclusion_whole"),
        "payout_lines",
        "(included_by IS NULL) = (include_reason IS NULL)"
        " AND (included_by IS NULL OR held_out IS NULL)",
    )

    op.drop_index("ux_payout_batch_requests_step", table_name="payout_batch_requests")
    op.create_index(
        "ux_payout_batch_requests_step",
        "payout_batch_requests",
        ["batch_id", "step"],
        unique=True,
        postgresql_where=ONCE,
    )
    op.drop_constraint(
        op.f("ck_payout_batch_requests_step_known"), "payout_batch_requests", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_payout_batch_requests_step_known"),
        "payout_batch_requests",
        f"step IN ({STEPS})",
    )

    run_sql_file("payouts_preflight.sql")
    # look-ups are evidence of what the operator said: appended, never changed
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sika_app') THEN
                REVOKE UPDATE, DELETE, TRUNCATE ON preflight_lookups FROM sika_app;
            END IF;
        END $$
        """
    )


def _restore(header: str) -> None:
    """Re-create a trigger function as payouts_batch_requests.sql (revision 0016) has it."""
    rules = (SQL_DIR / "payouts_batch_requests.sql").read_text(encoding="utf-8")
    start = rules.index(header)
    end = rules.index("$$;", rules.index("LANGUAGE plpgsql AS $$", start)) + len("$$;")
    body = rules[start:end]
    if not body.startswith("CREATE OR REPLACE"):
        body = "CREATE OR REPLACE " + body.removeprefix("CREATE ")
    op.get_bind().exec_driver_sql(body)


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM payout_lines WHERE held_out IS NOT NULL)
               OR EXISTS (SELECT 1 FROM payout_batch_requests
                          WHERE step IN ('preflight', 'include'))
               OR EXISTS (SELECT 1 FROM payout_batch_requests WHERE step = 'submit'
                          GROUP BY batch_id HAVING count(*) > 1) THEN
                RAISE EXCEPTION USING MESSAGE = 'batches have lines held out by a pre-flight'
                    ' or manifests signed again, which the older schema cannot express,'
                    ' so 0018 stays';
            END IF;
        END $$
        """
    )
    _restore("CREATE OR REPLACE FUNCTION payout_lines_forward_only()")
    _restore("CREATE FUNCTION payout_batches_forward_only()")
    op.drop_constraint(
        op.f("ck_payout_batch_requests_step_known"), "payout_batch_requests", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_payout_batch_requests_step_known"),
        "payout_batch_requests",
        f"step IN ({OLD_STEPS})",
    )
    op.drop_index(
        "ux_payout_batch_requests_step",
        table_name="payout_batch_requests",
        postgresql_where=ONCE,
    )
    op.create_index(
        "ux_payout_batch_requests_step",
        "payout_batch_requests",
        ["batch_id", "step"],
        unique=True,
    )
    op.drop_constraint(op.f("ck_payout_lines_inclusion_whole"), "payout_lines", type_="check")
    op.drop_constraint(op.f("ck_payout_lines_preflight_score_range"), "payout_lines", type_="check")
    op.drop_constraint(op.f("ck_payout_lines_held_out_known"), "payout_lines", type_="check")
    op.drop_constraint(op.f("ck_payout_lines_preflight_known"), "payout_lines", type_="check")
    op.drop_constraint(
        op.f("fk_payout_lines_included_by_agents"), "payout_lines", type_="foreignkey"
    )
    for column in ("include_reason", "included_by", "held_out", "preflight_score", "preflight"):
        op.drop_column("payout_lines", column)
    op.drop_index("ix_preflight_lookups_number", table_name="preflight_lookups")
    op.drop_table("preflight_lookups")
