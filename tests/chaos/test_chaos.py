"""Fault injection: a batch against the sandbox's `hostile` operators while workers are
SIGKILLed and restarted, the broker restarts empty and database connections are cut;
then everything settles, reconciliation runs, and nothing may be lost or paid twice.

The faults are counted and must have happened: every kind, scaled to the size, each
kind at least once while lines were still in flight (read from the database at the
moment of the fault). CI runs it at a reduced size; `make chaos` runs 5,000 farmers
(SIKA_CHAOS_SIZE).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from payouts.models import LineStatus
from tests.conftest import SIKA, _libpq, enrol_agents, run_sika
from tests.fixtures.sandbox import Sandbox, free_port
from tests.payout_world import assert_paid_once, build_world, lines, sika_ok

SIZE = int(os.environ.get("SIKA_CHAOS_SIZE", "300"))
KINDS = ("kill", "broker", "cut")
# the least of each kind a run must inject: one per thousand farmers, and never none
QUOTA = max(1, SIZE // 1000)
FINAL = tuple(s.value for s in LineStatus if s.final)


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, when (seconds after dispatch), how many lines were not final
    the moment it landed, and what it hit (connections terminated, for a cut)."""

    kind: str
    at: float
    in_flight: int
    hit: int = 1


@dataclass
class Faults:
    """What the run did to the system: every fault, in order."""

    log: list[Fault] = field(default_factory=list)

    def of(self, kind: str) -> list[Fault]:
        return [f for f in self.log if f.kind == kind]

    def quotas_met(self) -> bool:
        return all(len(self.of(kind)) >= QUOTA for kind in KINDS)


class Redis:
    """A private Redis server this test may restart at will (it keeps nothing on disk)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the private Redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Workers:
    """`sika worker` processes that can be killed and replaced."""

    def __init__(self, env: dict[str, str], logs: Path, count: int) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")} | env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        for _ in range(count):
            self.procs.append(self._spawn())

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.logs / f"worker-{self.started}.log").open("ab")
        return subprocess.Popen(
            [SIKA, "worker", "--threads", "4"], env=self.env, stdout=log, stderr=log
        )

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.procs))
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()
        self.procs[index] = self._spawn()

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


OBSERVER = "sika-chaos-observer"


def _cut_connections(database_url: str) -> int:
    """Terminate every other connection to the test's database (as a failover would)."""
    with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name <> %s",
            (OBSERVER,),
        ).fetchall()
    return len(rows)


def _settled(database_url: str) -> tuple[bool, Counter[str]]:
    # The test's own look at the lines is not part of the system under chaos.
    with psycopg.connect(_libpq(database_url), application_name=OBSERVER) as conn:
        rows = conn.execute(
            "SELECT status, (status IN ('pending', 'unknown') AND check_due_at IS NULL)"
            " FROM payout_lines"
        ).fetchall()
    counts = Counter(status for status, _ in rows)
    done = all(status in ("succeeded", "failed") or waiting for status, waiting in rows)
    return done, counts


