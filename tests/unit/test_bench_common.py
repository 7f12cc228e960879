"""The benchmark harness: targets and gaps, and the registry `python -m bench` uses."""

from __future__ import annotations

from bench.__main__ import discover
from bench._common import Target, round_figure


def test_a_target_reports_its_gap_in_the_metric_unit() -> None:
    at_least = Target("ratio", ">=", 0.8)
    at_most = Target("seconds", "<=", 60, "s")
    assert (at_least.met(0.9), at_least.gap(0.9)) == (True, 0.0)
    assert (at_least.met(0.5), round(at_least.gap(0.5), 6)) == (False, 0.3)
    assert (at_most.met(75.0), at_most.gap(75.0)) == (False, 15.0)


def test_every_benchmark_module_registers_itself() -> None:
    benchmarks = discover()
    assert {"ledger", "batch", "import", "peer"} <= set(benchmarks)
    assert all(b.targets and b.default_size > 0 for b in benchmarks.values())


def test_figures_are_rounded_for_reading_only() -> None:
    assert round_figure({"a": 1.234567, "b": [1], "c": {"d": 2.00001}}) == {
        "a": 1.2346,
        "b": [1],
        "c": {"d": 2.0},
    }
