"""Agents, roles and the append-only audit log.

Revision ID: 0003_agents
Revises: 0002_providers
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003_agents"
down_revision: str | Sequence[str] | None = "0002_providers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
