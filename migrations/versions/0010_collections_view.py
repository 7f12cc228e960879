"""The collections every programme has counted, as one view reconciliation matches against.

Revision ID: 0010_collections_view
Revises: 0009_ledger_reserve
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_collections_view"
down_revision: str | Sequence[str] | None = "0009_ledger_reserve"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A programme that takes money by mobile money adds its confirmed payments here
    # (UNION ALL), so reconciliation places them without knowing the programme.
    op.execute(
        "CREATE VIEW confirmed_collections AS"
        " SELECT provider, operator_reference, amount FROM cizo_payments"
        " WHERE status = 'confirmed'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS confirmed_collections")
