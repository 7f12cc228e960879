"""A season's batch end to end through the CLI, `sika worker` on RabbitMQ and on Redis,
`sika serve` receiving the sandbox's callbacks; a worker killed mid-batch; and four eyes
that no name, puppet or admin walks around, each person with their own key directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from agripme.sample import write_sample_registry
from core.broker import build_broker
from providers.sms import format_fcfa
from tests.conftest import SIKA, Result, _libpq, run_sika
from tests.fixtures.sandbox import Sandbox, free_port
from tests.payout_world import (
    RULES,
    assert_paid_once,
    build_world,
    lines,
    on_test_number,
    sika_ok,
)

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
REDIS = "redis://127.0.0.1:6379/0"
TEST_NUMBERS = (
    "000001",
    "000002",
    "000003",
    "000004",
    "000005",
    "000006",
    "000007",
    "000008",
    "000009",
)


def _env(sika_env: dict[str, str], sandbox: Sandbox, broker: str | None) -> dict[str, str]:
    env = {
        **sika_env,
        "SIKA_SANDBOX_URL": sandbox.url,
        "SIKA_OPERATOR_TIMEOUT": "2",
        "SIKA_QUEUE_PREFIX": f"t{uuid.uuid4().hex[:12]}",
        "SIKA_LOG_LEVEL": "WARNING",
        "SIKA_STATUS_CHECK_DELAYS": "[1, 2, 4]",
    }
    if broker:
        env["SIKA_BROKER_URL"] = broker
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`sika <args>` in the background for the block, stopped with SIGTERM after it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    full.update(env)
    with log.open("ab") as out:
        proc = subprocess.Popen([SIKA, *args], env=full, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} never answered")


def _outstanding(database_url: str) -> dict[str, int]:
    """What Sika still has to do, by kind, leaving out what is done: outbox messages not
    relayed, lines being sent, paid lines whose farmer is not told yet."""
    with psycopg.connect(_libpq(database_url)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL),"
            " (SELECT count(*) FROM payout_lines WHERE status IN ('queued', 'submitted')),"
            " (SELECT count(*) FROM payout_lines"
            "   WHERE status = 'succeeded' AND notified_at IS NULL)"
        ).fetchone()
    assert row is not None
    counts = dict(zip(("unsent", "sending", "untold"), row, strict=True))
    return {kind: n for kind, n in counts.items() if n}


def _wait_sika_idle(database_url: str, broker_url: str, queue: str, timeout: float = 60) -> None:
    """Wait until nothing is outstanding in the database and `queue` is drained at the
    broker (`join`); a message the worker took meanwhile may have queued more, so the
    database is asked again after the drain."""
    broker = build_broker(broker_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not _outstanding(database_url):
                left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
                broker.join(queue, timeout=left_ms)
                if not _outstanding(database_url):
                    return
            assert time.monotonic() < deadline, f"Sika is still busy: {_outstanding(database_url)}"
            time.sleep(0.1)
    finally:
        broker.close()


def _create(env: dict[str, str]) -> dict:
    """Awa's `batch create --json` (its pre-flight included): what it prints."""
    return json.loads(
        sika_ok(
            "agripme", "batch", "create", "--season", "2026A", "--agent", "awa", "--json", env=env
        )
    )


def _create_and_approve(env: dict[str, str]) -> int:
    batch = str(_create(env)["batch"])
    sika_ok("agripme", "batch", "approve", batch, "--agent", "kodjo", env=env)
    return int(batch)


# what a wallet the pre-flight found fine turns into before the payout reaches it
TURNS = ("unregistered", "locked", "inactive")


