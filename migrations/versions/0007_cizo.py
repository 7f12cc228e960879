"""CIZO: solar companies, plans, kits, payments, subsidies and tokens.

Revision ID: 0007_cizo
Revises: 0006_payouts
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_cizo"
down_revision: str | Sequence[str] | None = "0006_payouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
