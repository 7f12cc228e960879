"""Alembic driven from code: `sika db upgrade`, and the schema check at start-up.

A new, empty database is initialised on first use; a database at an older revision is
upgraded automatically only when it is Sika's embedded one, since migrating a
production database is a deliberate act.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from core.errors import ConfigError


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
    """Apply every pending revision; returns the revision the database is now at."""
    command.upgrade(alembic_config(engine), revision)
    return current_revision(engine) or ""


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Bring a fresh database to head; refuse to run on an outdated external one."""
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
        upgrade(engine)
        return
    if auto_upgrade:
        upgrade(engine)
        return
    raise ConfigError(
        f"the database schema is at revision {current}, this Sika needs {head}: "
        "run `sika db upgrade`"
    )
