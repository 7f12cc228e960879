"""`sika ledger` and `sika audit` as people run them: JSON shapes and exit codes, manual
entries made by a maker and executed by a different approver, against the test database
and once against the embedded PostgreSQL.

The tests on the test database start at 23:59:59 on 31 December on Sika's clock, so the
days they read (a statement's, a seal's) turn while they run."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core import clock
from ledger import api
from ledger.types import AccountKind, AccountSpec, Transfer
from tests.conftest import Result, enrol_agents, new_years_eve, run_sika


def _json(env: dict[str, str], *args: str, code: int = 0) -> dict:
    result = run_sika(*args, "--json", env=env)
    assert result.code == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def _refused(result: Result, *words: str) -> str:
    """One sentence on stderr, exit 1, no traceback; the sentence."""
    assert result.code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _entry(env: dict[str, str], *args: str, code: int = 0) -> dict:
    """A manual entry end to end: awa (maker) proposes it, kodjo (approver) executes it;
    the approval's JSON."""
    proposed = _json(env, *args, "--agent", "awa")
    assert proposed["status"] == "proposed"
    return _json(env, "ledger", "approve", str(proposed["proposal"]), "--agent", "kodjo",
                 code=code)


@pytest.fixture
def env(
    sika_env: dict[str, str], clock_at: Callable[[dt.datetime], dt.datetime]
) -> dict[str, str]:
    """awa (maker), kodjo (approver), kofi (treasurer), at 23:59:59 on 31 December."""
    clock_at(new_years_eve())
    enrol_agents(sika_env, {"awa": "maker", "kodjo": "approver", "kofi": "treasurer"})
    return sika_env


def test_accounts_transfers_holds_and_balances(env: dict[str, str]) -> None:
    first_day = clock.today()  # 31 December; the last day read below is 1 January
    # Given a limited float funded by the treasury
    create = ["ledger", "account", "create", "float:flooz", "--kind", "asset", "--limit",
              "debits", "--agent", "awa"]
    assert _json(env, *create) == {"account": "float:flooz", "kind": "asset",
                                   "limit": "debits", "result": "created"}
    assert _json(env, *create)["result"] == "exists"
    _json(env, "ledger", "account", "create", "treasury", "--kind", "equity", "--agent", "kofi")
    _json(env, "ledger", "account", "create", "agripme:subsidy_expense", "--kind", "expense",
          "--agent", "awa")
    fund = ["ledger", "transfer", "--id", "fund", "--debit", "treasury", "--credit",
            "float:flooz", "--amount", "10000", "--code", "1"]
    executed = _entry(env, *fund)
    assert executed == {"proposal": executed["proposal"], "id": "fund", "result": "created",
                        "status": "executed"}
    assert _entry(env, *fund)["result"] == "exists"
    changed = [*fund[:-4], "--amount", "10001", "--code", "1"]
    refused = _entry(env, *changed, code=1)
    assert (refused["result"], refused["status"]) == ("exists_with_different_amount", "refused")
    # When a hold is reserved, partly posted, and another transfer overdraws the float
    hold = ["ledger", "transfer", "--id", "hold:1", "--debit", "float:flooz", "--credit",
            "agripme:subsidy_expense", "--amount", "9000", "--pending", "--timeout", "3600"]
    assert _entry(env, *hold)["result"] == "created"
    over = ["ledger", "transfer", "--id", "over:2", "--debit", "float:flooz",
            "--credit", "agripme:subsidy_expense", "--amount", "5000"]
    assert _entry(env, *over, code=1)["result"] == "exceeds_credits"
    posted = _entry(env, "ledger", "post", "hold:1", "--amount", "6000")
    assert (posted["id"], posted["result"]) == ("hold:1:post", "created")
    assert _entry(env, "ledger", "post", "hold:1", "--amount", "6000")["result"] == "exists"
    assert _entry(env, "ledger", "void", "hold:1", code=1)["result"] == (
        "pending_transfer_already_posted")
    # Then a void of a transfer the ledger never had is refused before anyone approves
    _refused(run_sika("ledger", "void", "nope", "--agent", "awa", env=env),
             "no transfer nope in the ledger")
    # And the balances show it, the human form too
    assert _json(env, "ledger", "balance", "float:flooz") == {
        "account": "float:flooz", "debits_pending": 0, "debits_posted": 6000,
        "credits_pending": 0, "credits_posted": 10000}
    readable = run_sika("ledger", "balance", "float:flooz", env=env)
    assert readable.code == 0
    assert "credits_posted" in readable.stdout
    proposal = _json(env, *over, "--id", "over:3", "--agent", "awa")["proposal"]
    refusal = _refused(
        run_sika("ledger", "approve", str(proposal), "--agent", "kodjo", env=env),
        "exceeds_credits",
    )
    assert "over:3" in refusal
    days = ["--from", first_day.isoformat(), "--to", clock.today().isoformat()]
    lines = _json(env, "ledger", "statement", "float:flooz", *days)
    assert [li["id"] for li in lines["lines"]] == ["fund", "hold:1", "hold:1:post"]
    ghost = run_sika("ledger", "balance", "ghost", env=env)
    assert ghost.code == 1
    assert "no ledger account ghost" in ghost.stderr
    assert _json(env, "ledger", "verify") == {"ok": True, "accounts": 3, "transfers": 3,
                                              "problems": []}
    # And every decision is listed with who made it
    decided = {row["id"]: row for row in _json(env, "ledger", "proposals", "--all")}
    assert decided["hold:1:post"]["maker"] == "awa"
    assert decided["hold:1:post"]["decided_by"] == "kodjo"
    assert decided["over:3"]["status"] == "refused"


