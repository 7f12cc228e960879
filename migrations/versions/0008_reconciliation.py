"""Reconciliation: runs, statement lines, breaks and exceptions.

Revision ID: 0008_reconciliation
Revises: 0007_cizo
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_reconciliation"
down_revision: str | Sequence[str] | None = "0007_cizo"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
