"""The models and the migrations describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from core import migrate
from core.db import Base


def test_models_and_migrations_agree(engine: Engine) -> None:
    # Given a database migrated to head
    assert migrate.current_revision(engine) == migrate.head_revision()
    # When the models are compared with it
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Then nothing differs
    assert diff == []
