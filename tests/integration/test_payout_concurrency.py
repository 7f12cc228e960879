"""Payout acts racing each other, on real PostgreSQL and the sandbox over HTTP.

Two people dispatch the same approved batch at the same instant: one reserves and queues,
the other does nothing (or is refused in a sentence); every line is held once and paid
once. Two makers build batches at the same instant against a season whose budget can pay
only one of them in full: whatever each creation and dispatch answers, the season's
budget account is never overdrawn.
"""

from __future__ import annotations

import threading
import tomllib
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from agripme import seasons
from agripme.batches import owed_lines
from core import agents
from core.crypto import PiiKeys
from core.db import unit_of_work
from core.errors import SikaError
from core.models import Role
from ledger import api as ledger
from payouts.dispatch import DispatchReport, dispatch_batch
from tests.conftest import _clear_caches, _libpq
from tests.payout_world import (
    RULES,
    approve,
    assert_paid_once,
    create_season,
    fund,
    lines,
    make_batch,
    on_batch,
    run_workers,
    setup_world,
)

FARMERS = 12


@pytest.fixture
def world(real_broker, sika_env, sandbox, monkeypatch, tmp_path) -> PiiKeys:
    """Agents, FARMERS farmers, season 2026A, both floats funded in the ledger and the
    sandbox."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    _clear_caches()
    keys = setup_world(tmp_path, farmers=FARMERS)
    for operator in ("flooz", "tmoney"):
        fund(operator, 1_000_000, f"test:fund:{operator}")
        sandbox.topup(operator, 1_000_000)
    return keys


def _at_once(*acts: Callable[[], Any]) -> list[Any]:
    """Run the acts in threads released together by a barrier; each one's return value,
    or the exception it raised."""
    barrier = threading.Barrier(len(acts))
    results: list[Any] = [None] * len(acts)

    def run(index: int, act: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = act()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(acts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "an act never returned"
    return results


def _dispatching(batch_id: int, agent: str) -> Callable[[], DispatchReport]:
    """`agent`'s own signed dispatch of the batch, in a session of its own."""
    request = on_batch(agent, "dispatch", batch_id)

    def act() -> DispatchReport:
        with unit_of_work() as session:
            return dispatch_batch(session, request, batch_id, chunk=5)

    return act


