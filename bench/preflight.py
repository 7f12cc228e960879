"""Benchmark `preflight`: a season's batch built with a pre-flight of every line against a
zero-latency sandbox: look-ups per second, and Sika's own CPU time per look-up.

The batch is built as `sika agripme batch create` builds it (`create_season_batch`: the
maker's request checked, every farmer's wallet looked up at its operator a bounded number
at a time, each answer committed to the cache as it comes, the names compared, the batch
written with each line's verdict), in this process, so the look-ups' phase is timed from
the progress callback and Sika's CPU is this process's. Measured in the same run: the
same look-ups through the adapters alone, with the same concurrency but no database and
no name comparison (what the sandbox and HTTP cost), and the pre-flight run again on the
batch, every answer then from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bench._common import (
    SIKA,
    Benchmark,
    Outcome,
    Target,
    free_port,
    register,
    run_sika,
    scratch_database,
    stopwatch,
)

SEASON = "2026A"
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
# the adapters-alone reference looks up at most this many numbers
REFERENCE_LOOKUPS = 20_000
# a season's 100,000-farmer batch checked within five minutes
TARGET_PER_SECOND = 100_000 / 300




def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class _Clock:
    """The pre-flight's progress callback: wall and CPU time when the look-ups start and
    when the last one is answered, and the last progress seen."""

    def __init__(self) -> None:
        self.started: tuple[float, float] | None = None
        self.ended: tuple[float, float] | None = None
        self.progress: Any = None

    def __call__(self, progress: Any) -> None:
        now = (time.perf_counter(), time.process_time())
        if self.started is None:
            self.started = now
        if progress.done >= progress.total:
            self.ended = now
        self.progress = progress

    def seconds(self) -> tuple[float, float]:
        """(wall, CPU) seconds of the look-ups' phase."""
        if self.started is None or self.ended is None:
            raise RuntimeError("the pre-flight never reported its end")
        return self.ended[0] - self.started[0], self.ended[1] - self.started[1]


def _set_up(env: dict[str, str], home: Path, size: int) -> None:
    """Agents, `size` farmers and the season, as agents would make them (not measured)."""
    from agripme.sample import write_sample_registry

    for name in ("root", "awa", "afi"):
        (home / f"{name}.pub").write_text(run_sika(env, "agent", "keygen", name))
    run_sika(env, "agent", "bootstrap", "root", "--public-key", str(home / "root.pub"))
    for name, role in (("awa", "maker"), ("afi", "treasurer")):
        run_sika(env, "agent", "add", name, "--role", role,
              "--public-key", str(home / f"{name}.pub"), "--agent", "root")  # fmt: skip
    registry = write_sample_registry(home / "farmers.csv", size)
    run_sika(env, "agripme", "farmers", "import", str(registry), "--agent", "awa")
    (home / "season.toml").write_text(RULES, encoding="utf-8")
    run_sika(env, "agripme", "season", "create", SEASON, "--rules", str(home / "season.toml"),
          "--agent", "afi")  # fmt: skip


def _adapters_alone(settings: Any, numbers: Sequence[tuple[str, str]]) -> tuple[float, float]:
    """(wall, CPU) seconds to look `numbers` (msisdn, operator) up through the adapters
    alone, as many at a time per operator as the pre-flight asks."""
    from providers.registry import load_adapter

    adapters = {
        op: load_adapter(op, settings, read_timeout=settings.operator_timeout)
        for op in {operator for _, operator in numbers}
    }
    threads = settings.preflight_concurrency * len(adapters)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            answers = list(pool.map(lambda n: adapters[n[1]].lookup(n[0]), numbers))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for adapter in adapters.values():
            adapter.close()
    assert len(answers) == len(numbers)
    return wall, cpu


