"""Database engine, sessions and the declarative base every Sika table derives from.

The URL is `SIKA_DATABASE_URL` or, when unset, the embedded server under `SIKA_HOME`.
The engine is built on first use, never at import, and checks the schema once.
Schema changes use a second URL, the schema owner's (`SIKA_DATABASE_OWNER_URL`, or the
embedded server's bootstrap superuser); the processes connect as the application role
(docs/database.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import psycopg.errors
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.errors import ConfigError
from core.settings import Settings, load_settings

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Sika table."""

    metadata = MetaData(naming_convention=NAMING)


def normalise_url(url: str) -> str:
    """Any PostgreSQL URL spelling → the SQLAlchemy psycopg 3 form."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ConfigError(f"SIKA_DATABASE_URL: unsupported driver {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


def masked(url: str) -> str:
    """The URL with its password replaced by `***`."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class DatabaseUrls:
    """Where Sika connects: `app` for every process, `owner` for schema migrations."""

    app: str
    owner: str
    embedded: bool


def resolve_urls(settings: Settings) -> DatabaseUrls:
    """The configured database, or the embedded one started on demand, with both roles.

    An external database given only `SIKA_DATABASE_URL` is migrated through that URL too:
    it works when its role owns the schema, and otherwise the refusal names
    `SIKA_DATABASE_OWNER_URL`. On the embedded server the bootstrap superuser migrates
    (acting as sika_owner) and the processes connect as sika_app.
    """
    owner = settings.database_owner_url
    if settings.database_url is not None:
        app = normalise_url(settings.database_url.get_secret_value())
        return DatabaseUrls(
            app, normalise_url(owner.get_secret_value()) if owner else app, embedded=False
        )
    if owner is not None:
        raise ConfigError(
            "SIKA_DATABASE_OWNER_URL is set but SIKA_DATABASE_URL is not: set both, or"
            " neither for the embedded server"
        )
    from core import embedded

    superuser = embedded.start(settings.home_dir)
    return DatabaseUrls(embedded.app_url(superuser), superuser, embedded=True)


def resolve_url(settings: Settings) -> tuple[str, bool]:
    """(application URL, embedded?): what every process but the migrations connects to."""
    urls = resolve_urls(settings)
    return urls.app, urls.embedded


def build_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the pool and timeouts Sika uses everywhere."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"application_name": "sika"},
    )


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process's engine, schema checked (and created when the database is new)."""
    from core import migrate

    urls = resolve_urls(load_settings())
    if urls.embedded:
        # sika_app exists once the schema does: the owner brings it to head first. Other
        # processes starting now wait on the migrations' advisory lock, then find the
        # schema at head and apply nothing.
        owner = build_engine(urls.owner, pool_size=1)
        try:
            migrate.ensure_schema(owner, auto_upgrade=True)
        finally:
            owner.dispose()
        return build_engine(urls.app)
    engine = build_engine(urls.app)
    migrate.ensure_schema(engine, auto_upgrade=False, owner_url=urls.owner)
    migrate.warn_if_owner(engine)
    return engine


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    """Sessions bound to the process's engine; objects stay readable after commit."""
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A session that commits when the block ends cleanly and rolls back otherwise."""
    session = (factory or get_sessionmaker())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or serialisation failure, which a fresh attempt can clear."""
    return isinstance(exc, DBAPIError) and isinstance(exc.orig, _RETRYABLE)


def run_in_transaction(
    factory: sessionmaker[Session], work: Callable[[Session], T], *, attempts: int = 8
) -> T:
    """Run `work` in its own transaction, retrying deadlocks and serialisation failures.

    The whole transaction is replayed, so `work` must derive everything from the session.
    """
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(factory) as session:
                return work(session)
        except (DBAPIError, OperationalError) as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(min(0.002 * 2**attempt, 0.2))
    raise AssertionError("unreachable")
