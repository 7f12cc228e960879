"""Alembic environment: Sika's metadata, one advisory lock so concurrent upgrades queue."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import text

from core.db import Base

MODEL_MODULES = (
    "core.models",
    "core.outbox",
    "ledger.models",
    "providers.models",
    "payouts.models",
    "agripme.models",
    "cizo.models",
    "reconciliation.models",
)
for module in MODEL_MODULES:
    importlib.import_module(module)

MIGRATION_LOCK = 0x51CA


def _engine():
    engine = context.config.attributes.get("engine")
    if engine is not None:
        return engine
    from core.db import build_engine, resolve_url
    from core.settings import load_settings

    url, _ = resolve_url(load_settings())
    return build_engine(url, pool_size=1)


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("Sika's migrations run online only: they apply SQL files and triggers")
run_migrations_online()
