"""Ledger: ledger_move, the one-statement path for any batch of plain transfers between two
accounts (single transfers included); ledger_reserve becomes a move of pending transfers.

Revision ID: 0011_ledger_move
Revises: 0010_collections_view
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision: str = "0011_ledger_move"
down_revision: str | Sequence[str] | None = "0010_collections_view"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    run_sql_file("ledger_005_move.sql")


def downgrade() -> None:
    # ledger_reserve as ledger_004 defines it, then the function it no longer needs
    reserve = (SQL_DIR / "ledger_004_reserve.sql").read_text(encoding="utf-8")
    start = reserve.index("CREATE FUNCTION ledger_reserve(")
    end = reserve.index("$$;", reserve.index("LANGUAGE plpgsql AS $$", start)) + len("$$;")
    op.get_bind().exec_driver_sql("CREATE OR REPLACE " + reserve[start:end].removeprefix("CREATE "))
    op.execute(
        "DROP FUNCTION ledger_move(text[], text, text, bigint[], text, integer, integer)"
    )
