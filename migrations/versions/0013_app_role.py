"""The application role: no UPDATE or DELETE of ledger rows, counters or the audit log.

Creates (or adopts) the roles `sika_owner` and `sika_app`, hands every object of the
schema to `sika_owner`, makes the ledger's entry points SECURITY DEFINER functions of
that owner, and grants `sika_app` only what the application needs. The rest of the
migration run, and every later run (migrations/env.py), acts as `sika_owner`.

Revision ID: 0013_app_role
Revises: 0012_input_bounds
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision: str = "0013_app_role"
down_revision: str | Sequence[str] | None = "0012_input_bounds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENTRY_POINTS = (
    "ledger_move(text[], text, text, bigint[], text, integer, integer)",
    "ledger_reserve(text[], text, text, bigint[], integer, integer)",
    "ledger_expire(text[])",
)


def upgrade() -> None:
    run_sql_file("app_role_001_owner.sql")
    run_sql_file("app_role_002_definer.sql")
    run_sql_file("app_role_003_grants.sql")


def _restore(file: str, header: str) -> None:
    """Re-create a function as an earlier, versioned SQL file defines it."""
    text = (SQL_DIR / file).read_text(encoding="utf-8")
    start = text.index(header)
    end = text.index("$$;", text.index("AS $$", start)) + len("$$;")
    op.get_bind().exec_driver_sql("CREATE OR REPLACE " + text[start:end].removeprefix("CREATE "))


def downgrade() -> None:
    """Back to one role for everything: PUBLIC may execute the functions again, which run
    as their caller. The roles stay (they are the server's, maybe other databases'), and
    so does sika_owner's ownership of the objects."""
    bind = op.get_bind()
    for statement in (
        "ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public"
        " REVOKE SELECT, INSERT, UPDATE ON TABLES FROM sika_app",
        "ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public"
        " REVOKE USAGE, SELECT ON SEQUENCES FROM sika_app",
        "ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC",
        "ALTER DEFAULT PRIVILEGES FOR ROLE sika_owner IN SCHEMA public"
        " REVOKE EXECUTE ON FUNCTIONS FROM sika_app",
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM sika_app",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM sika_app",
        "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM sika_app",
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC",
        "ALTER FUNCTION ledger_apply_transfers() RESET search_path",
        *(f"ALTER FUNCTION {f} SECURITY INVOKER RESET search_path" for f in _ENTRY_POINTS),
    ):
        bind.exec_driver_sql(statement)
    _restore("ledger_003_functions.sql", "CREATE FUNCTION ledger_submit(")
    bind.exec_driver_sql(
        "ALTER FUNCTION ledger_submit(text[], text[], text[], bigint[], text[], text[],"
        " integer[], integer[], boolean[]) SECURITY INVOKER RESET search_path"
    )
    _restore("ledger_002_rules.sql", "CREATE FUNCTION ledger_accounts_guard()")
    bind.exec_driver_sql(
        "ALTER FUNCTION ledger_accounts_guard() RESET search_path"
    )
