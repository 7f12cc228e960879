"""Sika's Alembic revisions; raw SQL (triggers, functions) lives in `sql/` beside them."""
