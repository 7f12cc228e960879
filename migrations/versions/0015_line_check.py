"""Payout lines carry a keyed MAC of their fields, checked by the worker before it sends.

`line_mac` is written with each line (payouts.batches.line_mac) and, like the fields it
covers, never changes; lines written before this revision have none until dispatch seals
them, which a partial index keeps to one probe per batch. The line trigger is replaced by
payouts_line_check.sql to guard the new column.

Revision ID: 0015_line_check
Revises: 0014_identity
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision: str = "0015_line_check"
down_revision: str | Sequence[str] | None = "0014_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payout_lines", sa.Column("line_mac", sa.LargeBinary(), nullable=True))
    op.create_check_constraint(
        op.f("ck_payout_lines_line_mac_size"),
        "payout_lines",
        "line_mac IS NULL OR octet_length(line_mac) = 32",
    )
    op.create_index(
        "ix_payout_lines_unsealed",
        "payout_lines",
        ["batch_id"],
        unique=False,
        postgresql_where=sa.text("line_mac IS NULL"),
    )
    run_sql_file("payouts_line_check.sql")


def downgrade() -> None:
    # the trigger function as payouts_line_transitions.sql defines it
    rules = (SQL_DIR / "payouts_line_transitions.sql").read_text(encoding="utf-8")
    start = rules.index("CREATE OR REPLACE FUNCTION payout_lines_forward_only()")
    end = rules.index("$$;", rules.index("LANGUAGE plpgsql AS $$", start)) + len("$$;")
    op.get_bind().exec_driver_sql(rules[start:end])
    op.drop_index(
        "ix_payout_lines_unsealed",
        table_name="payout_lines",
        postgresql_where=sa.text("line_mac IS NULL"),
    )
    op.drop_constraint(op.f("ck_payout_lines_line_mac_size"), "payout_lines", type_="check")
    op.drop_column("payout_lines", "line_mac")
