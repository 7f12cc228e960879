"""Bounds on amounts and text, enforced by CHECK constraints; encrypted callback bodies.

Revision ID: 0012_input_bounds
Revises: 0011_ledger_move
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.sqlfile import run_sql_file

revision: str = "0012_input_bounds"
down_revision: str | Sequence[str] | None = "0011_ledger_move"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Text a person reads (a place, a company's name) is 1 to 200 characters, none of them a
# control, zero-width, bidi or private-use character, which can make one name display as
# another. core/bounds.py refuses those Unicode categories whole; these are the characters
# of them met in practice. Names of people are encrypted: Python alone can check them.
# Spelled inline rather than as a function: a CHECK's function needs EXECUTE, which the
# application role has only on the ledger's entry points.
_INVISIBLE = (
    r"[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ue000-\uf8ff"
    r"\U000e0000-\U000e007f\U000f0000-\U0010ffff]"
)
_READABLE = {
    ("farmers", "ck_farmers_places_readable"): ("prefecture", "canton", "village", "crop"),
    ("cizo_companies", "ck_cizo_companies_name_readable"): ("name",),
}


# every constraint added, for the downgrade
_CHECKS = (
    ("ledger_transfers", "ck_ledger_transfers_amount_bounded"),
    ("ledger_accounts", "ck_ledger_accounts_counters_bounded"),
    ("agripme_seasons", "ck_agripme_seasons_budget_bounded"),
    ("payout_lines", "ck_payout_lines_amount_bounded"),
    ("payout_batches", "ck_payout_batches_total_bounded"),
    ("cizo_programme", "ck_cizo_programme_bounded"),
    ("cizo_plans", "ck_cizo_plans_bounded"),
    ("cizo_kits", "ck_cizo_kits_price_bounded"),
    ("cizo_collections", "ck_cizo_collections_amount_bounded"),
    ("cizo_payments", "ck_cizo_payments_amounts_bounded"),
    ("recon_fee_rules", "ck_recon_fee_rules_fee_bounded"),
    ("recon_breaks", "ck_recon_breaks_amounts_bounded"),
    ("recon_exceptions", "ck_recon_exceptions_amounts_bounded"),
    ("recon_runs", "ck_recon_runs_floats_bounded"),
    *_READABLE,
)


def _readable(column: str) -> str:
    return f"(char_length({column}) BETWEEN 1 AND 200 AND {column} !~ '{_INVISIBLE}')"


def upgrade() -> None:
    run_sql_file("bounds_001_checks.sql")
    for (table, name), columns in _READABLE.items():
        op.create_check_constraint(
            op.f(name), table, sa.text(" AND ".join(_readable(c) for c in columns))
        )

    # Callback bodies carry farmers' phone numbers and names: from now on they are stored
    # encrypted (AES-GCM, core/crypto.py), and the bodies kept in clear until now are
    # dropped, since the migration has no key to encrypt them with. What the receiver
    # parsed from them (references, outcome) stays, and holds nothing personal.
    op.add_column("provider_callbacks", sa.Column("body_enc", sa.LargeBinary(), nullable=True))
    op.drop_column("provider_callbacks", "body")

    # When a status query was last made on a callback's word, per subject (a payout line,
    # a CIZO push or kit): forged or repeated callbacks coalesce into one query a period.
    op.create_table(
        "callback_hint_queries",
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("queried_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_callback_hint_queries")),
    )


def downgrade() -> None:
    op.drop_table("callback_hint_queries")
    op.add_column(
        "provider_callbacks",
        sa.Column("body", sa.LargeBinary(), nullable=False, server_default=sa.text("''::bytea")),
    )
    op.alter_column("provider_callbacks", "body", server_default=None)
    op.drop_column("provider_callbacks", "body_enc")
    for table, name in _CHECKS:
        op.drop_constraint(op.f(name), table, type_="check")