def _not_final(database_url: str) -> int:
    """Lines not final yet, by the test's own connection, which the cuts spare."""
    with psycopg.connect(_libpq(database_url), application_name=OBSERVER) as conn:
        row = conn.execute(
            "SELECT count(*) FROM payout_lines WHERE status <> ALL(%s)", (list(FINAL),)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _chaos(
    stop: threading.Event,
    faults: Faults,
    workers: Workers,
    broker: Redis,
    database_url: str,
    started: float,
) -> None:
    """Inject faults until told to stop: rounds holding every kind once (kills twice) in
    a shuffled order, so that each kind lands within the first seconds of the dispatch,
    while the batch is still in flight, whatever its size."""
    rng = random.Random(2016)
    pause = rng.uniform(0.2, 0.6)  # the first fault comes at once
    while not stop.wait(pause):
        for kind in rng.sample(["kill", "kill", "broker", "cut"], 4):
            in_flight = _not_final(database_url)
            at = time.monotonic() - started
            if kind == "kill":
                workers.kill_one(rng)
                faults.log.append(Fault(kind, at, in_flight))
            elif kind == "broker":
                broker.stop()
                time.sleep(rng.uniform(0.2, 1.0))
                broker.start()
                faults.log.append(Fault(kind, at, in_flight))
            else:
                faults.log.append(Fault(kind, at, in_flight, _cut_connections(database_url)))
            if stop.wait(rng.uniform(1.0, 2.5)):
                return
        pause = 0


@pytest.mark.chaos
def test_hostile_operators_crashes_and_cuts_lose_and_duplicate_nothing(
    sika_env, sandbox: Sandbox, tmp_path, database_url
):
    # Given a season for SIZE farmers and hostile operators
    broker = Redis(tmp_path)
    broker.start()
    env = {
        **sika_env,
        "SIKA_SANDBOX_URL": sandbox.url,
        "SIKA_OPERATOR_TIMEOUT": "2",
        "SIKA_BROKER_URL": broker.url,
        "SIKA_QUEUE_PREFIX": "chaos",
        "SIKA_LOG_LEVEL": "WARNING",
        "SIKA_STATUS_CHECK_DELAYS": "[1, 2, 4, 8, 15]",
        "SIKA_SWEEP_AFTER_SECONDS": "6",
    }
    build_world(env, tmp_path, farmers=SIZE, test_numbers=())
    # reconciliation is an auditor's signed request
    enrol_agents(env, {"ama": "auditor"})
    batch = json.loads(
        sika_ok(
            "agripme", "batch", "create", "--season", "2026A", "--agent", "awa", "--json", env=env
        )
    )["batch"]
    sika_ok("agripme", "batch", "approve", str(batch), "--agent", "kodjo", env=env)
    sandbox.set_faults("hostile")
    workers = Workers(env, tmp_path, count=2)
    faults = Faults()
    stop = threading.Event()
    started = time.monotonic()
    chaos = threading.Thread(
        target=_chaos, args=(stop, faults, workers, broker, database_url, started), daemon=True
    )
    try:
        # When the batch is dispatched and the chaos starts at once, running until the
        # batch settles and every kind of fault has reached its quota
        sika_ok("agripme", "batch", "dispatch", str(batch), "--agent", "kodjo", env=env)
        chaos.start()
        deadline = time.monotonic() + max(120, SIZE / 10)
        while time.monotonic() < deadline and not (
            faults.quotas_met() and _settled(database_url)[0]
        ):
            time.sleep(1)
        stop.set()
        chaos.join()
        # and then everything is left to settle, the operators calm again
        sandbox.set_faults("none")
        settle_by = time.monotonic() + 180
        while time.monotonic() < settle_by and not _settled(database_url)[0]:
            time.sleep(1)
    finally:
        stop.set()
        workers.stop()
        broker.stop()
    dispatch_seconds = time.monotonic() - started
    # Then the chaos happened: every kind of fault, as many as the size asks, and each
    # kind at least once while lines were still in flight (a cut terminating sessions)
    for kind in KINDS:
        injected = faults.of(kind)
        assert len(injected) >= QUOTA, (kind, faults.log)
        landed = [f for f in injected if f.in_flight > 0 and f.hit > 0]
        assert landed, (f"no {kind} while lines were in flight", faults.log)
    done, before = _settled(database_url)
    assert done, f"lines still moving after the chaos: {before}"
    # the operators finish what they still had pending (up to 10 s in the hostile profile)
    calm_by = time.monotonic() + 60
    while time.monotonic() < calm_by and any(
        t["status"] == "pending" for t in sandbox.transactions()
    ):
        time.sleep(1)
    # the nightly reconciliation posts or voids what only the operator could settle
    day = sandbox.today()
    # nothing is being sent any more: the statement must list everything sent until now
    cutoff = sandbox.now()
    reports = {}
    for operator in ("flooz", "tmoney"):
        result = run_sika(
            "reconcile",
            "run",
            "--provider",
            operator,
            "--date",
            day,
            "--agent",
            "ama",
            "--cutoff",
            cutoff,
            "--json",
            env=env,
        )
        assert result.code in (0, 3), result.stderr
        reports[operator] = json.loads(result.stdout)
    # Then every line is final, or unknown with its reason
    rows = lines(database_url)
    assert len(rows) == SIZE
    assert all(
        r["status"] in ("succeeded", "failed") or (r["status"] == "unknown" and r["reason"])
        for r in rows
    ), Counter(r["status"] for r in rows)
    # no wallet credited twice; the ledger equals the sandbox line by line and in floats
    assert_paid_once(database_url, sandbox)
    for row in rows:
        if row["status"] == "succeeded":
            credits = sandbox.wallet(row["msisdn"])["credits"]
            assert sum(c["amount"] for c in credits) == row["amount"], row
    # reconciliation is clean once it has resolved what it safely could
    for operator, report in reports.items():
        assert report["open_exceptions"] == 0, (operator, report["counts"])
        assert report["float"]["difference"] == 0, (operator, report["float"])
    sika_ok("ledger", "verify", env=env)
    sika_ok("audit", "verify", env=env)
    sika_ok("audit", "log", "--verify", env=env)
    after = Counter(r["status"] for r in rows)
    with psycopg.connect(_libpq(database_url)) as conn:
        resends, queried = conn.execute(
            "SELECT coalesce(sum(sends - 1), 0), count(*) FILTER (WHERE checks > 0)"
            " FROM payout_lines"
        ).fetchone()
    reasons = Counter(r["reason"] for r in rows if r["status"] == "failed")
    kills, restarts, cuts = (faults.of(kind) for kind in KINDS)
    in_flight = {kind: [f.in_flight for f in faults.of(kind)] for kind in KINDS}
    print(
        f"\n── chaos: {SIZE} farmers, hostile operators, {dispatch_seconds:.0f}s ──\n"
        f"faults injected : {len(kills)} workers SIGKILLed, "
        f"{len(restarts)} broker restarts (queues lost), "
        f"{len(cuts)} database cuts ({sum(f.hit for f in cuts)} connections)\n"
        f"lines in flight : at each fault, by kind {in_flight}\n"
        f"operator faults : {queried} lines needed status queries, {resends} resent under "
        f"their own reference after the operator said it never got them\n"
        f"before reconcile: {dict(before)}\n"
        f"after reconcile : {dict(after)}; failed by reason {dict(reasons)}\n"
        f"auto-resolved   : flooz {reports['flooz']['auto_resolved']}, "
        f"tmoney {reports['tmoney']['auto_resolved']}; open exceptions 0; ledger = sandbox"
    )
