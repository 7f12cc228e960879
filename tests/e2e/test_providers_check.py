"""`sika providers check` as an operator's first day runs it: the real CLI against the sandbox
over HTTP, in each dialect, and with the mistakes it must name (wrong key, wrong password,
an address nobody answers at, the other dialect).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, run_sika
from tests.fixtures.sandbox import Sandbox, free_port

STEPS = {
    "flooz": ["balance", "status_unknown_reference"],
    "tmoney": [
        "sign_in",
        "balance",
        "status_unknown_reference",
        "collection_status_unknown_reference",
    ],
}
# A wallet each operator holds in the seeded sandbox, any spelling, and how it is shown.
NUMBERS = {
    "flooz": ("+228 96 00 00 01", "22896000001", "22896****01"),
    "tmoney": ("90.00.00.01", "22890000001", "22890****01"),
}
# The table wraps at the terminal's width; wide enough that a detail stays on one line.
WIDE = {"COLUMNS": "400"}


def _env(home: Path, sandbox: Sandbox | None = None, dialect: str = "clients") -> dict[str, str]:
    env = {
        "SIKA_HOME": str(home),
        "SIKA_LOG_FORMAT": "json",
        "SIKA_FLOOZ_DIALECT": dialect,
        "SIKA_TMONEY_DIALECT": dialect,
    }
    if sandbox is not None:
        env["SIKA_SANDBOX_URL"] = sandbox.url
    return env


def _check(operator: str, env: dict[str, str], *extra: str) -> Result:
    return run_sika("providers", "check", "--operator", operator, *extra, env=env)


def _report(result: Result) -> dict:
    report = json.loads(result.stdout)
    assert set(report) == {"operator", "ok", "steps"}
    for step in report["steps"]:
        assert set(step) == {"name", "ok", "detail"}
        assert isinstance(step["ok"], bool)
        assert isinstance(step["detail"], str)
        assert step["detail"]
    return report


def _with_lookup(steps: list[str]) -> list[str]:
    """The steps with `--msisdn`: the look-up right after the balance."""
    at = steps.index("balance") + 1
    return [*steps[:at], "lookup", *steps[at:]]


def _steps(report: dict) -> dict[str, dict]:
    return {step["name"]: step for step in report["steps"]}


@pytest.mark.parametrize("sandbox_dialect", ["clients", "model"])
@pytest.mark.parametrize("operator", ["flooz", "tmoney"])
def test_every_step_passes_in_each_dialect(
    operator: str, sandbox_dialect: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    result = _check(operator, _env(tmp_path, sandbox, sandbox_dialect), "--json")
    assert result.code == 0, result.stdout + result.stderr
    report = _report(result)
    assert report["operator"] == operator
    assert report["ok"] is True
    assert [step["name"] for step in report["steps"]] == STEPS[operator]
    assert all(step["ok"] for step in report["steps"]), report
    steps = _steps(report)
    assert "does not exist" in steps["status_unknown_reference"]["detail"]
    assert "SIKACHECK-" in steps["status_unknown_reference"]["detail"]
    assert "francs" in steps["balance"]["detail"]
    # the probe moved nothing and left nothing behind at the operator
    assert sandbox.transactions(operator) == []


@pytest.mark.parametrize("operator", ["flooz", "tmoney"])
def test_msisdn_adds_a_masked_lookup_row(operator: str, sandbox: Sandbox, tmp_path: Path) -> None:
    typed, number, masked = NUMBERS[operator]
    result = run_sika(
        "providers",
        "check",
        "--operator",
        operator,
        "--msisdn",
        typed,
        env={**_env(tmp_path, sandbox), **WIDE},
    )
    assert result.code == 0, result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert list(rows) == _with_lookup(STEPS[operator])
    assert masked in rows["lookup"]
    assert "active" in rows["lookup"]
    assert number not in result.stdout
    assert "every step passed" in result.stdout
    assert "FAILED" not in result.stdout


def test_lookup_comes_after_balance_in_json(sandbox: Sandbox, tmp_path: Path) -> None:
    typed, number, masked = NUMBERS["tmoney"]
    result = _check("tmoney", _env(tmp_path, sandbox), "--msisdn", typed, "--json")
    assert result.code == 0, result.stdout + result.stderr
    report = _report(result)
    assert [step["name"] for step in report["steps"]] == _with_lookup(STEPS["tmoney"])
    lookup = _steps(report)["lookup"]
    assert lookup["ok"] is True
    assert lookup["detail"].startswith(f"{masked}: active")
    assert number not in result.stdout


def test_wrong_flooz_key_names_refused_credentials(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**_env(tmp_path, sandbox), "SIKA_FLOOZ_KEY": "0123456789abcdef0123456789abcdef"}
    result = _check("flooz", env, "--json")
    assert result.code == 3, result.stdout + result.stderr
    report = _report(result)
    assert report["ok"] is False
    balance = _steps(report)["balance"]
    assert balance["ok"] is False
    assert "refused credentials" in balance["detail"]
    assert "SIKA_FLOOZ_KEY" in balance["detail"]
    # the same refusal would follow: the check stops instead of repeating it
    status = _steps(report)["status_unknown_reference"]
    assert status["ok"] is False
    assert status["detail"].startswith("not run")


def test_wrong_tmoney_password_fails_the_sign_in(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**_env(tmp_path, sandbox), "SIKA_TMONEY_PASSWORD": "not-the-password", **WIDE}
    result = _check("tmoney", env)
    assert result.code == 3, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    sign_in = next(line for line in lines if line.split("│")[1].strip() == "sign_in")
    assert "FAILED" in sign_in
    assert "refused credentials" in sign_in
    assert "SIKA_TMONEY_PASSWORD" in sign_in
    # a refused password is not tried again by the later steps
    assert all("not run" in line for line in lines if "sign_in" not in line.split("│")[1])
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("operator", ["flooz", "tmoney"])
def test_unreachable_url_names_wrong_url_or_firewall(operator: str, tmp_path: Path) -> None:
    prefix = f"SIKA_{operator.upper()}_"
    env = {
        **_env(tmp_path),
        f"{prefix}URL": f"http://127.0.0.1:{free_port()}/{operator}",
        f"{prefix}USERNAME": "sika",
        f"{prefix}PASSWORD": "sika",
        "SIKA_FLOOZ_MSISDN": "22899000000",
    }
    result = _check(operator, env, "--json")
    assert result.code == 3, result.stdout + result.stderr
    report = _report(result)
    assert report["ok"] is False
    first = report["steps"][0]
    assert first["name"] == STEPS[operator][0]
    assert first["ok"] is False
    assert "wrong URL" in first["detail"]
    assert f"{prefix}URL" in first["detail"]
    assert "firewall" in first["detail"]
    assert all(step["detail"].startswith("not run") for step in report["steps"][1:])


def test_the_other_dialect_is_named(sandbox_in: Callable[[str], Sandbox], tmp_path: Path) -> None:
    # A gateway of the first model has no collection-status route of its own: a check in
    # the clients dialect must point at SIKA_TMONEY_DIALECT.
    result = _check("tmoney", _env(tmp_path, sandbox_in("model"), "clients"), "--json")
    assert result.code == 3, result.stdout + result.stderr
    steps = _steps(_report(result))
    assert steps["sign_in"]["ok"] is True
    assert steps["balance"]["ok"] is True
    assert steps["status_unknown_reference"]["ok"] is True
    collection = steps["collection_status_unknown_reference"]
    assert collection["ok"] is False
    assert "wrong dialect" in collection["detail"]
    assert "SIKA_TMONEY_DIALECT is clients; try model" in collection["detail"]


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("--operator", "orange"), "unknown operator 'orange': choose flooz or tmoney"),
        (("--operator", "flooz", "--msisdn", "+33 6 12 34 56 78"), "not a Togolese number"),
        (("--operator", "tmoney", "--msisdn", "12345"), "has 5 digits"),
    ],
)
def test_bad_arguments_exit_1_with_one_sentence(
    args: tuple[str, ...], sentence: str, tmp_path: Path
) -> None:
    # no sandbox and no operator settings: arguments are judged before anything is built
    result = run_sika("providers", "check", *args, env=_env(tmp_path))
    assert result.code == 1
    assert result.stdout == ""
    assert sentence in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
