"""`sika ledger` and `sika audit` as a user runs them: JSON shapes and exit codes,
against the test database and once against the embedded PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import run_sika


def _json(env: dict[str, str], *args: str, code: int = 0) -> dict:
    result = run_sika(*args, "--json", env=env)
    assert result.code == code, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def env(database_url: str, tmp_path) -> dict[str, str]:
    return {"SIKA_HOME": str(tmp_path / "home"), "SIKA_DATABASE_URL": database_url,
            "SIKA_LOG_FORMAT": "json"}


def test_accounts_transfers_holds_and_balances(env: dict[str, str]) -> None:
    # Given a limited float funded by the treasury
    assert _json(env, "ledger", "account", "create", "float:flooz", "--kind", "asset",
                 "--limit", "debits") == {"account": "float:flooz", "kind": "asset",
                                          "limit": "debits", "result": "created"}
    assert _json(env, "ledger", "account", "create", "float:flooz", "--kind", "asset",
                 "--limit", "debits")["result"] == "exists"
    _json(env, "ledger", "account", "create", "treasury", "--kind", "equity")
    _json(env, "ledger", "account", "create", "agripme:subsidy_expense", "--kind", "expense")
    fund = ["ledger", "transfer", "--id", "fund", "--debit", "treasury", "--credit",
            "float:flooz", "--amount", "10000", "--code", "1"]
    assert _json(env, *fund) == {"id": "fund", "result": "created"}
    assert _json(env, *fund) == {"id": "fund", "result": "exists"}
    changed = [*fund[:-4], "--amount", "10001", "--code", "1"]
    assert _json(env, *changed, code=1) == {"id": "fund", "result": "exists_with_different_amount"}
    # When a payout is reserved, partly posted, and another reserved then voided
    hold = ["ledger", "transfer", "--id", "payout:1:reserve", "--debit", "float:flooz",
            "--credit", "agripme:subsidy_expense", "--amount", "9000", "--pending",
            "--timeout", "3600"]
    assert _json(env, *hold)["result"] == "created"
    over = ["ledger", "transfer", "--id", "payout:2:reserve", "--debit", "float:flooz",
            "--credit", "agripme:subsidy_expense", "--amount", "5000"]
    assert _json(env, *over, code=1) == {"id": "payout:2:reserve", "result": "exceeds_credits"}
    assert _json(env, "ledger", "post", "payout:1:reserve", "--amount", "6000") == {
        "id": "payout:1:reserve:post", "result": "created"}
    assert _json(env, "ledger", "post", "payout:1:reserve", "--amount", "6000")["result"] == (
        "exists")
    assert _json(env, "ledger", "void", "payout:1:reserve", code=1)["result"] == (
        "pending_transfer_already_posted")
    assert _json(env, "ledger", "void", "nope", code=1)["result"] == "pending_transfer_not_found"
    # Then the balances show it, the human form too
    assert _json(env, "ledger", "balance", "float:flooz") == {
        "account": "float:flooz", "debits_pending": 0, "debits_posted": 6000,
        "credits_pending": 0, "credits_posted": 10000}
    readable = run_sika("ledger", "balance", "float:flooz", env=env)
    assert readable.code == 0
    assert "credits_posted" in readable.stdout
    refused = run_sika(*over, env=env)
    assert refused.code == 1
    assert "exceeds_credits" in refused.stderr
    assert "Traceback" not in refused.stderr
    today = dt.datetime.now(dt.UTC).date().isoformat()
    lines = _json(env, "ledger", "statement", "float:flooz", "--from", today, "--to", today)
    assert [li["id"] for li in lines["lines"]] == ["fund", "payout:1:reserve",
                                                    "payout:1:reserve:post"]
    ghost = run_sika("ledger", "balance", "ghost", env=env)
    assert ghost.code == 1
    assert "no ledger account ghost" in ghost.stderr
    assert _json(env, "ledger", "verify") == {"ok": True, "accounts": 3, "transfers": 3,
                                              "problems": []}


def test_verify_and_seals_exit_3_when_tampered(env: dict[str, str], database_url: str) -> None:
    _json(env, "ledger", "account", "create", "a", "--kind", "asset")
    _json(env, "ledger", "account", "create", "b", "--kind", "equity")
    _json(env, "ledger", "transfer", "--id", "t1", "--debit", "b", "--credit", "a",
          "--amount", "5")
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("UPDATE ledger_transfers SET created_at = created_at - interval '1 day'")
    sealed = _json(env, "audit", "seal")
    assert sealed["day"] == yesterday
    assert sealed["result"] == "sealed"
    assert sealed["transfers"] == 1
    assert sealed["previous"] is None
    assert sealed["signature"]
    assert _json(env, "audit", "seal", "--date", yesterday)["result"] == "already_sealed"
    today = run_sika("audit", "seal", "--date", dt.datetime.now(dt.UTC).date().isoformat(),
                     env=env)
    assert today.code == 1
    assert "only days that have ended" in today.stderr
    assert _json(env, "audit", "verify")["ok"] is True
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE ledger_transfers DISABLE TRIGGER ALL")
        conn.execute("UPDATE ledger_transfers SET amount = 50")
        conn.execute("ALTER TABLE ledger_transfers ENABLE TRIGGER ALL")
    report = _json(env, "audit", "verify", code=3)
    assert report["ok"] is False
    assert report["bad_days"] == [yesterday]
    plain = run_sika("audit", "verify", env=env)
    assert plain.code == 3
    assert yesterday in plain.stderr
    ledger = _json(env, "ledger", "verify", code=3)
    assert ledger["ok"] is False
    assert len(ledger["problems"]) == 2


def test_embedded_postgres_path(tmp_path) -> None:
    # Only SIKA_HOME: Sika starts its own PostgreSQL and migrates it
    env = {"SIKA_HOME": str(tmp_path / "embedded-home"), "SIKA_LOG_FORMAT": "json"}
    try:
        assert _json(env, "ledger", "account", "create", "float:tmoney", "--kind", "asset",
                     "--limit", "debits")["result"] == "created"
        _json(env, "ledger", "account", "create", "treasury", "--kind", "equity")
        assert _json(env, "ledger", "transfer", "--id", "t1", "--debit", "treasury",
                     "--credit", "float:tmoney", "--amount", "7")["result"] == "created"
        assert _json(env, "ledger", "balance", "float:tmoney")["credits_posted"] == 7
        assert _json(env, "ledger", "verify")["ok"] is True
    finally:
        run_sika("db", "stop", env=env)
