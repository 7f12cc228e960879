"""Ledger: a payout batch reserved by one INSERT (ledger_reserve), a statement trigger
that sums rows resolving no pending transfer in one pass, and a cheaper spelling of the
transfer-id CHECK.

Revision ID: 0009_ledger_reserve
Revises: 0008_reconciliation
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision: str = "0009_ledger_reserve"
down_revision: str | Sequence[str] | None = "0008_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    run_sql_file("ledger_004_reserve.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_reserve(text[], text, text, bigint[], integer, integer)")
    op.execute("DROP FUNCTION ledger_reserve_would_breach(bigint, bigint, bigint[])")
    # ledger_002's trigger function, as that file defines it
    rules = (SQL_DIR / "ledger_002_rules.sql").read_text(encoding="utf-8")
    start = rules.index("CREATE FUNCTION ledger_apply_transfers()")
    end = rules.index("$$;", start) + len("$$;")
    op.get_bind().exec_driver_sql("CREATE OR REPLACE " + rules[start:end].removeprefix("CREATE "))
    op.get_bind().exec_driver_sql(
        "ALTER TABLE ledger_transfers DROP CONSTRAINT ck_ledger_transfers_id_format,"
        " ADD CONSTRAINT ck_ledger_transfers_id_format"
        " CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$')"
    )