def test_a_manual_entry_needs_two_different_people(env: dict[str, str], tmp_path: Path) -> None:
    _json(env, "ledger", "account", "create", "a", "--kind", "asset", "--agent", "awa")
    _json(env, "ledger", "account", "create", "b", "--kind", "equity", "--agent", "awa")
    move = ["ledger", "transfer", "--id", "t1", "--debit", "b", "--credit", "a", "--amount",
            "500"]
    # Given a transfer proposed by awa, a maker
    proposal = str(_json(env, *move, "--agent", "awa")["proposal"])
    assert _json(env, "ledger", "balance", "a")["credits_posted"] == 0
    # When awa approves it herself, or kodjo (an approver) tries to propose one
    _refused(run_sika("ledger", "approve", proposal, "--agent", "awa", env=env), "approver")
    _refused(run_sika(*move, "--id", "t2", "--agent", "kodjo", env=env), "maker")
    # Or awa signs the approval under kodjo's name with her own key
    awa_key = str(Path(env["SIKA_KEYS_DIR"]) / "awa.pem")
    _refused(
        run_sika("ledger", "approve", proposal, "--agent", "kodjo",
                 env={**env, "SIKA_AGENT_KEY": awa_key}),
        "does not verify with the key of agent 'kodjo'",
    )
    # Or someone with no key at all acts as kodjo
    _refused(
        run_sika("ledger", "approve", proposal, "--agent", "kodjo",
                 env={**env, "SIKA_KEYS_DIR": str(tmp_path / "empty")}),
        "no private key for agent 'kodjo'",
    )
    # Or without naming anyone
    _refused(run_sika("ledger", "approve", proposal, env=env), "no acting agent")
    # Then nothing moved, and the proposal still waits
    assert _json(env, "ledger", "balance", "a")["credits_posted"] == 0
    assert [p["proposal"] for p in _json(env, "ledger", "proposals")] == [int(proposal)]
    # And a second proposal of the same transfer is refused while the first waits
    _refused(run_sika(*move, "--agent", "awa", env=env), "already awaits an approver")
    # When kodjo approves it, it moves once; a decision is final
    assert _json(env, "ledger", "approve", proposal, "--agent", "kodjo")["result"] == "created"
    _refused(run_sika("ledger", "approve", proposal, "--agent", "kodjo", env=env),
             "was executed")
    _refused(run_sika("ledger", "reject", proposal, "--agent", "kodjo", env=env),
             "was executed")
    assert _json(env, "ledger", "balance", "a")["credits_posted"] == 500
    # And a rejected proposal moves nothing
    other = str(_json(env, *move, "--id", "t3", "--agent", "awa")["proposal"])
    assert _json(env, "ledger", "reject", other, "--agent", "kodjo")["status"] == "rejected"
    assert _json(env, "ledger", "balance", "a")["credits_posted"] == 500
    # And the audit log holds every signed step, and verifies
    log = run_sika("audit", "log", "--verify", "--json", env=env)
    assert log.code == 0, log.stderr
    actions = [(e["action"], e["agent"]) for e in json.loads(log.stdout)["entries"]]
    assert ("ledger.transfer", "awa") in actions
    assert ("ledger.approve", "kodjo") in actions
    assert ("ledger.reject", "kodjo") in actions