def _query(database_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(_libpq(database_url)) as conn:
        return conn.execute(sql, params).fetchall()


def test_two_dispatches_of_one_batch_at_once_reserve_and_pay_each_line_once(
    world, sandbox, database_url
):
    keys = world
    # Given a batch made by awa and approved by kodjo
    batch_id = make_batch(keys)
    approve(batch_id)
    line_ids = [row["id"] for row in lines(database_url)]
    # When kodjo and awa dispatch it at the same instant, each with their own request
    answers = _at_once(_dispatching(batch_id, "kodjo"), _dispatching(batch_id, "awa"))
    # Then exactly one reserved and queued every line
    done = [a for a in answers if isinstance(a, DispatchReport) and not a.already]
    assert len(done) == 1, answers
    assert done[0].queued == len(line_ids)
    # and the other was a no-op or a refusal in a sentence, never a crash
    [other] = [a for a in answers if a is not done[0]]
    if isinstance(other, DispatchReport):
        assert other.already, other
        assert other.queued == 0
    else:
        assert isinstance(other, SikaError), repr(other)
        assert str(batch_id) in str(other)
    # And each line holds exactly one pending transfer in the ledger
    holds = _query(
        database_url,
        "SELECT l.id, count(t.id) FROM payout_lines l"
        " LEFT JOIN ledger_transfers t ON t.id = l.pending_id AND t.kind = 'pending'"
        " GROUP BY l.id",
    )
    assert sorted(holds) == [(line_id, 1) for line_id in sorted(line_ids)]
    pending = _query(database_url, "SELECT count(*) FROM ledger_transfers WHERE kind = 'pending'")
    assert pending == [(len(line_ids),)]
    # and each line was queued for sending once
    messages = _query(
        database_url, "SELECT kwargs FROM outbox_messages WHERE actor_name = 'payouts.send'"
    )
    queued = Counter(line for (kwargs,) in messages for line in kwargs["line_ids"])
    assert queued == Counter(line_ids)
    # When the workers run
    assert run_workers(batch_id).done
    # Then each farmer was paid once, the floats agreeing with the sandbox
    rows = assert_paid_once(database_url, sandbox)
    assert all(row["status"] == "succeeded" for row in rows)
    credited = Counter(
        t["reference"]
        for t in sandbox.transactions()
        if t["kind"] == "payout" and t["status"] == "succeeded"
    )
    assert credited == Counter(row["reference"] for row in rows)
    with unit_of_work() as session:
        assert ledger.verify_ledger(session).ok


def _budget(database_url: str, account: str) -> tuple[int, int, int]:
    """(credits posted, debits pending, debits posted) of the budget account."""
    [row] = _query(
        database_url,
        "SELECT credits_posted, debits_pending, debits_posted FROM ledger_accounts WHERE code = %s",
        account,
    )
    return int(row[0]), int(row[1]), int(row[2])


def _assert_within(database_url: str, account: str, budget: int) -> None:
    credits, reserved, posted = _budget(database_url, account)
    assert credits == budget
    assert reserved + posted <= budget, (reserved, posted, budget)
    assert credits - reserved - posted >= 0


def test_two_batches_made_at_once_never_overdraw_the_season_budget(world, sandbox, database_url):
    keys = world
    # Given two regions whose farmers are owed a and b, and a season whose budget pays
    # either batch in full but not both
    regions = ("Maritime", "Plateaux", "Centrale", "Kara", "Savanes")
    with unit_of_work() as session:
        owed = {
            r: sum(x.amount for x in owed_lines(session, "2026A", keys, region=r)) for r in regions
        }
    first, second = sorted((r for r in regions if owed[r]), key=lambda r: -owed[r])[:2]
    budget = owed[first] + owed[second] // 2
    assert owed[first] <= budget < owed[first] + owed[second]
    rules = seasons.parse_rules({**tomllib.loads(RULES), "budget": budget})
    create_season("LEAN", rules)
    account = seasons.budget_account("LEAN")
    # and two makers, so that neither waits on the other's agent row
    with unit_of_work() as session:
        agents.add_agent(session, "ama", Role.MAKER)
    # When awa and ama each build a batch at the same instant, in two sessions
    made = _at_once(
        lambda: make_batch(keys, "LEAN", region=first, maker="awa"),
        lambda: make_batch(keys, "LEAN", region=second, maker="ama"),
    )
    # Then at least one was made, the other made or refused in a sentence
    made_ids = [m for m in made if isinstance(m, int)]
    assert made_ids, made
    for answer in made:
        assert isinstance(answer, int | SikaError), repr(answer)
    _assert_within(database_url, account, budget)
    # When kodjo approves whatever was made and both are dispatched at the same instant
    for batch_id in made_ids:
        approve(batch_id)
    dispatched = _at_once(*(_dispatching(b, "kodjo") for b in made_ids))
    for answer in dispatched:
        assert isinstance(answer, DispatchReport | SikaError), repr(answer)
    # Then the budget account is never overdrawn: reserved and posted within the budget
    _assert_within(database_url, account, budget)
    # When the workers run whatever was dispatched
    for batch_id, answer in zip(made_ids, dispatched, strict=True):
        if isinstance(answer, DispatchReport):
            assert run_workers(batch_id).done
    # Then still within budget, each farmer paid once, floats agreeing with the sandbox
    _assert_within(database_url, account, budget)
    assert_paid_once(database_url, sandbox)
    paid = sum(
        t["amount"]
        for t in sandbox.transactions()
        if t["kind"] == "payout" and t["status"] == "succeeded"
    )
    assert paid <= budget
    with unit_of_work() as session:
        assert ledger.verify_ledger(session).ok
