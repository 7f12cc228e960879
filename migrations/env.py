"""Alembic environment: Sika's metadata, one advisory lock so concurrent upgrades queue,
and the schema owner's role for every change once the schema has one (0013_app_role)."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import Connection, text

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
    from core.db import build_engine, resolve_urls
    from core.settings import load_settings

    return build_engine(resolve_urls(load_settings()).owner, pool_size=1)


def _act_as_owner(connection: Connection) -> None:
    """Once sika_owner owns the schema, a superuser (the embedded server's bootstrap role)
    or a member migrating creates every new object as sika_owner: it then belongs to the
    owner and takes the owner's default privileges, i.e. the application role's grants."""
    owner = connection.execute(
        text(
            "SELECT pg_get_userbyid(relowner) FROM pg_class"
            " WHERE oid = to_regclass('public.alembic_version')"
        )
    ).scalar()
    user = connection.execute(text("SELECT current_user")).scalar()
    if owner == "sika_owner" and user != "sika_owner":
        connection.execute(text("SET LOCAL ROLE sika_owner"))


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            _act_as_owner(connection)
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("Sika's migrations run online only: they apply SQL files and triggers")
run_migrations_online()
