"""A `sika worker` SIGKILLed at each dangerous moment of a send, on RabbitMQ and on Redis,
then replaced: no farmer is paid twice, every line ends final or `unknown` with a reason,
and the ledger agrees with the operators (docs/architecture.md#crash-points).

The crash is a test hook (`SIKA_CRASH_POINT`), so it falls exactly where it is meant to:
after the claim, after the operator executed, after the answer, after the record. With
`SIKA_CRASH_ONCE` only the first worker dies; the one started after it, with the same
environment, runs on and shows what Sika makes of the crash.
"""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from agripme import seasons
from agripme.sample import write_sample_registry
from core import agents
from core.crash import POINTS
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.settings import load_settings
from ledger.api import verify_ledger
from payouts import worker
from tests.conftest import SIKA, _clear_caches, run_sika
from tests.payout_world import (
    PEOPLE,
    RULES,
    approve,
    assert_paid_once,
    create_season,
    dispatch,
    fund,
    import_registry,
    lines,
    make_batch,
)

FARMERS = 16
# four lines a message: several messages per operator, so the crash falls in the middle
# of the batch's work, with messages behind the one it interrupts
CHUNK = 4
FLOAT = 1_000_000
FINAL = ("succeeded", "failed")


def _world(env: dict[str, str], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Agents, farmers on plain numbers (they are paid: the crash is the only chaos),
    season 2026A, floats funded in the ledger and at the sandbox, and a batch made,
    approved and dispatched in-process; its id. Its messages wait in the outbox."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _clear_caches()
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        for name, role in PEOPLE.items():
            agents.add_agent(session, name, role)
    import_registry(write_sample_registry(tmp / "farmers.csv", FARMERS), keys)
    create_season("2026A", seasons.parse_rules(tomllib.loads(RULES)))
    for operator in ("flooz", "tmoney"):
        fund(operator, FLOAT, f"test:fund:{operator}")
    batch = make_batch(keys)
    approve(batch)
    report = dispatch(batch, chunk=CHUNK)
    assert report.queued == FARMERS
    assert report.messages >= 4
    return batch


def _worker(env: dict[str, str], log: Path, threads: int) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full.update(env)
    with log.open("ab") as out:
        return subprocess.Popen(
            [SIKA, "worker", "--threads", str(threads)], env=full, stdout=out, stderr=out
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("point", POINTS)
def test_a_worker_killed_at_a_crash_point_pays_each_farmer_once(
    point, real_broker, sika_env, sandbox, database_url, tmp_path, monkeypatch
):
    # Given a dispatched batch of 16 plain farmers, four lines a message, floats funded
    env = {
        **sika_env,
        "SIKA_SANDBOX_URL": sandbox.url,
        "SIKA_OPERATOR_TIMEOUT": "2",
        "SIKA_STATUS_CHECK_DELAYS": "[1, 2, 4]",
        # Sika's sweeper re-queues the work of lines that stalled, its answer to lost
        # messages: those the dead worker held (dramatiq's Redis broker hands them back
        # only once the dead worker's heartbeat times out, a minute later), and lines left
        # `submitted`, which it has queried once the operator timeout and a grace (7 s
        # here) have passed, never re-sent blindly
        "SIKA_SWEEP_AFTER_SECONDS": "2",
    }
    batch = _world(env, tmp_path, monkeypatch)
    for operator in ("flooz", "tmoney"):
        sandbox.topup(operator, FLOAT)
    marker = tmp_path / "crashed"
    hooked = {**env, "SIKA_CRASH_POINT": point, "SIKA_CRASH_ONCE": str(marker)}
    log = tmp_path / "worker.log"

    # When a worker of one thread (one message at a time) reaches the crash point
    first = _worker(hooked, log, threads=1)
    try:
        code = first.wait(timeout=60)
    finally:
        _stop(first)
    # Then it died by SIGKILL, there, and said so in the marker
    assert code == -9, log.read_text(encoding="utf-8")[-3000:]
    pid, named = marker.read_text(encoding="utf-8").split()
    assert (int(pid), named) == (first.pid, point)
    at_crash = {row["id"]: row for row in lines(database_url)}
    stranded = [row for row in at_crash.values() if row["status"] == "submitted"]
    executed = Counter(t["reference"] for t in sandbox.transactions() if t["kind"] == "payout")
    # the stranded lines the operator had executed when the worker died
    sent = [row for row in stranded if executed[row["reference"]]]
    if point == "recorded":
        # the chunk's outcomes were committed before the kill: nothing is left mid-send
        assert not stranded
        assert any(row["status"] != "queued" for row in at_crash.values())
    else:
        # the interrupted chunk is left `submitted`, the danger each point stands for
        assert stranded
        if point == "claimed":
            assert not sent, "a line was sent before the claim's crash point"
        else:
            assert sent, f"no line was executed before the {point} crash point"

    # And a worker started again with the same environment runs the batch to its end
    second = _worker(hooked, log, threads=4)
    try:
        progress = worker.wait_for_batch(get_sessionmaker(), batch, timeout=90, interval=0.3)
        assert second.poll() is None, "the second worker died too"
    finally:
        _stop(second)
    assert progress.done, progress

    # Then no farmer was paid twice and the floats agree with the sandbox
    rows = assert_paid_once(database_url, sandbox)
    # every line is final, or unknown with its reason; plain numbers are all paid
    for row in rows:
        assert row["status"] in FINAL or (row["status"] == "unknown" and row["reason"]), row
    assert Counter(row["status"] for row in rows)["succeeded"] == FARMERS
    # each line reached the operator once, under its one reference (none under a second)
    executed = Counter(t["reference"] for t in sandbox.transactions() if t["kind"] == "payout")
    assert set(executed) == {row["reference"] for row in rows}
    assert all(n == 1 for n in executed.values()), executed
    # the lines the crash caught after their execution were queried, never sent again
    final_sends = {row["id"]: row["sends"] for row in rows}
    resent = [row["id"] for row in sent if final_sends[row["id"]] != 1]
    assert not resent, f"lines executed before the crash were sent again: {resent}"
    with unit_of_work() as session:
        assert verify_ledger(session).ok


def test_a_crash_point_is_refused_outside_tests(tmp_path):
    # Given a crash point set where SIKA_ENVIRONMENT is not `test` (production by default)
    env = {"SIKA_HOME": str(tmp_path / "home"), "SIKA_CRASH_POINT": "executed"}
    # When a worker starts
    started = time.monotonic()
    result = run_sika("worker", "--threads", "1", env=env, timeout=60)
    # Then it refuses at once, in one line naming the hook, without a traceback
    assert result.code != 0
    lines_out = result.stderr.strip().splitlines()
    assert len(lines_out) == 1, result.stderr
    assert "SIKA_CRASH_POINT" in lines_out[0]
    assert "SIKA_ENVIRONMENT=test" in lines_out[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert time.monotonic() - started < 30