@pytest.mark.parametrize("broker", [RABBITMQ, REDIS], ids=["rabbitmq", "redis"])
def test_batch_through_a_real_broker(sika_env, sandbox, tmp_path, database_url, broker):
    # Given a registry holding every sandbox test number, a season and funded floats
    env = _env(sika_env, sandbox, broker)
    build_world(env, tmp_path, farmers=40, test_numbers=TEST_NUMBERS)
    port = free_port()
    with running(["worker", "--threads", "4"], env, tmp_path / "worker.log"):
        with running(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
            _wait_healthy(f"http://127.0.0.1:{port}/healthz")
            sandbox.set_callback_url(f"http://127.0.0.1:{port}/callbacks")
            created = _create(env)
            batch = int(created["batch"])
            # the pre-flight kept the unregistered, locked, inactive and capped wallets
            # (000002-000005, two of each) out of the manifest; every other one is fine.
            # T-Money's look-up knows only ACTIF and INACTIF: its locked wallet is inactive
            assert created["lines"] == 32
            assert created["preflight"] == {
                "ok": 32,
                "name_mismatch": 0,
                "not_registered": 2,
                "inactive": 3,
                "locked": 1,
                "at_balance_cap": 2,
                "ported": 0,
                "unreachable": 0,
                "included_by_maker": 0,
            }
            sika_ok("agripme", "batch", "approve", str(batch), "--agent", "kodjo", env=env)
            # and after it, as happens in life, some wallets it found fine change: on each
            # operator, one is closed, one locked and one made inactive before the payout
            plain = [r for r in lines(database_url) if not r["msisdn"].endswith(TEST_NUMBERS)]
            turned: dict[str, str] = {}
            for operator in ("flooz", "tmoney"):
                numbers = [r["msisdn"] for r in plain if r["operator"] == operator]
                for msisdn, status in zip(numbers, TURNS, strict=False):
                    sandbox.put_wallet(msisdn, status=status)
                    turned[msisdn] = status
            assert len(turned) == 2 * len(TURNS)
            # When it is dispatched and followed to the end
            summary = json.loads(
                sika_ok(
                    "agripme",
                    "batch",
                    "dispatch",
                    str(batch),
                    "--agent",
                    "kodjo",
                    "--wait",
                    "--timeout",
                    "180",
                    "--json",
                    env=env,
                )
            )
            # and every callback the sandbox made (000009's second one too) is answered
            sandbox.wait_quiet()
        # `sika serve` stopped once its callback handlers were done (uvicorn waits for
        # them); the worker finishes what they and the batch queued, then stops too
        _wait_sika_idle(database_url, broker, f"{env['SIKA_QUEUE_PREFIX']}.payouts")
    # Then every line is final, or pending/unknown waiting on the operator
    rows = assert_paid_once(database_url, sandbox)
    assert {row["status"] for row in rows} <= {"succeeded", "failed", "pending", "unknown"}
    # every farmer has a line; the manifest, what was dispatched, holds the 32 in it
    assert len(rows) == 40
    assert summary["lines"] == 32
    # 000006 never resolves and is never sent a second time
    forever = on_test_number(rows, "000006")
    assert forever
    assert all(r["status"] in ("pending", "unknown") and r["sends"] == 1 for r in forever)
    references = [t["reference"] for t in sandbox.transactions()]
    assert all(references.count(r["reference"]) == 1 for r in forever)
    # 000007's answer is lost to a timeout; the status query finds it succeeded
    assert all(r["status"] == "succeeded" for r in on_test_number(rows, "000007"))
    # 000009's callback arrives twice; the farmer is credited once
    for row in on_test_number(rows, "000009"):
        assert row["status"] == "succeeded"
        credits = sandbox.wallet(row["msisdn"])["credits"]
        assert len([c for c in credits if c["amount"] == row["amount"]]) == 1
    # each farmer's wallet credits equal the ledger's postings, line by line
    for row in rows:
        if row["status"] == "succeeded":
            credits = sandbox.wallet(row["msisdn"])["credits"]
            assert sum(c["amount"] for c in credits) == row["amount"], row
    # the lines the pre-flight excluded failed with its verdict, and were never sent
    sent = {t["reference"] for t in sandbox.transactions()}
    for suffix, verdicts in (
        ("000002", {"flooz": "not_registered", "tmoney": "not_registered"}),
        ("000003", {"flooz": "locked", "tmoney": "inactive"}),
        ("000004", {"flooz": "inactive", "tmoney": "inactive"}),
        ("000005", {"flooz": "at_balance_cap", "tmoney": "at_balance_cap"}),
    ):
        excluded = on_test_number(rows, suffix)
        assert sorted(r["operator"] for r in excluded) == ["flooz", "tmoney"]
        for row in excluded:
            verdict = verdicts[row["operator"]]
            assert (row["status"], row["reason"], row["sends"]) == ("failed", verdict, 0)
            assert row["reference"] not in sent
    # the wallets that changed after the pre-flight were refused by the operator, for good
    for row in rows:
        if row["msisdn"] in turned:
            assert (row["status"], row["sends"]) == ("failed", 1), (row, turned[row["msisdn"]])
            assert row["reference"] in sent
    # every paid farmer got one SMS in French with the amount written the French way
    paid = [r for r in rows if r["status"] == "succeeded"]
    sms = sandbox.sms()
    assert len(sms) == len(paid)
    for row in paid:
        mine = [m for m in sms if m["to"] == row["msisdn"]]
        assert len(mine) == 1
        assert format_fcfa(row["amount"]) in mine[0]["message"]
        assert "reçu" in mine[0]["message"]
    assert summary["succeeded"]["count"] == len(paid)
    sika_ok("ledger", "verify", env=env)


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    sika_env, sandbox, tmp_path, database_url
):
    # Given a slow operator, a small per-operator concurrency and a batch of 400
    env = _env(sika_env, sandbox, RABBITMQ)
    env.update({"SIKA_DISPATCH_CONCURRENCY": "2", "SIKA_DISPATCH_CHUNK": "20"})
    sandbox.set_faults({"latency_ms": [40, 60]})
    build_world(env, tmp_path, farmers=400, test_numbers=())
    batch = _create_and_approve(env)
    sika_ok("agripme", "batch", "dispatch", str(batch), "--agent", "kodjo", env=env)
    # When the worker is killed with SIGKILL while lines are being sent
    with running(["worker", "--threads", "4"], env, tmp_path / "worker1.log") as first:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = sum(r["status"] == "succeeded" for r in lines(database_url))
            if done >= 60:
                break
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = sum(r["status"] == "succeeded" for r in lines(database_url))
    assert 60 <= killed_at < 400, "the kill did not land mid-batch"
    # and a new worker takes over
    with running(["worker", "--threads", "4"], env, tmp_path / "worker2.log"):
        summary = json.loads(
            sika_ok(
                "agripme",
                "batch",
                "dispatch",
                str(batch),
                "--agent",
                "kodjo",
                "--wait",
                "--timeout",
                "240",
                "--json",
                env=env,
            )
        )
    # Then no line is lost, none is paid twice, and the ledger matches the sandbox
    rows = assert_paid_once(database_url, sandbox)
    assert len(rows) == 400
    assert all(r["status"] == "succeeded" for r in rows), {
        r["status"] for r in rows if r["status"] != "succeeded"
    }
    assert summary["succeeded"]["count"] == 400
    sika_ok("ledger", "verify", env=env)


