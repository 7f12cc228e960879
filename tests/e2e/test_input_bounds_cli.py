"""Out-of-bounds input at the command line: one sentence on stderr, exit 1, no traceback,
and nothing done (the operator's float least of all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Result, run_sika

HEADER = "national_id,first_name,last_name,phone,region,prefecture,canton,village,crop,area_ha\n"


def _refused(result: Result, *words: str) -> None:
    assert result.code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize("amount", ["9223372036854775807", "9223372036854775808"])
def test_ledger_transfer_of_an_amount_past_the_bound(
    sika_env: dict[str, str], amount: str
) -> None:
    result = run_sika(
        "ledger", "transfer", "--id", "t1", "--debit", "treasury", "--credit", "float:flooz",
        "--amount", amount, env=sika_env,
    )
    _refused(result, "transfer t1", "10^15")


def test_funds_add_past_the_bound_never_reaches_the_operator(sika_env: dict[str, str]) -> None:
    # a sandbox nobody listens on: reaching it would be another error, about the sandbox
    env = {**sika_env, "SIKA_SANDBOX_URL": "http://127.0.0.1:9"}
    result = run_sika(
        "funds", "add", "--operator", "flooz", "--amount", "9223372036854775808",
        "--agent", "root", env=env,
    )
    _refused(result, "--amount", "10^15")
    assert "sandbox" not in result.stderr


def test_a_season_budget_of_two_to_the_63_minus_one(
    sika_env: dict[str, str], tmp_path: Path
) -> None:
    rules = tmp_path / "season.toml"
    rules.write_text(
        "per_bag = 4000\nmax_bags = 3\nbudget = 9223372036854775807\n[[bands]]\nbags = 1\n",
        encoding="utf-8",
    )
    result = run_sika(
        "agripme", "season", "create", "2026A", "--rules", str(rules), "--agent", "root",
        env=sika_env,
    )
    _refused(result, "budget")


def test_a_registry_field_of_200_kb(sika_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "farmers.csv"
    path.write_text(
        HEADER
        + "TG-001,Afi,Mensah,22890123401,Savanes,Tone,Dapaong,Nano,mil,1.5\n"
        + "TG-002," + "A" * 200_000 + ",Mensah,22890123402,Savanes,Tone,Dapaong,Nano,mil,1.5\n",
        encoding="utf-8",
    )
    result = run_sika("agripme", "farmers", "import", str(path), "--dry-run", env=sika_env)
    _refused(result, "row 2", "first_name", "4096 bytes")
