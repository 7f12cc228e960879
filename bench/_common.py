"""What every benchmark shares: the registry of benchmarks, throw-away databases, the
machine's description, targets and gaps, peak-memory sampling and the results file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ADMIN_URL = os.environ.get(
    "SIKA_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# --- targets and results ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal on one measured figure: `value <op> goal`, e.g. ratio >= 0.8."""

    metric: str
    op: Literal[">=", "<="]
    goal: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return value >= self.goal if self.op == ">=" else value <= self.goal

    def gap(self, value: float) -> float:
        """How far the value is from the goal, in the metric's unit; 0 when met."""
        missing = self.goal - value if self.op == ">=" else value - self.goal
        return max(0.0, missing)


@dataclass
class Outcome:
    """What one benchmark run measured: Sika's figures, the reference work's figures
    (measured in the same run), the figures targets apply to, and how it was done."""

    figures: dict[str, Any]
    reference: dict[str, Any]
    scores: dict[str, float]
    method: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """One entry of `python -m bench`: its name, default size and what it runs."""

    name: str
    default_size: int
    targets: tuple[Target, ...]
    run: Callable[[int], Outcome]
    summary: str


_REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    """Make a benchmark known to `python -m bench` (each module registers its own)."""
    if benchmark.name in _REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} registered twice")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def registered() -> dict[str, Benchmark]:
    """Every registered benchmark, by name, in registration order."""
    return dict(_REGISTRY)


def round_figure(value: Any) -> Any:
    """Floats to 4 significant decimals for reading; everything else unchanged."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: round_figure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [round_figure(v) for v in value]
    return value


def build_result(
    benchmark: Benchmark, size: int, outcome: Outcome, elapsed: float
) -> dict[str, Any]:
    """The results document of one run, the same shape for every benchmark."""
    target = {
        t.metric: f"{t.op} {t.goal:g}{(' ' + t.unit) if t.unit else ''}" for t in benchmark.targets
    }
    gap = {t.metric: t.gap(outcome.scores[t.metric]) for t in benchmark.targets}
    met = {t.metric: t.met(outcome.scores[t.metric]) for t in benchmark.targets}
    return round_figure(
        {
            "name": benchmark.name,
            "summary": benchmark.summary,
            "size": size,
            "figures": outcome.figures,
            "reference": outcome.reference,
            "scores": outcome.scores,
            "target": target,
            "gap": gap,
            "met_each": met,
            "met": all(met.values()),
            "method": outcome.method,
            "machine": machine(),
            "duration_s": elapsed,
            "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )


def write_result(result: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result['name']}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --- the machine ------------------------------------------------------------------------------


def postgresql_version(url: str = ADMIN_URL) -> str:
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def machine() -> dict[str, Any]:
    """The cores, memory, Python and PostgreSQL the figures were measured on."""
    return {
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "postgresql": postgresql_version(),
        "load_average_at_end": list(os.getloadavg()),
    }


# --- databases --------------------------------------------------------------------------------


def libpq(url: str) -> str:
    """A SQLAlchemy URL as plain psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def url_for(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def scratch_database(tag: str, *, migrate: bool = True) -> Iterator[str]:
    """A new `sika_bench_<tag>_…` database (with Sika's schema unless `migrate` is
    false), dropped afterwards whatever happens; yields its SQLAlchemy URL."""
    name = f"sika_bench_{tag}_{uuid.uuid4().hex[:8]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = url_for(name)
        if migrate:
            from core import db
            from core import migrate as migrations

            engine = db.build_engine(url, pool_size=1)
            try:
                migrations.upgrade(engine)
            finally:
                engine.dispose()
        yield url
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def vacuum_analyze(url: str) -> None:
    """Settle a database between two measured phases so neither pays the other's debts."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


# --- timing and memory ------------------------------------------------------------------------


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed:` … `elapsed()` seconds, frozen when the block ends."""
    started = time.perf_counter()
    ended: list[float] = []
    yield lambda: (ended[0] if ended else time.perf_counter()) - started
    ended.append(time.perf_counter())


class PeakRss:
    """Samples the memory of a process and all its children until stopped: `peak` is
    the largest sum of their RSS seen (bytes; pages a forked child shares with its parent
    count twice), `peak_pss` the largest sum of their PSS (shared pages split)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0
        self.peak_pss = 0

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                rss = pss = 0
                for process in tree:
                    try:
                        info = process.memory_full_info()
                    except psutil.NoSuchProcess:
                        continue
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                self.peak = max(self.peak, rss)
                self.peak_pss = max(self.peak_pss, pss)
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self._interval)


# the installed `sika` beside this interpreter, as a person runs it
SIKA = str(Path(sys.executable).parent / "sika")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a sandbox the benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_sika(env: dict[str, str], *args: str) -> str:
    """Run `sika` with `env` and return its stdout; a failure raises with its stderr."""
    result = subprocess.run(
        [SIKA, *args], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"sika {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout
