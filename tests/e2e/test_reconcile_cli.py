"""`sika reconcile` as an auditor runs it, after a real AgriPME batch went through the
operator sandbox: every break category, the safe cases settled with the right amounts,
reruns that change nothing, four-eyes resolutions, signed reports and refused statements.
Every run, resolution and approval is a request an auditor (or approver) signs; the
nightly job alone runs as the server, with no agent.

The sandbox writes statements but has no fault that lists a line twice, drops one or
changes an amount or a fee, so those four are edits of the fetched statement's bytes,
passed with --statement; the reversal is the sandbox's own (test number 000008).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import psycopg
import pytest

from tests.conftest import enrol_agents, run_sika
from tests.fixtures.sandbox import Sandbox
from tests.integration.test_reconciliation_html import rendered_bars
from tests.payout_world import (
    PEOPLE,
    _libpq,
    build_world,
    ledger_float,
    lines,
    on_test_number,
    sika_ok,
)

FINDINGS = 3
# the world's treasurer (tests.payout_world.PEOPLE)
TREASURER = next(name for name, role in PEOPLE.items() if role == "treasurer")


def _env(sika_env: dict[str, str], sandbox: Sandbox) -> dict[str, str]:
    return {**sika_env, "SIKA_SANDBOX_URL": sandbox.url, "SIKA_OPERATOR_TIMEOUT": "2"}


def _dispatch(env: dict[str, str], *, in_flight: bool = False) -> int:
    """Create, approve and dispatch the season's batch; with `in_flight`, lines on the
    pending-forever number may still be checked when the wait ends (exit 3)."""
    batch = json.loads(
        sika_ok(
            "agripme", "batch", "create", "--season", "2026A", "--agent", "awa", "--json", env=env
        )
    )["batch"]
    sika_ok("agripme", "batch", "approve", str(batch), "--agent", "kodjo", env=env)
    result = run_sika(
        "agripme",
        "batch",
        "dispatch",
        str(batch),
        "--agent",
        "kodjo",
        "--wait",
        "--json",
        "--timeout",
        "60" if in_flight else "120",
        env=env,
        timeout=300,
    )
    assert result.code in ((0, FINDINGS) if in_flight else (0,)), result.stderr[-3000:]
    return int(batch)


def _reconcile(env: dict[str, str], provider: str, day: str, *extra: str) -> tuple[int, dict]:
    """`sika reconcile run` signed by ama, an auditor."""
    result = run_sika(
        "reconcile", "run", "--provider", provider, "--date", day, "--agent", "ama", "--json",
        *extra, env=env,
    )  # fmt: skip
    assert result.code in (0, FINDINGS), result.stderr[-3000:]
    return result.code, json.loads(result.stdout)


def _query(env: dict[str, str], sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(_libpq(env["SIKA_DATABASE_URL"])) as conn:
        return conn.execute(sql, args).fetchall()


def _account(env: dict[str, str], code: str) -> dict[str, int]:
    rows = _query(
        env,
        "SELECT debits_pending, debits_posted, credits_pending, credits_posted"
        " FROM ledger_accounts WHERE code = %s",
        code,
    )
    if not rows:
        return {"debits_pending": 0, "debits_posted": 0, "credits_pending": 0, "credits_posted": 0}
    return dict(
        zip(
            ("debits_pending", "debits_posted", "credits_pending", "credits_posted"),
            (int(v) for v in rows[0]),
            strict=True,
        )
    )


def _transfers(env: dict[str, str]) -> int:
    return int(_query(env, "SELECT count(*) FROM ledger_transfers")[0][0])


def _rows(data: bytes, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8")), delimiter=delimiter))


def _write(path: Path, rows: list[list[str]], delimiter: str) -> Path:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8"))
    return path


def _ledger_verifies(env: dict[str, str]) -> None:
    result = run_sika("ledger", "verify", env=env)
    assert result.code == 0, result.stdout + result.stderr[-2000:]


def _next_midnight(sandbox: Sandbox) -> int:
    """Seconds to move the sandbox clock to 30 s past its next midnight (UTC)."""
    now = dt.datetime.fromisoformat(sandbox.now())
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int((midnight - now).total_seconds()) + 30


def test_every_category_settled_rerun_and_resolved(
    sika_env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    # Given a dispatched batch paying ordinary farmers and the pending-forever, hanging and
    # reversed test numbers on both operators, and two auditors
    env = _env(sika_env, sandbox)
    build_world(env, tmp_path, farmers=22, test_numbers=("000006", "000007", "000008"))
    enrol_agents(env, {"ama": "auditor", "yao": "auditor"})
    _dispatch(env, in_flight=True)
    paid = lines(env["SIKA_DATABASE_URL"])
    day = sandbox.today()
    assert all(
        r["status"] in ("succeeded", "failed") for r in paid if not r["msisdn"].endswith("000006")
    )
    pending_flooz, pending_tmoney = (
        next(r for r in on_test_number(paid, "000006") if r["operator"] == op)
        for op in ("flooz", "tmoney")
    )
    assert pending_flooz["status"] == pending_tmoney["status"] == "pending"
    reversed_lines = on_test_number(paid, "000008")
    assert {r["status"] for r in reversed_lines} == {"succeeded"}
    specials = {r["reference"] for r in paid if r["msisdn"][-6:].startswith("0000")}
    ordinary = [
        r
        for r in paid
        if r["operator"] == "tmoney"
        and r["status"] == "succeeded"
        and r["reference"] not in specials
    ]
    twice, missing, changed, fee = ordinary[:4]
    budget_before = _account(env, "agripme:budget:2026a")

    # When the Flooz statement shows the pending-forever payout failed
    flooz = _rows(sandbox.statement("flooz", day), ";")
    for row in flooz:
        if row[9] == pending_flooz["reference"]:
            row[10] = "FAILED"
    code, flooz_run = _reconcile(
        env, "flooz", day, "--statement", str(_write(tmp_path / "flooz.csv", flooz, ";"))
    )
    # Then it is voided by itself, the rest matches and nothing stays open
    assert code == 0
    assert flooz_run["counts"]["status_mismatch"] == 1
    assert flooz_run["counts"]["matched"] == len(flooz) - 2
    assert flooz_run["auto_resolved"] == 1
    assert flooz_run["open_exceptions"] == 0
    assert flooz_run["float"]["difference"] == 0

    # When the T-Money statement lists a line twice, lacks one, changes an amount and a
    # fee, and shows the pending-forever payout succeeded (its closing float then lower)
    tmoney = _rows(sandbox.statement("tmoney", day), ",")
    edited = [tmoney[0]]
    for row in tmoney[1:]:
        if row[1] == missing["reference"]:
            continue
        if row[1] == changed["reference"]:
            row[5] = str(int(row[5]) + 500)
        if row[1] == fee["reference"]:
            row[6] = "50"
        if row[1] == pending_tmoney["reference"]:
            row[7] = "SUCCES"
        edited.append(row)
        if row[1] == twice["reference"]:
            edited.append(list(row))
    statement = _write(tmp_path / "tmoney.csv", edited, ",")
    closing = sandbox.floats()["tmoney"] - pending_tmoney["amount"]
    # the statement is complete up to now: every payout of the batch was sent before it
    given = (
        "--statement",
        str(statement),
        "--closing-float",
        str(closing),
        "--cutoff",
        sandbox.now(),
    )
    code, run = _reconcile(env, "tmoney", day, *given)
    # Then each break is in its category with the francs at stake
    assert code == FINDINGS
    assert run["counts"] == {
        "matched": len(tmoney) - 1 - 4,
        "missing_at_provider": 1,
        "missing_in_ledger": 0,
        "amount_mismatch": 1,
        "status_mismatch": 1,
        "duplicate_at_provider": 1,
        "reversed_after_success": 0,
        "aged_pending": 0,
        "fee_mismatch": 1,
    }
    assert run["amounts"]["missing_at_provider"] == missing["amount"]
    assert run["amounts"]["amount_mismatch"] == 500
    assert run["amounts"]["fee_mismatch"] == 50
    assert run["amounts"]["duplicate_at_provider"] == twice["amount"]
    assert run["amounts"]["status_mismatch"] == pending_tmoney["amount"]
    assert run["auto_resolved"] == 1
    assert run["open_exceptions"] == 4
    assert run["float"] == {"ledger": closing, "provider": closing, "difference": 0}
    # And exactly the two in-flight payouts moved: one posted, one voided
    status = {r["reference"]: r["status"] for r in lines(env["SIKA_DATABASE_URL"])}
    assert status[pending_tmoney["reference"]] == "succeeded"
    assert status[pending_flooz["reference"]] == "failed"
    budget = _account(env, "agripme:budget:2026a")
    assert budget["debits_posted"] - budget_before["debits_posted"] == pending_tmoney["amount"]
    assert (
        budget_before["debits_pending"] - budget["debits_pending"]
        == pending_tmoney["amount"] + pending_flooz["amount"]
    )
    assert ledger_float(env["SIKA_DATABASE_URL"], "tmoney") == closing
    _ledger_verifies(env)

    # When the day is run again with the same statement
    transfers = _transfers(env)
    code, again = _reconcile(env, "tmoney", day, *given)
    # Then nothing moves and the result is the same, the first run kept as history
    assert code == FINDINGS
    assert _transfers(env) == transfers
    # the payout the first run posted now agrees with the statement: it is matched
    settled = pending_tmoney["amount"]
    expected_counts = {
        **run["counts"],
        "status_mismatch": 0,
        "matched": run["counts"]["matched"] + 1,
    }
    expected_amounts = {
        **run["amounts"],
        "status_mismatch": 0,
        "matched": run["amounts"]["matched"] + settled,
    }
    assert again["counts"] == expected_counts
    assert again["amounts"] == expected_amounts
    assert again["float"] == run["float"]
    assert again["open_exceptions"] == run["open_exceptions"]
    assert again["auto_resolved"] == 0
    assert _query(
        env, "SELECT count(*), count(superseded_at) FROM recon_runs WHERE provider = 'tmoney'"
    )[0] == (2, 1)

    # And the reports are signed: intact, the HTML draws its chart in Chromium, a tampered
    # copy is refused
    for path in again["report"].values():
        assert run_sika("reconcile", "verify-report", path, env=env).code == 0
    bars = {bar["category"]: bar["width"] for bar in rendered_bars(Path(again["report"]["html"]))}
    assert bars["matched"] > bars["fee_mismatch"] > 0
    html = Path(again["report"]["html"])
    html.write_text(html.read_text(encoding="utf-8").replace("tmoney", "flooz"), encoding="utf-8")
    tampered = run_sika("reconcile", "verify-report", str(html), "--json", env=env)
    assert tampered.code == FINDINGS
    assert json.loads(tampered.stdout)["intact"] is False

    # When the auditors work through the open exceptions
    listed = json.loads(sika_ok("reconcile", "exceptions", "--json", env=env))
    by_category = {x["category"]: x for x in listed}
    assert set(by_category) == {
        "missing_at_provider",
        "amount_mismatch",
        "duplicate_at_provider",
        "fee_mismatch",
    }
    fee_exception = str(by_category["fee_mismatch"]["id"])
    # Then an approver may not resolve
    refused = run_sika(
        "reconcile",
        "resolve",
        fee_exception,
        "--action",
        "book_fee",
        "--note",
        "grid",
        "--agent",
        "kodjo",
        env=env,
    )
    assert refused.code == 1
    assert "auditor" in refused.stderr
    # And booking the fee waits for a second agent: nothing moves before approval
    before = _transfers(env)
    proposal = json.loads(
        sika_ok(
            "reconcile",
            "resolve",
            fee_exception,
            "--action",
            "book_fee",
            "--note",
            "fee on the operator's grid",
            "--agent",
            "ama",
            "--json",
            env=env,
        )
    )
    assert proposal["status"] == "awaiting_approval"
    assert _transfers(env) == before
    assert _account(env, "fees:tmoney")["debits_posted"] == 0
    own = run_sika("reconcile", "approve", fee_exception, "--agent", "ama", env=env)
    assert own.code == 1
    assert "second agent" in own.stderr
    assert _transfers(env) == before
    sika_ok("reconcile", "approve", fee_exception, "--agent", "yao", env=env)
    assert _transfers(env) == before + 1
    assert _account(env, "fees:tmoney")["debits_posted"] == 50
    assert ledger_float(env["SIKA_DATABASE_URL"], "tmoney") == closing - 50
    # And an acknowledgement closes at once without money
    sika_ok(
        "reconcile",
        "resolve",
        str(by_category["amount_mismatch"]["id"]),
        "--action",
        "acknowledge",
        "--note",
        "operator typo, confirmed by phone",
        "--agent",
        "ama",
        env=env,
    )
    assert _transfers(env) == before + 1
    still_open = {
        x["category"] for x in json.loads(sika_ok("reconcile", "exceptions", "--json", env=env))
    }
    assert still_open == {"missing_at_provider", "duplicate_at_provider"}
    _ledger_verifies(env)

    # When the sandbox passes midnight, the 000008 payouts are reversed, and the next day's
    # statements are fetched from the sandbox
    sandbox.advance_clock(_next_midnight(sandbox))
    next_day = sandbox.today()
    assert next_day > day
    code, flooz_next = _reconcile(env, "flooz", next_day)
    tm_closing = sandbox.floats()["tmoney"] - pending_tmoney["amount"] - 50
    code_tm, tmoney_next = _reconcile(env, "tmoney", next_day, "--closing-float", str(tm_closing))
    # Then each reversal moves into suspense, the farmer line is flagged, floats agree
    for result, exit_code in ((flooz_next, code), (tmoney_next, code_tm)):
        assert exit_code == 0
        assert result["counts"]["reversed_after_success"] == 1
        assert sum(result["counts"].values()) == 1
        assert result["auto_resolved"] == 1
        assert result["open_exceptions"] == 0
        assert result["float"]["difference"] == 0
    for line in reversed_lines:
        suspense = _account(env, f"suspense:{line['operator']}")
        assert suspense["credits_posted"] == line["amount"]
        flagged = _query(env, "SELECT flagged FROM payout_lines WHERE id = %s", line["id"])
        assert f"suspense:{line['operator']}" in flagged[0][0]
    _ledger_verifies(env)


def test_clean_batch_reconciles_clean_with_fees(
    sika_env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    # Given an operator charging 25 FCFA + 0.5 % on T-Money payouts, the grid known to Sika,
    # and a normal batch with no test number
    env = _env(sika_env, sandbox)
    sandbox.set_faults({"fee_fixed": 25, "fee_bps": 50})
    build_world(env, tmp_path, farmers=20, test_numbers=())
    enrol_agents(env, {"ama": "auditor"})
    day = sandbox.today()
    grid = ("--fixed", "25", "--bps", "50", "--from", day)
    # the grid is a money rule: an auditor or the treasurer records it, an admin does not
    refused = run_sika("reconcile", "fees", "--provider", "tmoney", *grid, "--agent", "root",
                       env=env)  # fmt: skip
    assert refused.code == 1
    assert "needs auditor or treasurer" in refused.stderr
    sika_ok("reconcile", "fees", "--provider", "tmoney", *grid, "--agent", "ama", env=env)
    sika_ok("reconcile", "fees", "--provider", "flooz", *grid, "--agent", TREASURER, env=env)
    _dispatch(env)
    paid = lines(env["SIKA_DATABASE_URL"])
    assert {r["status"] for r in paid} == {"succeeded"}
    # When each operator's day is reconciled from the sandbox's statement and float
    for provider in ("flooz", "tmoney"):
        code, run = _reconcile(env, provider, day)
        mine = [r for r in paid if r["operator"] == provider]
        # Then every line matches, the fees are booked and the floats agree: exit 0
        assert code == 0
        assert run["counts"]["matched"] == len(mine) == sum(run["counts"].values())
        assert run["open_exceptions"] == 0
        assert run["float"]["difference"] == 0
        fees = sum(25 + r["amount"] * 50 // 10_000 for r in mine)
        assert _account(env, f"fees:{provider}")["debits_posted"] == fees
        assert run["float"]["provider"] == sandbox.floats()[provider]
    assert json.loads(sika_ok("reconcile", "exceptions", "--json", env=env)) == []
    _ledger_verifies(env)


def test_scheduler_once_reconciles_both_operators_then_seals(
    sika_env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    # Given funded floats, and yesterday (only a day that has ended can be sealed)
    env = _env(sika_env, sandbox)
    build_world(env, tmp_path, farmers=4, test_numbers=())
    day = (dt.datetime.fromisoformat(sandbox.now()).date() - dt.timedelta(days=1)).isoformat()
    # When the nightly job runs once for that day
    result = json.loads(sika_ok("scheduler", "--once", "--date", day, "--json", env=env))
    # Then both operators were reconciled clean, then the day was sealed
    for provider in ("flooz", "tmoney"):
        assert result[provider]["date"] == day
        assert result[provider]["open_exceptions"] == 0
        assert result[provider]["float"]["difference"] == 0
        assert Path(result[provider]["report"]["html"]).is_file()
    assert result["seal"]["day"] == day
    runs = _query(env, "SELECT provider FROM recon_runs WHERE day = %s ORDER BY provider", day)
    assert [r[0] for r in runs] == ["flooz", "tmoney"]
    assert run_sika("audit", "verify", env=env).code == 0
    # And the audit log shows each run as the server's act, signed by no agent
    nightly = _query(
        env,
        "SELECT agent_name, signature, arguments->>'provider' FROM audit_log"
        " WHERE action = 'reconcile.nightly' ORDER BY id",
    )
    assert nightly == [(None, None, "flooz"), (None, None, "tmoney")]
    assert _query(env, "SELECT count(*) FROM audit_log WHERE action = 'reconcile.run'") == [(0,)]


MALFORMED = {
    "wrong columns": (b"refTmoney,idRequete,montant\r\nT1,R1,9000\r\n", "line 1"),
    "bad date": (
        b"refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,"
        b"statutRequete\r\nT1,R1,2026-11-23 10:00:00,CREDIT,22890000001,9000,0,SUCCES\r\n"
        b"T2,R2,23/11/2026 10:00,CREDIT,22890000002,9000,0,SUCCES\r\n",
        "line 3",
    ),
    "non-numeric amount": (
        b"refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,"
        b"statutRequete\r\nT1,R1,2026-11-23 10:00:00,CREDIT,22890000001,9 000 F,0,SUCCES\r\n",
        "line 2",
    ),
    "truncated": (
        b"refTmoney,idRequete,dateHeureTmoney,typeRequete,numeroClient,montant,frais,"
        b"statutRequete\r\nT1,R1,2026-11-23 10:00:00,CREDIT,22890000001,9000,0,SUCCES\r\n"
        b"T2,R2,2026-11-23 10:00:00,CRE",
        "line 3",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_statement_refused_with_its_line(
    sika_env: dict[str, str], tmp_path: Path, case: str
) -> None:
    # Given a malformed T-Money statement, and an auditor
    body, where = MALFORMED[case]
    statement = tmp_path / "statement.csv"
    statement.write_bytes(body)
    enrol_agents(sika_env, {"ama": "auditor"})
    # When she reconciles it
    result = run_sika(
        "reconcile",
        "run",
        "--provider",
        "tmoney",
        "--date",
        "2026-11-23",
        "--statement",
        str(statement),
        "--closing-float",
        "0",
        "--agent",
        "ama",
        env=sika_env,
    )
    # Then it is refused in one sentence naming the line, and nothing is recorded (her
    # request neither: it rolled back with the run)
    assert result.code == 1
    assert where in result.stderr
    assert "Traceback" not in result.stderr
    assert _query(sika_env, "SELECT count(*) FROM recon_runs")[0][0] == 0
    assert _query(sika_env, "SELECT count(*) FROM recon_breaks")[0][0] == 0
    assert _transfers(sika_env) == 0
    assert _query(sika_env, "SELECT count(*) FROM audit_log WHERE action = 'reconcile.run'") == [
        (0,)
    ]
