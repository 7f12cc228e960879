"""Bounds on amounts and text, enforced by CHECK constraints; encrypted callback bodies.

Revision ID: 0012_input_bounds
Revises: 0011_ledger_move
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0012_input_bounds"
down_revision: str | Sequence[str] | None = "0011_ledger_move"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
