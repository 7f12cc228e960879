"""Ledger: accounts, transfers, seals, and the triggers that keep them honest.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.sqlfile import run_sql_file

revision: str = "0001_ledger"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    run_sql_file("ledger_001_tables.sql")
    run_sql_file("ledger_002_rules.sql")
    run_sql_file("ledger_003_functions.sql")


def downgrade() -> None:
    # Dropping is the only way out of an append-only table; it is a deliberate act.
    op.execute("DROP FUNCTION IF EXISTS ledger_submit CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_limit_effects CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_fail_broken_chains CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_expire CASCADE")
    op.execute("DROP TABLE IF EXISTS ledger_seals, ledger_transfers, ledger_accounts CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_apply_transfers CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_accounts_guard CASCADE")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change CASCADE")
