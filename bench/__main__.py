"""`python -m bench NAME [--size N]` runs one benchmark, `python -m bench all` runs every
one; each writes `bench/results/NAME.json` and prints a one-line summary to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import signal
import sys
import time

import bench
from bench._common import Benchmark, build_result, registered, write_result


def discover() -> dict[str, Benchmark]:
    """Import every public module of the package: each registers its benchmark."""
    for module in pkgutil.iter_modules(bench.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"bench.{module.name}")
    return registered()


def run_one(benchmark: Benchmark, size: int | None) -> dict[str, object]:
    chosen = size or benchmark.default_size
    print(f"bench {benchmark.name}: size {chosen:,} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    outcome = benchmark.run(chosen)
    result = build_result(benchmark, chosen, outcome, time.perf_counter() - started)
    path = write_result(result)
    verdict = "met" if result["met"] else "MISSED"
    print(
        f"bench {benchmark.name}: {json.dumps(result['scores'])} target "
        f"{json.dumps(result['target'], ensure_ascii=False)} → {verdict} ({path})",
        file=sys.stderr,
        flush=True,
    )
    return result


def _stop(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so scratch databases are dropped on the way out
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    benchmarks = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=[*benchmarks, "all"])
    parser.add_argument("--size", type=int, default=None, help="override the default size")
    args = parser.parse_args(argv)
    if args.size is not None and args.size <= 0:
        parser.error("--size must be positive")
    chosen = list(benchmarks.values()) if args.name == "all" else [benchmarks[args.name]]
    results = [run_one(benchmark, args.size) for benchmark in chosen]
    # exit 3 when a target is missed, like Sika's other check-style commands
    return 0 if all(result["met"] for result in results) else 3


if __name__ == "__main__":
    sys.exit(main())
