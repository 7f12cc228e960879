"""The payout engine on real PostgreSQL and the real sandbox, workers in-process: four eyes,
signed manifests, set-based reservation, retries, and the database's own guards.
"""

from __future__ import annotations

import tomllib

import psycopg
import pytest
from sqlalchemy import text

from agripme import seasons
from agripme.batches import create_season_batch
from agripme.registry import import_farmers
from agripme.sample import write_sample_registry
from core import agents
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import AuthorizationError, LedgerError, ValidationError
from core.settings import load_settings
from ledger import api as ledger
from payouts import worker
from payouts.batches import approve_batch, batch_summary
from payouts.dispatch import dispatch_batch
from payouts.funds import add_funds
from payouts.retry import retry_batch
from tests.conftest import _clear_caches
from tests.payout_world import RULES, assert_paid_once, lines, on_test_number


@pytest.fixture
def world(sika_env, sandbox, monkeypatch, tmp_path):
    """Agents, 30 farmers (two on 000001), season 2026A; floats not funded yet."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[1, 2, 4]")
    _clear_caches()
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        for name, role in (("awa", "maker"), ("kodjo", "approver"), ("root", "admin")):
            agents.add_agent(session, name, role)
    with unit_of_work() as session:
        maker = agents.get_agent(session, "awa")
    path = write_sample_registry(tmp_path / "f.csv", 30, test_numbers=("000001",))
    import_farmers(get_sessionmaker(), path, keys, agent=maker)
    rules = seasons.parse_rules(tomllib.loads(RULES))
    with unit_of_work() as session:
        seasons.create_season(session, "2026A", rules, agents.get_agent(session, "root"))
    return keys


def _batch(keys, **kw) -> int:
    with unit_of_work() as session:
        batch = create_season_batch(session, "2026A", keys, agents.get_agent(session, "awa"), **kw)
        return batch.id


def _approve(batch_id: int) -> None:
    with unit_of_work() as session:
        approve_batch(session, batch_id, agents.get_agent(session, "kodjo"))


def _fund(amount: int, sandbox=None) -> None:
    with unit_of_work() as session:
        for operator in ("flooz", "tmoney"):
            add_funds(session, operator, amount, f"test:fund:{operator}:{amount}")
            if sandbox is not None:
                sandbox.topup(operator, amount)


def _run(batch_id: int) -> worker.Progress:
    with worker.running(threads=4):
        return worker.wait_for_batch(get_sessionmaker(), batch_id, timeout=120, interval=0.2)


def test_maker_cannot_approve_and_tampered_lines_are_refused(world, database_url, sandbox):
    batch_id = _batch(world)
    # the maker approving its own batch is refused, whatever its role
    with pytest.raises(AuthorizationError, match="cannot also approve"), unit_of_work() as session:
        approve_batch(session, batch_id, agents.get_agent(session, "awa"))
    _approve(batch_id)
    _fund(1_000_000, sandbox)
    # Given a line whose amount is changed behind Sika's back after approval
    # (its immutability trigger is dropped first, as a superuser could)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        conn.execute("ALTER TABLE payout_lines DISABLE TRIGGER payout_lines_forward_only")
        conn.execute(
            "UPDATE payout_lines SET amount = amount + 1000 WHERE batch_id = %s AND seq = 1",
            (batch_id,),
        )
        conn.execute("ALTER TABLE payout_lines ENABLE TRIGGER payout_lines_forward_only")
    # When it is dispatched, Then dispatch refuses, naming the batch, and reserves nothing
    with pytest.raises(AuthorizationError, match=f"batch {batch_id}"), unit_of_work() as session:
        dispatch_batch(session, batch_id, chunk=10)
    with unit_of_work() as session:
        assert ledger.balance(session, "float:flooz").credits_pending == 0
        assert batch_summary(session, batch_id)["status"] == "approved"


def test_lines_only_move_forward_in_the_database(world, database_url):
    batch_id = _batch(world)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        # created → succeeded skips the operator entirely: refused by the database
        with pytest.raises(psycopg.errors.CheckViolation, match="cannot move"):
            conn.execute(
                "UPDATE payout_lines SET status = 'succeeded' WHERE batch_id = %s", (batch_id,)
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="immutable"):
            conn.execute(
                "UPDATE payout_lines SET payee = 'farmer:1' WHERE batch_id = %s", (batch_id,)
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="never deleted"):
            conn.execute("DELETE FROM payout_lines WHERE batch_id = %s", (batch_id,))


def test_a_short_float_reserves_nothing(world, sandbox):
    batch_id = _batch(world)
    _approve(batch_id)
    with unit_of_work() as session:
        add_funds(session, "flooz", 1_000_000, "test:fund:flooz")
        add_funds(session, "tmoney", 1_000, "test:fund:tmoney")
    short = "tmoney float is short.* 1000 FCFA is free"
    with pytest.raises(LedgerError, match=short), unit_of_work() as session:
        dispatch_batch(session, batch_id, chunk=10)
    with unit_of_work() as session:
        # the flooz half was not reserved either: one transaction, all or nothing
        assert ledger.balance(session, "float:flooz").credits_pending == 0
        assert batch_summary(session, batch_id)["status"] == "approved"


def test_budget_and_in_flight_farmers(world, sandbox):
    # a batch over what the season has left is refused
    tiny = seasons.parse_rules({**tomllib.loads(RULES), "budget": 20_000})
    with unit_of_work() as session:
        seasons.create_season(session, "TINY", tiny, agents.get_agent(session, "root"))
    with pytest.raises(ValidationError, match="20000 FCFA of budget"), unit_of_work() as session:
        create_season_batch(session, "TINY", world, agents.get_agent(session, "awa"))
    first = _batch(world, limit=10)
    # farmers in a created batch are in flight: the next batch leaves them out
    second = _batch(world)
    with unit_of_work() as session:
        a, b = batch_summary(session, first), batch_summary(session, second)
    assert a["lines"] == 10
    assert b["lines"] == 20
    with pytest.raises(ValidationError, match="no farmer is owed"):
        _batch(world)


def test_dispatch_settles_every_line_and_retry_makes_a_new_attempt(world, sandbox, database_url):
    batch_id = _batch(world)
    _approve(batch_id)
    # Given a ledger that funded the floats but an operator float holding too little
    _fund(2_000_000)
    sandbox.topup("flooz", 12_000)
    sandbox.topup("tmoney", 12_000)
    with unit_of_work() as session:
        report = dispatch_batch(session, batch_id, chunk=7)
    assert report.queued == 30
    progress = _run(batch_id)
    assert progress.done
    rows = lines(database_url)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed
    assert {r["reason"] for r in failed} == {"insufficient_float"}
    with unit_of_work() as session:
        pending = ledger.balance(session, "float:flooz").credits_pending
    assert pending == 0, "a failed line's reservation must be voided"
    # When the operator float is topped up and the batch retried
    sandbox.topup("flooz", 2_000_000 - 12_000)
    sandbox.topup("tmoney", 2_000_000 - 12_000)
    with unit_of_work() as session:
        retried = retry_batch(session, batch_id, chunk=7)
    assert retried.retried == len(failed)
    _run(batch_id)
    # Then every line succeeded, each under a new reference, each paid exactly once
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows)
    retried_refs = {r["reference"] for r in rows if r["id"] in {f["id"] for f in failed}}
    assert all(ref.endswith("-2") for ref in retried_refs)
    with unit_of_work() as session:
        summary = batch_summary(session, batch_id)
        assert summary["status"] == "completed"
        assert ledger.verify_ledger(session).ok
        attempts = session.execute(text("SELECT count(*) FROM payout_attempts")).scalar_one()
    assert attempts == len(failed)
    # a pending or unknown line is never retried; a completed batch has nothing to retry
    with unit_of_work() as session:
        assert retry_batch(session, batch_id, chunk=7).retried == 0
    assert len(on_test_number(rows, "000001")) == 2


def test_lost_messages_are_swept_back(world, sandbox, database_url, monkeypatch):
    from dramatiq.brokers.stub import StubBroker

    from core.outbox import relay_all

    batch_id = _batch(world)
    _approve(batch_id)
    _fund(2_000_000, sandbox)
    with unit_of_work() as session:
        dispatch_batch(session, batch_id, chunk=7)
    # Given the send messages reached a broker that then lost them (restarted empty)
    lost = StubBroker()
    lost.declare_queue("sika.payouts")
    assert relay_all(get_sessionmaker(), lost) > 0
    with unit_of_work() as session:
        assert (
            session.execute(
                text("SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL")
            ).scalar_one()
            == 0
        )
    # When workers run with a short sweep period
    monkeypatch.setenv("SIKA_SWEEP_AFTER_SECONDS", "1")
    _clear_caches()
    progress = _run(batch_id)
    # Then the stalled lines were re-queued and every one settled, each paid once
    assert progress.done
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows)
