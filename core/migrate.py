"""Alembic driven from code: `sika db upgrade`, and the schema check at start-up.

A new, empty database is initialised on first use; a database at an older revision is
upgraded automatically only when it is Sika's embedded one, since migrating a
production database is a deliberate act. Migrations run as the schema's owner; the
application role may read the schema version but never change the schema. Concurrent
upgrades queue on an advisory lock (migrations/env.py): the ones behind find the schema
at head and apply nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg.errors
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from core.errors import ConfigError
from core.logging import get_logger

log = get_logger(__name__)

APP_ROLE = "sika_app"


def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or spec.origin is None:
        raise ConfigError("Sika's migrations package is not installed")
    return Path(spec.origin).parent


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at Sika's migrations and at `engine`."""
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    script = ScriptDirectory.from_config(alembic_config_for_scripts())
    head = script.get_current_head()
    if head is None:
        raise ConfigError("Sika's migrations have no head revision")
    return head


def alembic_config_for_scripts() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_migrations_dir()))
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database Sika never touched."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply every pending revision; returns the revision the database is now at.

    A role that may not change the schema (sika_app, or a role that cannot create the
    roles 0013_app_role needs) is refused with one sentence naming the way out.
    """
    try:
        command.upgrade(alembic_config(engine), revision)
    except DBAPIError as exc:
        if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
            raise
        diag = exc.orig.diag
        hint = diag.message_hint or (
            "run `sika db upgrade` with SIKA_DATABASE_OWNER_URL set to the URL of the"
            " schema's owner, sika_owner (docs/database.md)"
        )
        user = engine.url.username or "this role"
        raise ConfigError(
            f"{user} may not change Sika's schema: {diag.message_primary}; {hint}"
        ) from exc
    return current_revision(engine) or ""


def _upgrade_as_owner(engine: Engine, owner_url: str | None) -> None:
    if owner_url is None or owner_url == engine.url.render_as_string(hide_password=False):
        upgrade(engine)
        return
    from core.db import build_engine

    owner = build_engine(owner_url, pool_size=1)
    try:
        upgrade(owner)
    finally:
        owner.dispose()


def ensure_schema(engine: Engine, *, auto_upgrade: bool, owner_url: str | None = None) -> None:
    """Bring a fresh database to head; refuse to run on an outdated external one.

    `engine` reads the schema version; changes go through `owner_url` when given.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        tables = set(inspect(engine).get_table_names())
        if tables - {"alembic_version"} and not auto_upgrade:
            raise ConfigError(
                "the database holds tables but no Sika schema version; "
                "point SIKA_DATABASE_URL at an empty database or at Sika's own"
            )
        _upgrade_as_owner(engine, owner_url)
        return
    if auto_upgrade:
        _upgrade_as_owner(engine, owner_url)
        return
    raise ConfigError(
        f"the database schema is at revision {current}, this Sika needs {head}: "
        "run `sika db upgrade`"
    )


def warn_if_owner(engine: Engine) -> None:
    """Log once when the processes connect as a role that owns the schema or bypasses
    privileges: the privileges that keep sika_app off the ledger's rows then protect
    nothing, and only the triggers remain."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT current_user AS name, r.rolsuper OR r.rolbypassrls"
                " OR pg_has_role(current_user, c.relowner, 'USAGE') AS mighty"
                " FROM pg_roles r, pg_class c"
                " WHERE r.rolname = current_user"
                " AND c.oid = to_regclass('public.ledger_transfers')"
            )
        ).first()
    if row is not None and row.mighty:
        log.warning(
            "db.app_role_is_owner",
            role=row.name,
            advice=f"connect SIKA_DATABASE_URL as {APP_ROLE} and migrate through"
            " SIKA_DATABASE_OWNER_URL (docs/database.md)",
        )