def test_void_of_a_payout_hold_is_refused(env: dict[str, str], session_factory) -> None:
    # Given a payout line's hold, as the payout engine writes it
    with session_factory() as s, s.begin():
        api.create_accounts(s, [AccountSpec("float:flooz", AccountKind.ASSET, "credits"),
                                AccountSpec("budget", AccountKind.LIABILITY)])
        api.create_transfer(s, Transfer.single("fund", "float:flooz", "budget", 1_000))
        api.create_transfer(s, Transfer.pending("payout:3:1", "budget", "float:flooz", 900))
    # When a maker proposes to void it, or to post it, or to write into the engine's ids
    for args in (["void", "payout:3:1"], ["post", "payout:3:1", "--amount", "1"]):
        _refused(run_sika("ledger", *args, "--agent", "awa", env=env),
                 "payout:3:1 holds a payout line's money", "only the payout engine")
    _refused(
        run_sika("ledger", "transfer", "--id", "payout:3:2", "--debit", "budget", "--credit",
                 "float:flooz", "--amount", "5", "--pending", "--agent", "awa", env=env),
        "the payout engine's",
    )
    # Then nothing was proposed and the hold still reserves the line's money
    assert _json(env, "ledger", "proposals", "--all") == []
    assert _json(env, "ledger", "balance", "budget")["debits_pending"] == 900


def test_verify_and_seals_exit_3_when_tampered(
    env: dict[str, str], admin_database_url: str
) -> None:
    _json(env, "ledger", "account", "create", "a", "--kind", "asset", "--agent", "awa")
    _json(env, "ledger", "account", "create", "b", "--kind", "equity", "--agent", "awa")
    # the transfer is made on 1 January, and moved back to the day that has just ended
    yesterday = new_years_eve().date().isoformat()
    while clock.today().isoformat() == yesterday:
        time.sleep(0.05)
    _entry(env, "ledger", "transfer", "--id", "t1", "--debit", "b", "--credit", "a",
           "--amount", "5")
    # a superuser's tampering: sika_app, which Sika connects as, cannot
    url = make_url(admin_database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("UPDATE ledger_transfers SET created_at = created_at - interval '1 day'")
    # sealing and expiry need no agent: any process of the server runs them
    sealed = _json(env, "audit", "seal")
    assert sealed["day"] == yesterday
    assert sealed["result"] == "sealed"
    assert sealed["transfers"] == 1
    assert sealed["previous"] is None
    assert sealed["signature"]
    assert _json(env, "audit", "seal", "--date", yesterday)["result"] == "already_sealed"
    assert _json(env, "ledger", "expire") == {"expired": 0}
    today = run_sika("audit", "seal", "--date", clock.today().isoformat(), env=env)
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


def test_embedded_postgres_path(tmp_path: Path) -> None:
    # Only SIKA_HOME: Sika starts its own PostgreSQL and migrates it; people enrol by CLI
    home = {"SIKA_HOME": str(tmp_path / "embedded-home"), "SIKA_LOG_FORMAT": "json"}
    laptops = {name: {**home, "SIKA_KEYS_DIR": str(tmp_path / name), "SIKA_AGENT": name}
               for name in ("root", "awa", "kodjo")}
    try:
        for name, env in laptops.items():
            keygen = run_sika("agent", "keygen", name, env=env)
            assert keygen.code == 0, keygen.stderr
            (tmp_path / f"{name}.pub").write_text(keygen.stdout)
        boot = run_sika("agent", "bootstrap", "root", "--public-key",
                        str(tmp_path / "root.pub"), env=home)
        assert boot.code == 0, boot.stderr
        for name, role in (("awa", "maker"), ("kodjo", "approver")):
            _json(laptops["root"], "agent", "add", name, "--role", role, "--public-key",
                  str(tmp_path / f"{name}.pub"))
        awa, kodjo = laptops["awa"], laptops["kodjo"]
        assert _json(awa, "ledger", "account", "create", "float:tmoney", "--kind", "asset",
                     "--limit", "debits")["result"] == "created"
        _json(awa, "ledger", "account", "create", "treasury", "--kind", "equity")
        proposal = _json(awa, "ledger", "transfer", "--id", "t1", "--debit", "treasury",
                         "--credit", "float:tmoney", "--amount", "7")["proposal"]
        assert _json(kodjo, "ledger", "approve", str(proposal))["result"] == "created"
        assert _json(home, "ledger", "balance", "float:tmoney")["credits_posted"] == 7
        assert _json(home, "ledger", "verify")["ok"] is True
    finally:
        run_sika("db", "stop", env=home)
