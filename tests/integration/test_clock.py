"""Sika's clock (core.clock): the wall clock plus SIKA_CLOCK_OFFSET, a test hook refused
at start-up anywhere but SIKA_ENVIRONMENT=test; and the sandbox `sika sandbox serve`
starts on that clock, a reset bringing it back there rather than to the wall clock."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from core import clock, settings
from core.errors import ConfigError
from tests.conftest import SIKA, run_sika
from tests.fixtures.sandbox import Sandbox, free_port


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No SIKA_ variable from the caller's environment; the settings read afresh."""
    for key in [k for k in os.environ if k.startswith("SIKA_")]:
        monkeypatch.delenv(key)
    settings.load_settings.cache_clear()
    yield monkeypatch
    settings.load_settings.cache_clear()


def test_the_offset_is_refused_outside_tests(clean_settings: pytest.MonkeyPatch) -> None:
    # Given a moved clock in an environment that is not a test's
    clean_settings.setenv("SIKA_CLOCK_OFFSET", "3600")
    # Then the settings refuse it, naming the variable and what would allow it
    with pytest.raises(ConfigError, match=r"SIKA_CLOCK_OFFSET.*SIKA_ENVIRONMENT=test"):
        settings.load_settings()
    clean_settings.setenv("SIKA_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="SIKA_CLOCK_OFFSET"):
        settings.load_settings()
    # And `sika` stops at start-up with one sentence and no traceback
    result = run_sika("ledger", "balance", "float:flooz", env={"SIKA_CLOCK_OFFSET": "3600"})
    assert result.code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: SIKA_CLOCK_OFFSET: a test hook, refused unless SIKA_ENVIRONMENT=test"
    ]


def test_the_clock_is_the_wall_clock_plus_the_offset(clean_settings: pytest.MonkeyPatch) -> None:
    # Given no offset, Sika's clock is the wall clock
    before = dt.datetime.now(dt.UTC)
    assert before <= clock.now() <= dt.datetime.now(dt.UTC)
    assert clock.offset() == dt.timedelta(0)
    # When a test moves it a day and an hour ahead
    clean_settings.setenv("SIKA_ENVIRONMENT", "test")
    clean_settings.setenv("SIKA_CLOCK_OFFSET", "90000")
    settings.load_settings.cache_clear()
    # Then now, today and the database's instants follow
    ahead = dt.timedelta(seconds=90_000)
    now = clock.now()
    assert abs(now - (dt.datetime.now(dt.UTC) + ahead)) < dt.timedelta(seconds=1)
    assert now.tzinfo is not None
    assert clock.today() == (dt.datetime.now(dt.UTC) + ahead).date()
    assert clock.database_time(now) == now - ahead
    assert clock.sika_time(clock.database_time(now)) == now


def _serve_sandbox(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Sandbox]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full.update(env)
    proc = subprocess.Popen(
        [SIKA, "sandbox", "serve", "--port", str(port)],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sandbox = Sandbox(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{sandbox.url}/_sandbox/health", timeout=1).status_code == 200:
                return proc, sandbox
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.1)


def test_the_sandbox_starts_and_resets_on_sikas_clock() -> None:
    # Given `sika sandbox serve` started in a test environment whose clock is 30 days ahead
    ahead = dt.timedelta(days=30)
    env = {
        "SIKA_ENVIRONMENT": "test",
        "SIKA_CLOCK_OFFSET": str(ahead.total_seconds()),
        "SIKA_LOG_FORMAT": "json",
    }
    proc, sandbox = _serve_sandbox(env)
    try:
        # Then its clock is Sika's, not the wall clock
        def lag() -> dt.timedelta:
            there = dt.datetime.fromisoformat(sandbox.now())
            return abs(there - (dt.datetime.now(dt.UTC) + ahead))

        assert lag() < dt.timedelta(seconds=5)
        # When a test moves it elsewhere, then resets the sandbox
        sandbox.set_clock("2031-06-15T12:00:00")
        assert sandbox.today() == "2031-06-15"
        sandbox.reset()
        # Then it is back on Sika's clock, not on the wall clock
        assert lag() < dt.timedelta(seconds=5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
