"""A small AgriPME world for payout tests: agents, farmers (some on sandbox test numbers),
a season, funded floats; the acts of its people in-process, each a request signed with
their own key as the CLI signs it; and the checks every dispatch test makes against the
sandbox.
"""

from __future__ import annotations

import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from agripme import registry, seasons
from agripme.batches import BATCH_CREATE, batch_create_arguments, create_season_batch
from agripme.sample import write_sample_registry
from core import agents
from core.authority import SignedRequest, signed_by
from core.broker import get_broker, is_in_process
from core.crypto import PiiKeys, load_keys
from core.db import get_sessionmaker, unit_of_work
from core.settings import load_settings
from payouts import batches, worker
from payouts.commands import submit
from payouts.dispatch import DispatchReport, dispatch_batch
from payouts.funds import FUNDS_ADD, add_funds, funding_arguments
from payouts.models import LINE_MSISDN, BatchStep
from payouts.retry import RetryReport, retry_batch
from tests.conftest import _libpq, enrol_agents, run_sika
from tests.fixtures.sandbox import Sandbox

# the world's people: who makes, approves, administers, and funds
PEOPLE = {"awa": "maker", "kodjo": "approver", "root": "admin", "afi": "treasurer"}

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
    """Agents awa (maker), kodjo (approver), root (admin), afi (treasurer); farmers
    imported by awa; season 2026A and both floats funded by afi, in the ledger and at the
    sandbox."""
    enrol_agents(env, PEOPLE)
    path = write_sample_registry(tmp / "farmers.csv", farmers, test_numbers=test_numbers)
    sika_ok("agripme", "farmers", "import", str(path), "--agent", "awa", env=env)
    rules = tmp / "season.toml"
    rules.write_text(RULES, encoding="utf-8")
    sika_ok(
        "agripme", "season", "create", "2026A", "--rules", str(rules), "--agent", "afi", env=env
    )
    # at most 12,000 FCFA a farmer: more than enough on either operator
    funding = str(max(20_000_000, 12_000 * farmers))
    for operator in ("flooz", "tmoney"):
        sika_ok(
            "funds", "add", "--operator", operator, "--amount", funding, "--agent", "afi", env=env
        )


# --- the people's acts in-process (SIKA_KEYS_DIR and the database of the current env) ---


def setup_world(tmp: Path, *, farmers: int, test_numbers: tuple[str, ...] = ()) -> PiiKeys:
    """The world in-process, for the current env: the agents of PEOPLE with their keys in
    SIKA_KEYS_DIR, `farmers` imported by awa (the first ones on sandbox `test_numbers`, one
    Flooz and one T-Money farmer each), season 2026A; floats not funded. The PII keys."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        for name, role in PEOPLE.items():
            agents.add_agent(session, name, role)
    path = write_sample_registry(tmp / "farmers.csv", farmers, test_numbers=test_numbers)
    import_registry(path, keys)
    create_season("2026A", seasons.parse_rules(tomllib.loads(RULES)))
    return keys


def sign(agent: str, command: str, arguments: dict[str, Any]) -> SignedRequest:
    """A request of `agent`, signed with their key from SIKA_KEYS_DIR as the CLI signs it."""
    return signed_by(agent, command, arguments)


def import_registry(path: Path, keys: PiiKeys, *, maker: str = "awa") -> registry.ImportReport:
    """The maker imports a registry file."""
    request = sign(maker, registry.FARMERS_IMPORT, registry.import_arguments(path))
    return registry.import_farmers(get_sessionmaker(), path, keys, request=request)


def create_season(code: str, rules: seasons.SeasonRules, *, treasurer: str = "afi") -> None:
    """The treasurer creates a season and books its budget."""
    request = sign(treasurer, seasons.SEASON_CREATE, seasons.season_arguments(code, rules))
    with unit_of_work() as session:
        seasons.create_season(session, request, code, rules)


def fund(operator: str, amount: int, transfer_id: str, *, treasurer: str = "afi") -> None:
    """The treasurer records money placed in an operator float (the ledger only)."""
    arguments = funding_arguments(operator, amount, transfer_id)
    with unit_of_work() as session:
        add_funds(
            session,
            sign(treasurer, FUNDS_ADD, arguments),
            operator=operator,
            amount=amount,
            transfer_id=transfer_id,
        )


def make_batch(keys: PiiKeys, season: str = "2026A", *, maker: str = "awa", **kw: Any) -> int:
    """The maker builds the season's next batch (pre-flight included, unless
    `no_preflight=True`) and submits it, as `batch create` does."""
    request = sign(maker, BATCH_CREATE, batch_create_arguments(season, **kw))
    batch = create_season_batch(
        get_sessionmaker(),
        request,
        season,
        keys,
        settings=load_settings(),
        then=lambda session, made: submit(session, made, maker),
        **kw,
    )
    return batch.id


def approval(batch_id: int, approver: str = "kodjo") -> SignedRequest:
    """The approver's signed approval of the batch's manifest as it is stored now."""
    with unit_of_work() as session:
        batch = batches.get_batch(session, batch_id)
        command = batches.batch_command(batch.programme, BatchStep.APPROVE)
        arguments = batches.manifest_arguments(batch.id, batch.manifest)
    return sign(approver, command, arguments)


def approve(batch_id: int, approver: str = "kodjo") -> None:
    """The approver approves the batch."""
    request = approval(batch_id, approver)
    with unit_of_work() as session:
        batches.approve_batch(session, request, batch_id)


def on_batch(agent: str, step: str, batch_id: int, programme: str = "agripme") -> SignedRequest:
    """`agent`'s signed `<programme>.batch.<step> {"batch_id"}` (cancel, dispatch, retry)."""
    command = batches.batch_command(programme, step)
    return sign(agent, command, batches.batch_arguments(batch_id))


