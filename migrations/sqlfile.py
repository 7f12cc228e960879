"""Apply a versioned `.sql` file from `migrations/sql/` inside a revision."""

from __future__ import annotations

from pathlib import Path

from alembic import op

SQL_DIR = Path(__file__).parent / "sql"


def run_sql_file(name: str) -> None:
    """Execute every statement of `sql/<name>` on the migration's connection."""
    op.get_bind().exec_driver_sql((SQL_DIR / name).read_text(encoding="utf-8"))