def _refused(result: Result, words: str) -> None:
    """Exit 1, one sentence on stderr holding `words`, no traceback."""
    assert result.code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert words in errors[0], errors[0]


def test_four_eyes_cannot_be_walked_around(sika_env, sandbox, tmp_path):
    # Given people, each with a key of their own on their own laptop (and the operators,
    # where the maker's pre-flight looks the farmers' wallets up)
    laptops = tmp_path / "laptops"

    def on(name: str) -> dict[str, str]:
        return {
            **sika_env,
            "SIKA_KEYS_DIR": str(laptops / name),
            "SIKA_AGENT": name,
            "SIKA_SANDBOX_URL": sandbox.url,
        }

    def pub(name: str) -> str:
        path = tmp_path / f"{name}.pub"
        path.write_text(sika_ok("agent", "keygen", name, env=on(name)), encoding="utf-8")
        return str(path)

    sika_ok("agent", "bootstrap", "root", "--public-key", pub("root"), env=sika_env)
    for name, role in (
        ("awa", "maker"),
        ("kodjo", "approver"),
        ("afi", "treasurer"),
        ("root2", "admin"),
    ):
        sika_ok("agent", "add", name, "--role", role, "--public-key", pub(name), env=on("root"))
    registry = write_sample_registry(tmp_path / "farmers.csv", 12)
    sika_ok("agripme", "farmers", "import", str(registry), env=on("awa"))
    rules = tmp_path / "season.toml"
    rules.write_text(RULES, encoding="utf-8")
    # a season and its budget are the treasurer's, not the maker's
    season = ("agripme", "season", "create", "2026A", "--rules", str(rules))
    _refused(run_sika(*season, env=on("awa")), "agripme.season.create needs treasurer")
    sika_ok(*season, env=on("afi"))
    batch = str(
        json.loads(
            sika_ok("agripme", "batch", "create", "--season", "2026A", "--json", env=on("awa"))
        )["batch"]
    )
    approve = ("agripme", "batch", "approve", batch)
    audit_before = json.loads(sika_ok("audit", "log", "--json", "--limit", "1000", env=sika_env))

    # a maker adding an agent is refused
    _refused(
        run_sika(
            "agent",
            "add",
            "mallory",
            "--role",
            "approver",
            "--public-key",
            pub("mallory"),
            env=on("awa"),
        ),
        "agent 'awa' holds maker; agent.add needs admin",
    )
    # an approver minted by one admin waits for the second: her approval is refused
    sika_ok(
        "agent", "add", "awa2", "--role", "approver", "--public-key", pub("awa2"), env=on("root")
    )
    _refused(run_sika(*approve, env=on("awa2")), "awaits a second admin's confirmation")
    # Awa cannot act under Kodjo's name: there is no key of his on her laptop...
    _refused(run_sika(*approve, "--agent", "kodjo", env=on("awa")), "no private key for agent")
    # ...and signing in his name with her own key proves nothing
    with_her_key = {**on("awa"), "SIKA_AGENT_KEY": str(laptops / "awa" / "awa.pem")}
    _refused(
        run_sika(*approve, "--agent", "kodjo", env=with_her_key),
        "does not verify with the key of agent 'kodjo'",
    )
    # an admin cannot approve, nor the maker her own batch
    _refused(run_sika(*approve, env=on("root")), "holds admin; agripme.batch.approve needs")
    _refused(run_sika(*approve, env=on("awa")), "holds maker; agripme.batch.approve needs")
    # nor may a CIZO command approve an AgriPME batch
    _refused(run_sika("cizo", "batch", "approve", batch, env=on("kodjo")), "agripme batch")

    # Then nothing of it was recorded as done, and the batch waits for its approver
    audit_after = json.loads(sika_ok("audit", "log", "--json", "--limit", "1000", env=sika_env))
    acts = [e["action"] for e in audit_after[len(audit_before) :]]
    assert acts == ["agent.add"], acts  # root's enrolment of awa2, nothing else
    shown = json.loads(sika_ok("agripme", "batch", "show", batch, "--json", env=sika_env))
    assert (shown["status"], shown["maker"], shown["submitted"]) == ("created", "awa", True)
    # When Kodjo approves it with his own key, it is approved
    approved = json.loads(sika_ok(*approve, "--json", env=on("kodjo")))
    assert (approved["status"], approved["approver"]) == ("approved", "kodjo")
    # And the maker may still cancel it before dispatch, freeing its farmers
    cancelled = json.loads(sika_ok("agripme", "batch", "cancel", batch, "--json", env=on("awa")))
    assert (cancelled["status"], cancelled["released"]) == ("cancelled", 12)
    again = json.loads(
        sika_ok("agripme", "batch", "create", "--season", "2026A", "--json", env=on("awa"))
    )
    assert again["lines"] == 12
    sika_ok("audit", "log", "--verify", env=sika_env)
