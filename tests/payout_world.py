"""A small AgriPME world for payout tests: agents, farmers (some on sandbox test numbers),
a season, funded floats; and the checks every dispatch test makes against the sandbox.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg

from agripme.sample import write_sample_registry
from core.crypto import load_keys
from core.settings import load_settings
from payouts.models import LINE_MSISDN
from tests.conftest import _libpq, run_sika
from tests.fixtures.sandbox import Sandbox

RULES = """
per_bag = 4000
max_bags = 3
budget = 50000000
[[bands]]
below_ha = 1.0
bags = 1
[[bands]]
below_ha = 2.0
bags = 2
[[bands]]
bags = 3
"""


def sika_ok(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """Run `sika` and insist on exit 0; its stdout."""
    result = run_sika(*args, env=env, timeout=timeout)
    assert result.code == 0, f"sika {' '.join(args)} → {result.code}\n{result.stderr[-3000:]}"
    return result.stdout


def build_world(
    env: dict[str, str], tmp: Path, *, farmers: int, test_numbers: tuple[str, ...]
) -> None:
    """Agents awa (maker), kodjo (approver), root (admin); farmers imported; season 2026A;
    both floats funded in the ledger and at the sandbox."""
    for name, role in (("awa", "maker"), ("kodjo", "approver"), ("root", "admin")):
        sika_ok("agent", "add", name, "--role", role, env=env)
    registry = write_sample_registry(tmp / "farmers.csv", farmers, test_numbers=test_numbers)
    sika_ok("agripme", "farmers", "import", str(registry), "--agent", "awa", env=env)
    rules = tmp / "season.toml"
    rules.write_text(RULES, encoding="utf-8")
    sika_ok(
        "agripme", "season", "create", "2026A", "--rules", str(rules), "--agent", "root", env=env
    )
    # at most 12,000 FCFA a farmer: more than enough on either operator
    funding = str(max(20_000_000, 12_000 * farmers))
    for operator in ("flooz", "tmoney"):
        sika_ok(
            "funds", "add", "--operator", operator, "--amount", funding, "--agent", "root", env=env
        )


def lines(database_url: str) -> list[dict]:
    """Every payout line: id, payee, status, reason, reference, sends, amount, operator and
    the phone number (decrypted with the keys of the current SIKA_HOME)."""
    keys = load_keys(load_settings())
    with psycopg.connect(_libpq(database_url)) as conn:
        cur = conn.execute(
            "SELECT id, payee, status, reason, reference, sends, amount, operator, msisdn_enc "
            "FROM payout_lines ORDER BY id"
        )
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["msisdn"] = keys.keyring.decrypt(bytes(row.pop("msisdn_enc")), LINE_MSISDN)
    return rows


def on_test_number(rows: list[dict], suffix: str) -> list[dict]:
    """The lines paying a sandbox test number (`000006`…)."""
    return [row for row in rows if row["msisdn"].endswith(suffix)]


def ledger_float(database_url: str, operator: str) -> int:
    """The float as the ledger holds it, posted only (debits in minus credits out)."""
    with psycopg.connect(_libpq(database_url)) as conn:
        row = conn.execute(
            "SELECT debits_posted - credits_posted FROM ledger_accounts WHERE code = %s",
            (f"float:{operator}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def assert_paid_once(database_url: str, sandbox: Sandbox) -> list[dict]:
    """Each succeeded line is exactly one payout at the sandbox, under its reference and
    for its amount, and the sandbox paid nothing else; floats agree. Returns the lines."""
    rows = lines(database_url)
    payouts = [t for t in sandbox.transactions() if t["kind"] == "payout"]
    done = Counter(t["reference"] for t in payouts if t["status"] in ("succeeded", "reversed"))
    assert all(n == 1 for n in done.values()), "a reference was paid twice at the sandbox"
    by_reference = {t["reference"]: t for t in payouts}
    for line in rows:
        paid = done.get(line["reference"], 0)
        if line["status"] == "succeeded":
            assert paid == 1, f"line {line['id']} succeeded in Sika but not at the sandbox"
            assert by_reference[line["reference"]]["amount"] == line["amount"]
        else:
            assert paid == 0 or line["status"] in ("pending", "unknown"), line
    payees = Counter(line["payee"] for line in rows if line["status"] == "succeeded")
    assert all(n == 1 for n in payees.values()), "a farmer was paid twice in the season"
    floats = sandbox.floats()
    for operator in ("flooz", "tmoney"):
        assert ledger_float(database_url, operator) == floats[operator], operator
    return rows