def cancel(batch_id: int, agent: str = "awa") -> None:
    """`agent` cancels the batch."""
    request = on_batch(agent, BatchStep.CANCEL, batch_id)
    with unit_of_work() as session:
        batches.cancel_batch(session, request, batch_id)


def dispatch(batch_id: int, *, chunk: int = 10, agent: str = "kodjo") -> DispatchReport:
    """`agent` dispatches the batch."""
    request = on_batch(agent, "dispatch", batch_id)
    with unit_of_work() as session:
        return dispatch_batch(session, request, batch_id, chunk=chunk)


def retry(batch_id: int, *, chunk: int = 7, agent: str = "awa") -> RetryReport:
    """`agent` retries the batch's retryable failed lines."""
    request = on_batch(agent, "retry", batch_id)
    with unit_of_work() as session:
        return retry_batch(session, request, batch_id, chunk=chunk)


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


def run_workers(
    batch_id: int, on_progress: Callable[[worker.Progress], Any] | None = None
) -> worker.Progress:
    """Payout workers in this process, on the real broker of the current env, until the
    batch is done (every line final, or pending/unknown with no query left)."""
    assert not is_in_process(get_broker()), "payout workers run on a real broker"
    with worker.running(threads=4):
        return worker.wait_for_batch(
            get_sessionmaker(), batch_id, timeout=120, interval=0.2, on_progress=on_progress
        )


def schedule(database_url: str) -> dict[int, dict]:
    """Each line's retry and status-query bookkeeping by id: `retryable`, `checks` (times
    the line was found pending or unknown, each scheduling the next status query while the
    delays last) and `check_due_at` (None once no query is left to make)."""
    with psycopg.connect(_libpq(database_url)) as conn:
        rows = conn.execute(
            "SELECT id, retryable, checks, check_due_at FROM payout_lines ORDER BY id"
        ).fetchall()
    return {row[0]: {"retryable": row[1], "checks": row[2], "check_due_at": row[3]} for row in rows}


def wait_for_lines(
    database_url: str, until: Callable[[list[dict]], bool], *, timeout: float = 60
) -> list[dict]:
    """Poll the lines (as `lines` gives them) until `until(rows)`; the rows then. Fails
    after `timeout` seconds, showing each line's status."""
    deadline = time.monotonic() + timeout
    while True:
        rows = lines(database_url)
        if until(rows):
            return rows
        assert time.monotonic() < deadline, [(r["id"], r["status"]) for r in rows]
        time.sleep(0.2)


def sandbox_payouts(sandbox: Sandbox) -> Counter[str]:
    """Payout transactions the sandbox recorded, counted by phone number (its last eight
    digits, the national number, whatever the form it is written in)."""
    return Counter(t["msisdn"][-8:] for t in sandbox.transactions() if t["kind"] == "payout")


def queued_messages(broker: dramatiq.Broker, queue_name: str) -> int:
    """Messages a real broker holds for `queue_name` and its delay queue, asked of the
    broker itself: RabbitMQ's queue counts, Redis's queue lists."""
    if isinstance(broker, RabbitmqBroker):
        ready, delayed, _dead = broker.get_queue_message_counts(queue_name)
        return int(ready + delayed)
    if isinstance(broker, RedisBroker):
        key = f"{broker.namespace}:{queue_name}"
        return sum(int(broker.client.llen(name)) for name in (key, f"{key}.DQ"))
    raise AssertionError(f"{broker!r} is not a real broker")


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