def run(size: int) -> Outcome:
    from agripme import batches as season_batches
    from core.authority import signed_by
    from core.crypto import load_keys
    from core.db import build_engine
    from core.settings import Settings
    from payouts import preflight
    from payouts.batches import batch_arguments, batch_command
    from payouts.models import LINE_MSISDN, BatchStep, PayoutLine

    load_at_start = list(os.getloadavg())
    home = Path(tempfile.mkdtemp(prefix="sika-bench-preflight-"))
    # agents' private keys never live under SIKA_HOME, as on real machines
    keys_dir = Path(tempfile.mkdtemp(prefix="sika-bench-keys-"))
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    # no faults, no latency: what is measured is Sika's side
    sandbox = subprocess.Popen(
        [SIKA, "sandbox", "serve", "--port", str(port)],
        env={k: v for k, v in os.environ.items() if not k.startswith("SIKA_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with scratch_database("preflight") as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")} | {
                "SIKA_HOME": str(home),
                "SIKA_KEYS_DIR": str(keys_dir),
                "SIKA_DATABASE_URL": url,
                "SIKA_SANDBOX_URL": sandbox_url,
                "SIKA_LOG_LEVEL": "WARNING",
            }
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{sandbox_url}/_sandbox/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            _set_up(env, home, size)
            settings = Settings(
                home=home,
                keys_dir=keys_dir,
                database_url=url,
                sandbox_url=sandbox_url,
                log_level="WARNING",
            )
            keys = load_keys(settings)
            engine = build_engine(url, pool_size=settings.preflight_concurrency * 2 + 2)
            factory = sessionmaker(engine, expire_on_commit=False)
            sandbox_proc = psutil.Process(sandbox.pid)
            try:
                # the batch built with its pre-flight: every number asked once
                request = signed_by(
                    "awa",
                    season_batches.BATCH_CREATE,
                    season_batches.batch_create_arguments(SEASON),
                    settings=settings,
                )
                clock = _Clock()
                sandbox_cpu = _cpu_seconds(sandbox_proc)
                with stopwatch() as create_elapsed:
                    batch = season_batches.create_season_batch(
                        factory, request, SEASON, keys, settings=settings, on_progress=clock
                    )
                create_seconds = create_elapsed()
                sandbox_cpu = _cpu_seconds(sandbox_proc) - sandbox_cpu
                seconds, cpu = clock.seconds()
                first = clock.progress
                lookups = int(first.looked_up)
                verdicts = dict(first.verdicts)
                # the pre-flight run again on the batch: every answer from the cache
                again = signed_by(
                    "awa",
                    batch_command("agripme", BatchStep.PREFLIGHT),
                    batch_arguments(batch.id),
                    settings=settings,
                )
                cached = _Clock()
                preflight.rerun_preflight(
                    factory,
                    again,
                    batch.id,
                    settings=settings,
                    keys=keys,
                    payees=season_batches.FarmerRegistry(keys),
                    on_progress=cached,
                )
                cached_seconds, cached_cpu = cached.seconds()
                cached_asked = int(cached.progress.looked_up)
                # the reference: the same numbers through the adapters alone
                with factory() as session:
                    rows = session.execute(
                        select(PayoutLine.msisdn_enc, PayoutLine.operator)
                        .order_by(PayoutLine.id)
                        .limit(REFERENCE_LOOKUPS)
                    ).all()
                numbers = [
                    (keys.keyring.decrypt(bytes(enc), LINE_MSISDN), operator)
                    for enc, operator in rows
                ]
                reference_sandbox_cpu = _cpu_seconds(sandbox_proc)
                alone_seconds, alone_cpu = _adapters_alone(settings, numbers)
                reference_sandbox_cpu = _cpu_seconds(sandbox_proc) - reference_sandbox_cpu
            finally:
                engine.dispose()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(keys_dir, ignore_errors=True)
    per_second = lookups / seconds
    cpu_ms = 1000 * cpu / lookups
    return Outcome(
        figures={
            "lines": size,
            "lookups": lookups,
            "lookup_seconds": seconds,
            "batch_create_seconds": create_seconds,
            "verdicts": verdicts,
            "sika_cpu_seconds": cpu,
            "sika_cpu_ms_per_lookup": cpu_ms,
            "sandbox_cpu_ms_per_lookup": 1000 * sandbox_cpu / lookups,
            "rerun_from_cache_seconds": cached_seconds,
            "rerun_from_cache_asked": cached_asked,
            "rerun_from_cache_cpu_ms_per_line": 1000 * cached_cpu / size,
            "load_average_at_start": load_at_start,
        },
        reference={
            "adapters_alone_lookups": len(numbers),
            "adapters_alone_per_second": len(numbers) / alone_seconds,
            "adapters_alone_cpu_ms_per_lookup": 1000 * alone_cpu / len(numbers),
            "sandbox_cpu_ms_per_lookup": 1000 * reference_sandbox_cpu / len(numbers),
            "note": "the same numbers looked up through Sika's adapters with the same"
            " concurrency, no database, no cache and no name comparison; the sandbox"
            " answers on the same two cores",
        },
        scores={"lookups_per_second": per_second, "sika_cpu_ms_per_lookup": cpu_ms},
        method={
            "preflight": f"`create_season_batch` in this process, SIKA_PREFLIGHT_CONCURRENCY"
            f" {settings.preflight_concurrency} per operator, an empty cache; each answer"
            " committed to preflight_lookups as it comes",
            "clock": "look-ups per second from the pre-flight's first progress report to its"
            " last (the batch's build around it is batch_create_seconds)",
            "cpu": "Sika's own time is this process's user+system CPU over the look-ups'"
            " phase; PostgreSQL's and the sandbox's are not in it",
            "sandbox": "`sika sandbox serve` with no faults and no latency",
        },
    )


register(
    Benchmark(
        name="preflight",
        default_size=100_000,
        targets=(Target("lookups_per_second", ">=", round(TARGET_PER_SECOND, 1), "look-ups/s"),),
        run=run,
        summary="a season's batch built with a pre-flight of every line against a"
        " zero-latency sandbox",
    )
)
