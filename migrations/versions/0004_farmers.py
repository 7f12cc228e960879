"""AgriPME farmer registry with encrypted personal data.

Revision ID: 0004_farmers
Revises: 0003_agents
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004_farmers"
down_revision: str | Sequence[str] | None = "0003_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
