"""Providers: raw operator callbacks as received.

Revision ID: 0002_providers
Revises: 0001_ledger
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_providers"
down_revision: str | Sequence[str] | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_callbacks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("sika_reference", sa.String(length=128), nullable=True),
        sa.Column("operator_reference", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("parse_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_callbacks")),
    )
    op.create_index(
        "ix_provider_callbacks_reference",
        "provider_callbacks",
        ["provider", "sika_reference"],
    )


def downgrade() -> None:
    op.drop_index("ix_provider_callbacks_reference", table_name="provider_callbacks")
    op.drop_table("provider_callbacks")
