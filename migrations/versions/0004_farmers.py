"""AgriPME farmer registry with encrypted personal data.

Revision ID: 0004_farmers
Revises: 0003_agents
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlfile import run_sql_file

revision: str = "0004_farmers"
down_revision: str | Sequence[str] | None = "0003_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REGIONS = "'Maritime', 'Plateaux', 'Centrale', 'Kara', 'Savanes'"


def upgrade() -> None:
    op.create_table(
        "farmers",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("national_id_enc", sa.LargeBinary(), nullable=False),
        sa.Column("national_id_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("first_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("last_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=False),
        sa.Column("phone_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("region", sa.Text(), nullable=False),
        sa.Column("prefecture", sa.Text(), nullable=False),
        sa.Column("canton", sa.Text(), nullable=False),
        sa.Column("village", sa.Text(), nullable=False),
        sa.Column("crop", sa.Text(), nullable=False),
        sa.Column("area_m2", sa.BigInteger(), nullable=False),
        sa.Column("operator", sa.Text(), nullable=True),
        sa.Column("record_digest", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(f"region IN ({REGIONS})", name=op.f("ck_farmers_region_known")),
        sa.CheckConstraint("area_m2 > 0", name=op.f("ck_farmers_area_positive")),
        sa.CheckConstraint(
            "operator IN ('flooz', 'tmoney')", name=op.f("ck_farmers_operator_known")
        ),
        sa.CheckConstraint(
            "octet_length(national_id_bidx) = 32", name=op.f("ck_farmers_national_id_bidx_size")
        ),
        sa.CheckConstraint(
            "octet_length(phone_bidx) = 32", name=op.f("ck_farmers_phone_bidx_size")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_farmers")),
        sa.UniqueConstraint("national_id_bidx", name=op.f("uq_farmers_national_id_bidx")),
        sa.UniqueConstraint("phone_bidx", name=op.f("uq_farmers_phone_bidx")),
    )
    run_sql_file("farmers_updated_at.sql")


def downgrade() -> None:
    op.drop_table("farmers")
    op.execute("DROP FUNCTION sika_farmers_touch()")
