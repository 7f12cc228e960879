"""Fixtures shared by every test: real PostgreSQL databases, Sika's environment, the CLI.

A session-wide template database is migrated once, by a superuser acting as the schema's
owner; each test that asks for `database_url` gets its own copy (CREATE DATABASE ...
TEMPLATE), since ledger rows can never be deleted and each test wants a clean ledger.
`database_url` connects as the application role, sika_app, as every Sika process does;
a test that plays a tampering superuser asks for `admin_database_url`.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core import agents, broker, db, migrate, settings

pytest_plugins = ["tests.fixtures.sandbox"]

ADMIN_URL = os.environ.get(
    "SIKA_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SIKA = str(Path(sys.executable).parent / "sika")
APP_ROLE = "sika_app"
OWNER_ROLE = "sika_owner"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _url_for(name: str) -> str:
    """The database `name` as the test server's superuser."""
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _app_url_for(name: str, role: str = APP_ROLE) -> str:
    """The database `name` as sika_app, or `role` (the test server trusts local connections)."""
    return (
        make_url(ADMIN_URL)
        .set(database=name, username=role, password=None)
        .render_as_string(hide_password=False)
    )


def _create(name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(statement)


def _drop(name: str) -> None:
    with psycopg.connect(_libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head, used only as a template."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"sika_tpl_{worker}_{os.getpid()}"
    _drop(name)
    _create(name)
    engine = db.build_engine(_url_for(name), pool_size=1)
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    _drop(name)


@pytest.fixture
def database_name(template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"sika_t_{uuid.uuid4().hex[:16]}"
    _create(name, template=template_database)
    yield name
    _drop(name)


@pytest.fixture
def database_url(database_name: str) -> str:
    """This test's database as sika_app, the role every Sika process connects as."""
    return _app_url_for(database_name)


@pytest.fixture
def owner_database_url(database_name: str) -> str:
    """This test's database as sika_owner, the schema's owner that migrations act as."""
    return _app_url_for(database_name, OWNER_ROLE)


@pytest.fixture
def admin_database_url(database_name: str) -> str:
    """This test's database as a superuser: the insider whose tampering the seals, the
    ledger's verify and the manifests must catch, since sika_app cannot tamper at all."""
    return _url_for(database_name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.build_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _clear_caches() -> None:
    settings.load_settings.cache_clear()
    db.get_engine.cache_clear()
    db.get_sessionmaker.cache_clear()


@pytest.fixture
def sika_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Iterator[dict[str, str]]:
    """Sika's environment pointed at this test's database, a fresh SIKA_HOME and, apart
    from it as on a person's own machine, a fresh SIKA_KEYS_DIR for agents' keys."""
    home = tmp_path / "sika-home"
    env = {
        "SIKA_HOME": str(home),
        "SIKA_KEYS_DIR": str(tmp_path / "agent-keys"),
        "SIKA_DATABASE_URL": database_url,
        "SIKA_LOG_FORMAT": "json",
        # the test hooks (a crash point, a moved clock) are refused anywhere else
        "SIKA_ENVIRONMENT": "test",
        # the sandbox answers at once: a pending payout is queried three times, not for
        # the minutes production allows
        "SIKA_STATUS_CHECK_DELAYS": "[1, 2, 4]",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _clear_caches()
    yield env
    _clear_caches()


def new_years_eve() -> dt.datetime:
    """23:59:59 UTC on the coming 31 December: the second before a day, a month and a year
    all end. Ahead of the wall clock, so agents' keys enrolled now are already valid."""
    now = dt.datetime.now(dt.UTC)
    eve = dt.datetime(now.year, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    return eve if eve - now > dt.timedelta(hours=1) else eve.replace(year=now.year + 1)


@pytest.fixture
def clock_at(
    sika_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Callable[[dt.datetime], dt.datetime]:
    """`clock_at(when)` moves Sika's clock so that it reads `when` now and runs on from
    there: SIKA_CLOCK_OFFSET in this process and in `sika_env` for the `sika` processes,
    and the test's sandbox (when it has one) set to the same instant. Keep one instant
    for a test that reads days of ledger rows: the database stamps them on the wall
    clock, and Sika reads them with the offset it has when it reads them."""

    def move(when: dt.datetime) -> dt.datetime:
        offset = (when - dt.datetime.now(dt.UTC)).total_seconds()
        monkeypatch.setenv("SIKA_CLOCK_OFFSET", repr(offset))
        sika_env["SIKA_CLOCK_OFFSET"] = repr(offset)
        _clear_caches()
        if "sandbox" in request.fixturenames:
            sandbox = request.getfixturevalue("sandbox")
            sandbox.set_clock((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).isoformat())
        return when

    return move


@pytest.fixture
def at_new_years_eve(clock_at: Callable[[dt.datetime], dt.datetime]) -> dt.datetime:
    """The test starts at 23:59:59 on 31 December on Sika's clock (and the sandbox's)."""
    return clock_at(new_years_eve())


# the real brokers on this machine; each test that takes `real_broker` runs on both
BROKER_URLS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "redis": "redis://127.0.0.1:6379/0",
}


@pytest.fixture(params=sorted(BROKER_URLS))
def real_broker(
    request: pytest.FixtureRequest, sika_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Sika's broker set to a real RabbitMQ or Redis (the test runs on each), with queue
    names of its own (SIKA_QUEUE_PREFIX), in this process and in `sika_env` for the `sika`
    processes it starts; its queues are deleted afterwards. Yields the broker's name."""
    url, prefix = BROKER_URLS[request.param], f"t{uuid.uuid4().hex[:12]}"
    for key, value in (("SIKA_BROKER_URL", url), ("SIKA_QUEUE_PREFIX", prefix)):
        monkeypatch.setenv(key, value)
        sika_env[key] = value
    _clear_caches()
    broker.reset_broker()
    yield request.param
    broker.reset_broker()
    _delete_queues(url, prefix)


def _delete_queues(url: str, prefix: str) -> None:
    """Remove what a test left on a real broker under its queue prefix."""
    if url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"dramatiq:{prefix}.*"))
        if keys:
            client.delete(*keys)
        client.close()
        return
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for suffix in ("", ".DQ", ".XQ"):
        channel.queue_delete(f"{prefix}.payouts{suffix}")
    connection.close()


@dataclass(frozen=True)
class Result:
    """What one `sika` run printed and returned."""

    code: int
    stdout: str
    stderr: str


def run_sika(*args: str, env: dict[str, str], timeout: float = 120) -> Result:
    """Run the installed `sika` command as a user would, in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full_env.update(env)
    proc = subprocess.run(
        [SIKA, *args], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def enrol_agents(env: Mapping[str, str], roles: Mapping[str, str]) -> None:
    """Agents `{name: role}` with their private keys in `env`'s SIKA_KEYS_DIR, written
    straight to `env`'s database: how tests that are not about enrolment get their agents
    (`sika agent add` needs a signed request from an admin)."""
    engine = db.build_engine(env["SIKA_DATABASE_URL"], pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            for name, role in roles.items():
                agents.add_agent(session, name, role, keys_dir=Path(env["SIKA_KEYS_DIR"]))
    finally:
        engine.dispose()
