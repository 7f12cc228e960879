"""The pre-flight through the CLI, as a maker and an approver use it: `batch create` looks
every wallet up and says what it found, `batch held` lists the lines kept out, `batch
include` puts one back with a reason and signs the new manifest, `batch approve` prints the
summary before signing, and `batch show --json` carries it. Bad input is one sentence.
"""

from __future__ import annotations

import json

from tests.conftest import run_sika
from tests.fixtures.sandbox import Sandbox
from tests.payout_world import build_world, sika_ok


def _env(sika_env: dict[str, str], sandbox: Sandbox) -> dict[str, str]:
    return {
        **sika_env,
        "SIKA_SANDBOX_URL": sandbox.url,
        "SIKA_OPERATOR_TIMEOUT": "2",
        "SIKA_LOG_LEVEL": "WARNING",
    }


def _refused(env: dict[str, str], *args: str, match: str) -> None:
    """`sika <args>` exits 1 with one sentence on stderr containing `match`."""
    result = run_sika(*args, env=env)
    assert result.code == 1, (args, result.stdout, result.stderr)
    message = result.stderr.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    assert match in message, message


def test_create_held_include_approve_show(sika_env, sandbox, tmp_path):
    env = _env(sika_env, sandbox)
    # Given 8 farmers: two whose wallets are someone else's, two not registered, four fine
    build_world(env, tmp_path, farmers=8, test_numbers=("000010", "000002"))

    # When the maker builds the batch
    created = run_sika(
        "agripme", "batch", "create", "--season", "2026A", "--agent", "awa", "--json", env=env
    )
    assert created.code == 0, created.stderr
    batch = json.loads(created.stdout)
    batch_id = batch["batch"]
    # Then it says what the look-ups found, on stdout and on stderr
    assert batch["preflight"] == {
        "ok": 4,
        "name_mismatch": 2,
        "not_registered": 2,
        "inactive": 0,
        "locked": 0,
        "at_balance_cap": 0,
        "ported": 0,
        "unreachable": 0,
        "included_by_maker": 0,
    }
    assert (batch["lines"], batch["held_out"]) == (4, 4)
    assert f"batch {batch_id} pre-flight: ok 4 · name_mismatch 2 · not_registered 2" in (
        created.stderr
    )

    # And the lines kept out are listed, the name mismatches includable
    held = json.loads(sika_ok("agripme", "batch", "held", str(batch_id), "--json", env=env))
    by_verdict: dict[str, list[dict]] = {}
    for row in held["held"]:
        by_verdict.setdefault(row["verdict"], []).append(row)
    assert {k: len(v) for k, v in by_verdict.items()} == {"name_mismatch": 2, "not_registered": 2}
    assert all(r["includable"] for r in by_verdict["name_mismatch"])
    assert not any(r["includable"] for r in by_verdict["not_registered"])
    assert all("****" in r["msisdn"] for r in held["held"])
    mismatch, excluded = by_verdict["name_mismatch"][0], by_verdict["not_registered"][0]
    in_manifest = ({1, 2, 3, 4, 5, 6, 7, 8} - {r["line"] for r in held["held"]}).pop()

    # Bad input is one sentence naming the field, exit 1, and changes nothing
    include = ("agripme", "batch", "include")
    _refused(
        env,
        *include,
        "4242",
        "--line",
        "1",
        "--reason",
        "x",
        "--agent",
        "awa",
        match="no payout batch 4242",
    )
    _refused(
        env,
        *include,
        str(batch_id),
        "--line",
        "99",
        "--reason",
        "known",
        "--agent",
        "awa",
        match="--line: batch",
    )
    _refused(
        env,
        *include,
        str(batch_id),
        "--line",
        str(excluded["line"]),
        "--reason",
        "known",
        "--agent",
        "awa",
        match="--line: ",
    )
    _refused(
        env,
        *include,
        str(batch_id),
        "--line",
        str(in_manifest),
        "--reason",
        "known",
        "--agent",
        "awa",
        match="is in the manifest",
    )
    _refused(
        env,
        *include,
        str(batch_id),
        "--line",
        str(mismatch["line"]),
        "--reason",
        "  ",
        "--agent",
        "awa",
        match="--reason",
    )
    unchanged = json.loads(sika_ok("agripme", "batch", "show", str(batch_id), "--json", env=env))
    assert unchanged["manifest"] == batch["manifest"]
    assert unchanged["preflight"]["included_by_maker"] == 0

    # When the maker runs the pre-flight again, Then the cache answers: nothing changes
    rerun = run_sika(
        "agripme", "batch", "preflight", str(batch_id), "--agent", "awa", "--json", env=env
    )
    assert rerun.code == 0, rerun.stderr
    assert json.loads(rerun.stdout)["manifest"] == batch["manifest"]
    assert json.loads(rerun.stdout)["preflight"] == batch["preflight"]

    # When the maker includes one with a reason
    reason = "Known to the cooperative: the wallet is her son's, who farms with her"
    included = json.loads(
        sika_ok(
            *include,
            str(batch_id),
            "--line",
            str(mismatch["line"]),
            "--reason",
            reason,
            "--agent",
            "awa",
            "--json",
            env=env,
        )
    )
    # Then the manifest changed and the maker signed it again
    assert included["manifest"] != batch["manifest"]
    assert (included["lines"], included["included_by"], included["reason"]) == (5, "awa", reason)

    # When the approver approves, Then the summary is printed before the signature
    approved = run_sika("agripme", "batch", "approve", str(batch_id), "--agent", "kodjo", env=env)
    assert approved.code == 0, approved.stderr
    assert (
        f"batch {batch_id} pre-flight: ok 4 · name_mismatch 2 · not_registered 2"
        " · included_by_maker 1"
    ) in approved.stderr

    # And `batch show --json` carries the pre-flight object; the table shows it too
    shown = json.loads(sika_ok("agripme", "batch", "show", str(batch_id), "--json", env=env))
    assert shown["status"] == "approved"
    assert shown["lines"] == 5
    assert shown["preflight"] == {**batch["preflight"], "included_by_maker": 1}
    # the line still held at approval failed as name_mismatch, the excluded ones as theirs
    assert shown["failed"]["by_reason"] == {"name_mismatch": 1, "not_registered": 2}
    table = sika_ok("agripme", "batch", "show", str(batch_id), env={**env, "COLUMNS": "200"})
    assert "ok 4 · name_mismatch 2 · not_registered 2 · included_by_maker 1" in table
    # And nothing more is included once the batch is approved
    other = by_verdict["name_mismatch"][1]
    _refused(
        env,
        *include,
        str(batch_id),
        "--line",
        str(other["line"]),
        "--reason",
        "known",
        "--agent",
        "awa",
        match="is approved",
    )
