"""Benchmark `dispatch`: payouts per second end to end for a season's batch: dispatch
(signatures, set-based reservation, outbox), `sika worker` processes on Redis sending
through a zero-latency sandbox, outcomes settled in the ledger, farmers told by SMS.
Also Sika's own CPU time per payout (its worker and dispatch processes, not the sandbox).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg

from bench._common import (
    SIKA,
    Benchmark,
    Outcome,
    Target,
    free_port,
    libpq,
    register,
    run_sika,
    scratch_database,
    stopwatch,
)

REDIS = os.environ.get("SIKA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 2
THREADS = 8
RULES = """
per_bag = 4000
max_bags = 3
budget = 10000000000
[[bands]]
below_ha = 1.0
bags = 1
[[bands]]
below_ha = 2.0
bags = 2
[[bands]]
bags = 3
"""




def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for one in [proc, *proc.children(recursive=True)]:
        try:
            times = one.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _settled(url: str) -> tuple[int, int]:
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('succeeded', 'failed')"
            " OR (status IN ('pending', 'unknown') AND check_due_at IS NULL))"
            " FROM payout_lines"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run(size: int) -> Outcome:
    home = Path(tempfile.mkdtemp(prefix="sika-bench-dispatch-"))
    # agents' private keys never live under SIKA_HOME, as on real machines
    keys = Path(tempfile.mkdtemp(prefix="sika-bench-keys-"))
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [SIKA, "sandbox", "serve", "--port", str(port)],
        env={k: v for k, v in os.environ.items() if not k.startswith("SIKA_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with scratch_database("dispatch") as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")} | {
                "SIKA_HOME": str(home),
                "SIKA_KEYS_DIR": str(keys),
                "SIKA_DATABASE_URL": url,
                "SIKA_SANDBOX_URL": sandbox_url,
                "SIKA_BROKER_URL": REDIS,
                "SIKA_QUEUE_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
                "SIKA_LOG_LEVEL": "WARNING",
                "SIKA_DISPATCH_CHUNK": "200",
                "SIKA_DISPATCH_CONCURRENCY": "16",
                "SIKA_STATUS_CHECK_DELAYS": "[1, 2, 4]",
            }
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{sandbox_url}/_sandbox/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            # the batch, built and approved as agents would (not measured)
            from agripme.sample import write_sample_registry

            for name in ("root", "awa", "kodjo", "afi"):
                (home / f"{name}.pub").write_text(run_sika(env, "agent", "keygen", name))
            run_sika(env, "agent", "bootstrap", "root", "--public-key", str(home / "root.pub"))
            for name, role in (("awa", "maker"), ("kodjo", "approver"), ("afi", "treasurer")):
                run_sika(env, "agent", "add", name, "--role", role,
                      "--public-key", str(home / f"{name}.pub"), "--agent", "root")  # fmt: skip
            registry = write_sample_registry(home / "farmers.csv", size)
            run_sika(env, "agripme", "farmers", "import", str(registry), "--agent", "awa")
            (home / "season.toml").write_text(RULES, encoding="utf-8")
            run_sika(
                env,
                "agripme",
                "season",
                "create",
                "2026A",
                "--rules",
                str(home / "season.toml"),
                "--agent",
                "afi",
            )
            created = json.loads(
                run_sika(
                    env,
                    "agripme",
                    "batch",
                    "create",
                    "--season",
                    "2026A",
                    "--agent",
                    "awa",
                    "--json",
                )
            )
            batch, total = str(created["batch"]), int(created["total"])
            run_sika(env, "agripme", "batch", "approve", batch, "--agent", "kodjo")
            for operator in ("flooz", "tmoney"):
                run_sika(
                    env,
                    "funds",
                    "add",
                    "--operator",
                    operator,
                    "--amount",
                    str(total),
                    "--agent",
                    "afi",
                )
            for _ in range(WORKERS):
                workers.append(
                    subprocess.Popen(
                        [SIKA, "worker", "--threads", str(THREADS)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(3)  # workers connected and idle before the clock starts
            watched = [psutil.Process(w.pid) for w in workers]
            cpu_before = sum(_cpu_seconds(p) for p in watched)
            sandbox_cpu_before = _cpu_seconds(psutil.Process(sandbox.pid))
            with stopwatch() as elapsed:
                dispatcher = subprocess.Popen(
                    [SIKA, "agripme", "batch", "dispatch", batch, "--agent", "kodjo"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                dispatch_proc = psutil.Process(dispatcher.pid)
                dispatch_cpu = 0.0
                while dispatcher.poll() is None:
                    dispatch_cpu = _cpu_seconds(dispatch_proc) or dispatch_cpu
                    time.sleep(0.05)
                reserve_seconds = elapsed()
                while True:
                    lines, done = _settled(url)
                    if done >= lines:
                        break
                    time.sleep(0.25)
            seconds = elapsed()
            worker_cpu = sum(_cpu_seconds(p) for p in watched) - cpu_before
            sandbox_cpu = _cpu_seconds(psutil.Process(sandbox.pid)) - sandbox_cpu_before
            with psycopg.connect(libpq(url)) as conn:
                statuses = dict(
                    conn.execute("SELECT status, count(*) FROM payout_lines GROUP BY 1").fetchall()
                )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        sandbox.terminate()
        sandbox.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
    per_second = lines / seconds
    sika_cpu = worker_cpu + dispatch_cpu
    return Outcome(
        figures={
            "lines": lines,
            "seconds": seconds,
            "dispatch_command_seconds": reserve_seconds,
            "statuses": statuses,
            "sika_cpu_seconds": sika_cpu,
            "sandbox_cpu_seconds": sandbox_cpu,
            "sika_cpu_ms_per_payout": 1000 * sika_cpu / lines,
            "sms_per_payout": 1,
        },
        reference={
            "sandbox_cpu_ms_per_payout": 1000 * sandbox_cpu / lines,
            "note": "the sandbox answers each payout and each SMS on the same two cores",
        },
        scores={"payouts_per_second": per_second},
        method={
            "workers": f"{WORKERS} `sika worker` processes x {THREADS} threads on Redis, "
            "16 requests in flight per operator per process, 200 lines a message",
            "clock": "from `sika agripme batch dispatch` starting to every line final "
            "(or pending/unknown with no query left)",
            "cpu": "Sika's own time is the user+system CPU of the worker and dispatch "
            "processes during the run; PostgreSQL's and the sandbox's are not in it",
        },
    )


register(
    Benchmark(
        name="dispatch",
        default_size=50_000,
        targets=(Target("payouts_per_second", ">=", 1000, "payouts/s"),),
        run=run,
        summary="a season's batch paid end to end through workers and a zero-latency sandbox",
    )
)
