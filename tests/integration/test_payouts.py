"""The payout engine on real PostgreSQL and the real sandbox, workers in-process: four eyes
proven by signed requests kept with the batch, set-based reservation, cancellation,
retries, and the database's own guards.
"""

from __future__ import annotations

import tomllib

import psycopg
import pytest
from sqlalchemy import func, select, text

from agripme import seasons
from agripme.batches import BATCH_CREATE, batch_create_arguments, create_season_batch
from core import agents, authority
from core.audit import audit_entries
from core.broker import get_broker
from core.db import get_sessionmaker, unit_of_work
from core.errors import AuthorizationError, LedgerError, ValidationError
from core.models import AuditEntry, Role
from core.outbox import pending_count as outbox_pending
from core.outbox import relay_all
from core.settings import load_settings
from ledger import api as ledger
from payouts import worker
from payouts.batches import approve_batch, batch_summary, cancel_batch
from payouts.dispatch import SEND, dispatch_batch, payout_queue
from payouts.export import export_arguments, export_batch
from tests.conftest import _clear_caches
from tests.payout_world import (
    RULES,
    approval,
    approve,
    assert_paid_once,
    cancel,
    create_season,
    dispatch,
    fund,
    lines,
    make_batch,
    on_batch,
    on_test_number,
    queued_messages,
    retry,
    run_workers,
    setup_world,
    sign,
)


@pytest.fixture
def world(sika_env, sandbox, monkeypatch, tmp_path):
    """Agents, 30 farmers (two on 000001), season 2026A; floats not funded yet. A test that
    runs workers asks for `real_broker` before it: the settings cleared here keep its URL."""
    monkeypatch.setenv("SIKA_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("SIKA_OPERATOR_TIMEOUT", "2")
    monkeypatch.setenv("SIKA_STATUS_CHECK_DELAYS", "[1, 2, 4]")
    _clear_caches()
    return setup_world(tmp_path, farmers=30, test_numbers=("000001",))


def _fund(amount: int, sandbox=None) -> None:
    for operator in ("flooz", "tmoney"):
        fund(operator, amount, f"test:fund:{operator}:{amount}")
        if sandbox is not None:
            sandbox.topup(operator, amount)


def _entries() -> int:
    with unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _status(batch_id: int) -> str:
    with unit_of_work() as session:
        return str(batch_summary(session, batch_id)["status"])


def _refused(request, batch_id: int, match: str) -> None:
    """The approval is refused with `match`, leaving no audit entry and the batch created."""
    before = _entries()
    with pytest.raises(AuthorizationError, match=match), unit_of_work() as session:
        approve_batch(session, request, batch_id)
    assert _entries() == before
    assert _status(batch_id) == "created"


def test_maker_cannot_approve_and_tampered_lines_are_refused(world, admin_database_url, sandbox):
    batch_id = make_batch(world)
    # the maker approving her own batch is refused: she does not hold approver
    _refused(approval(batch_id, "awa"), batch_id, "holds maker; agripme.batch.approve needs")
    approve(batch_id)
    _fund(1_000_000, sandbox)
    # Given a line whose amount is changed behind Sika's back after approval
    # (its immutability trigger is dropped first, as a superuser could)
    with psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn:
        conn.execute("ALTER TABLE payout_lines DISABLE TRIGGER payout_lines_forward_only")
        conn.execute(
            "UPDATE payout_lines SET amount = amount + 1000 WHERE batch_id = %s AND seq = 1",
            (batch_id,),
        )
        conn.execute("ALTER TABLE payout_lines ENABLE TRIGGER payout_lines_forward_only")
    # When it is dispatched, Then dispatch refuses, naming the batch, and reserves nothing
    with pytest.raises(AuthorizationError, match=f"batch {batch_id}'s lines changed"):
        dispatch(batch_id)
    with unit_of_work() as session:
        assert ledger.balance(session, "float:flooz").credits_pending == 0
        assert batch_summary(session, batch_id)["status"] == "approved"
    # And the tampered batch is cancelled by its maker: nothing of it is ever sent
    cancel(batch_id, "awa")
    assert _status(batch_id) == "cancelled"
    with pytest.raises(ValidationError, match="cancelled"):
        dispatch(batch_id)


def test_an_admin_cannot_approve(world):
    batch_id = make_batch(world)
    _refused(approval(batch_id, "root"), batch_id, "agent 'root' holds admin; .* needs approver")


def test_approving_under_another_name_without_their_key_is_refused(world):
    # Given Awa's batch, and Awa signing an approval in Kodjo's name with her own key
    batch_id = make_batch(world)
    honest = approval(batch_id, "kodjo")
    forged = authority.sign_request(
        honest.command, honest.arguments, "kodjo", authority.load_agent_key("awa")
    )
    # Then it is refused: only the holder of Kodjo's key acts as Kodjo
    _refused(forged, batch_id, "does not verify with the key of agent 'kodjo'")
    # while Kodjo's own request is accepted
    with unit_of_work() as session:
        approve_batch(session, honest, batch_id)
    assert _status(batch_id) == "approved"


def test_the_same_person_cannot_make_and_approve(world):
    # Given Awa's batch, then Awa made an approver by the admin (her maker grant revoked
    # first: never both at once)
    batch_id = make_batch(world)
    with unit_of_work() as session:
        revoking = sign("root", "agent.revoke", {"name": "awa", "role": "maker"})
        agents.revoke(session, revoking, name="awa", role="maker")
    with unit_of_work() as session:
        granting = sign("root", "agent.grant", {"name": "awa", "role": "approver"})
        agents.grant(session, granting, name="awa", role="approver")
    # When she approves the batch she made, Then it is refused
    _refused(approval(batch_id, "awa"), batch_id, "made batch .* cannot also approve it")


def test_a_replayed_approval_is_refused(world):
    first, second = make_batch(world, limit=10), make_batch(world)
    request = approval(first)
    with unit_of_work() as session:
        approve_batch(session, request, first)
    # the same signed request again: spent the first time
    with pytest.raises(AuthorizationError, match="already used"), unit_of_work() as session:
        approve_batch(session, request, first)
    # nor does the approval of one batch's manifest approve another
    _refused(request, second, "signed arguments of 'agripme.batch.approve' differ")


def test_dispatch_refuses_a_batch_whose_stored_approval_does_not_verify(
    world, sandbox, admin_database_url, database_url
):
    # Given an approved batch, funded
    batch_id = make_batch(world)
    approve(batch_id)
    _fund(1_000_000, sandbox)
    # its stored requests are evidence: Sika's own role may not touch them
    with (
        psycopg.connect(database_url.replace("+psycopg", "")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("UPDATE payout_batch_requests SET signature = 'x'")
    # nor may a superuser without first going around the trigger
    with (
        psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="history"),
    ):
        conn.execute("DELETE FROM payout_batch_requests")
    # When a superuser swaps the approval's signature for the maker's (a valid signature,
    # of another request), around the trigger
    with psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE payout_batch_requests a SET signature = s.signature"
            " FROM payout_batch_requests s WHERE a.batch_id = %s AND s.batch_id = a.batch_id"
            " AND a.step = 'approve' AND s.step = 'submit'",
            (batch_id,),
        )
    # Then dispatch refuses it, naming the approval, and reserves nothing
    with pytest.raises(AuthorizationError, match="approve signature by 'kodjo' does not verify"):
        dispatch(batch_id)
    with unit_of_work() as session:
        assert ledger.balance(session, "float:flooz").credits_pending == 0
    assert _status(batch_id) == "approved"


def test_a_revoked_approver_s_approval_no_longer_dispatches(world, sandbox):
    batch_id = make_batch(world)
    approve(batch_id)
    _fund(1_000_000, sandbox)
    # Given the approver revoked after approving
    with unit_of_work() as session:
        agents.revoke(session, sign("root", "agent.revoke", {"name": "kodjo", "role": None}),
                      name="kodjo")  # fmt: skip
    # Then the maker cannot dispatch what he approved
    with pytest.raises(AuthorizationError, match="'kodjo', who no longer holds approver"):
        dispatch(batch_id, agent="awa")
    assert _status(batch_id) == "approved"


def test_cancel_releases_the_payees_for_a_later_batch(world, sandbox, database_url):
    # Given a batch of ten farmers: they are in flight, the next batch leaves them out
    first = make_batch(world, limit=10)
    second = make_batch(world)
    with unit_of_work() as session:
        assert batch_summary(session, second)["lines"] == 20
    # a maker who did not make it may not cancel it; an admin neither
    with unit_of_work() as session:
        agents.add_agent(session, "ama", Role.MAKER)
    for agent, match in (("ama", "only its maker or an approver"), ("root", "holds admin")):
        with pytest.raises(AuthorizationError, match=match), unit_of_work() as session:
            cancel_batch(session, on_batch(agent, "cancel", first), first)
    # When its approver cancels it (after approving it, before dispatch)
    approve(first)
    cancel(first, "kodjo")
    # Then its lines failed as cancelled, never sent, the budget keeps what it had
    with unit_of_work() as session:
        summary = batch_summary(session, first)
    assert summary["status"] == "cancelled"
    assert summary["cancelled_by"] == "kodjo"
    assert summary["failed"] == {"count": 10, "amount": summary["total"],
                                 "by_reason": {"cancelled": 10}}  # fmt: skip
    # and a later batch takes those ten farmers
    third = make_batch(world)
    with unit_of_work() as session:
        assert batch_summary(session, third)["lines"] == 10
    # a cancelled batch stays cancelled: never approved, dispatched or cancelled again
    with pytest.raises(ValidationError, match="cancelled"), unit_of_work() as session:
        approve_batch(session, approval(first), first)
    with pytest.raises(ValidationError, match="not yet dispatched"):
        cancel(first, "awa")
    # and a dispatched batch can no longer be cancelled
    approve(third)
    _fund(1_000_000, sandbox)
    dispatch(third)
    with pytest.raises(ValidationError, match="only a batch not yet dispatched"):
        cancel(third, "awa")


def test_lines_and_batches_only_move_forward_in_the_database(world, admin_database_url):
    batch_id = make_batch(world)
    # the triggers hold even for the schema's owner and a superuser; sika_app may not
    # even try a DELETE (test_db_roles)
    with psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn:
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
        conn.rollback()
        # a line fails as cancelled only in a cancelled batch
        with pytest.raises(psycopg.errors.CheckViolation, match="cannot move"):
            conn.execute(
                "UPDATE payout_lines SET status = 'failed', reason = 'cancelled'"
                " WHERE batch_id = %s",
                (batch_id,),
            )
        conn.rollback()
        # a batch skips no step, and what its people signed never changes
        with pytest.raises(psycopg.errors.CheckViolation, match="cannot move"):
            conn.execute(
                "UPDATE payout_batches SET status = 'dispatched' WHERE id = %s", (batch_id,)
            )
        conn.rollback()
        # Given a created batch, whose manifest may still change before approval (a line
        # included, the pre-flight run again) when its maker signs the new one:
        # When its manifest is changed behind Sika's back
        (manifest,) = conn.execute(
            "SELECT manifest FROM payout_batches WHERE id = %s", (batch_id,)
        ).fetchone()
        conn.execute("UPDATE payout_batches SET manifest = 'x' WHERE id = %s", (batch_id,))
        conn.commit()
    # Then its approval is refused: the maker never signed that manifest
    _refused(approval(batch_id), batch_id, "changed after its maker last signed it")
    with psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn:
        conn.execute("UPDATE payout_batches SET manifest = %s WHERE id = %s", (manifest, batch_id))
        conn.commit()
    # And once approved, what its people signed never changes, nor does a line's pre-flight
    approve(batch_id)
    with psycopg.connect(admin_database_url.replace("+psycopg", "")) as conn:
        for change in (
            "UPDATE payout_batches SET manifest = 'x' WHERE id = %s",
            "UPDATE payout_batches SET total = total + 1 WHERE id = %s",
            "UPDATE payout_batches SET lines = lines - 1 WHERE id = %s",
        ):
            with pytest.raises(psycopg.errors.CheckViolation, match="immutable"):
                conn.execute(change, (batch_id,))
            conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation, match="only before its batch"):
            conn.execute(
                "UPDATE payout_lines SET held_out = 'locked' WHERE batch_id = %s AND seq = 1",
                (batch_id,),
            )


def test_a_short_float_reserves_nothing(world, sandbox):
    batch_id = make_batch(world)
    approve(batch_id)
    fund("flooz", 1_000_000, "test:fund:flooz")
    fund("tmoney", 1_000, "test:fund:tmoney")
    short = "tmoney float is short.* 1000 FCFA is free"
    with pytest.raises(LedgerError, match=short):
        dispatch(batch_id)
    with unit_of_work() as session:
        # the flooz half was not reserved either: one transaction, all or nothing
        assert ledger.balance(session, "float:flooz").credits_pending == 0
        assert batch_summary(session, batch_id)["status"] == "approved"


def test_budget_and_in_flight_farmers(world, sandbox):
    # a batch over what the season has left is refused
    create_season("TINY", seasons.parse_rules({**tomllib.loads(RULES), "budget": 20_000}))
    request = sign("awa", BATCH_CREATE, batch_create_arguments("TINY"))
    with pytest.raises(ValidationError, match="20000 FCFA of budget"):
        create_season_batch(get_sessionmaker(), request, "TINY", world, settings=load_settings())
    # a season and its budget are the treasurer's
    rules = seasons.parse_rules(tomllib.loads(RULES))
    for agent in ("root", "awa"):
        with pytest.raises(AuthorizationError, match="needs treasurer"):
            create_season("2027A", rules, treasurer=agent)
    first = make_batch(world, limit=10)
    # farmers in a created batch are in flight: the next batch leaves them out
    second = make_batch(world)
    with unit_of_work() as session:
        a, b = batch_summary(session, first), batch_summary(session, second)
    assert a["lines"] == 10
    assert b["lines"] == 20
    with pytest.raises(ValidationError, match="no farmer is owed"):
        make_batch(world)


def test_dispatch_settles_every_line_and_retry_makes_a_new_attempt(
    real_broker, world, sandbox, database_url
):
    batch_id = make_batch(world)
    approve(batch_id)
    # Given a ledger that funded the floats but an operator float holding too little
    _fund(2_000_000)
    sandbox.topup("flooz", 12_000)
    sandbox.topup("tmoney", 12_000)
    report = dispatch(batch_id, chunk=7)
    assert report.queued == 30
    progress = run_workers(batch_id)
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
    retried = retry(batch_id)
    assert retried.retried == len(failed)
    run_workers(batch_id)
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
    # a completed batch has nothing to retry: a second retry changes nothing
    # (pending and unknown lines: tests/integration/test_payout_retry.py)
    assert retry(batch_id).retried == 0
    assert lines(database_url) == rows
    assert _status(batch_id) == "completed"
    assert len(on_test_number(rows, "000001")) == 2


def test_lost_messages_are_swept_back(real_broker, world, sandbox, database_url, monkeypatch):
    batch_id = make_batch(world)
    approve(batch_id)
    _fund(2_000_000, sandbox)
    report = dispatch(batch_id, chunk=7)
    # Given the send messages relayed to the real broker, which then loses them (a broker
    # restarted without its queues): the queue is purged
    broker, queue = get_broker(), payout_queue()
    worker.declare_all(broker)
    relayed = relay_all(get_sessionmaker(), broker)
    assert relayed == report.messages > 0
    assert queued_messages(broker, queue) == relayed
    broker.flush(queue)
    # the messages are truly gone: none left to relay, none on the broker
    with unit_of_work() as session:
        assert outbox_pending(session) == 0
    assert queued_messages(broker, queue) == 0
    # When workers run with a short sweep period
    monkeypatch.setenv("SIKA_SWEEP_AFTER_SECONDS", "1")
    _clear_caches()
    progress = run_workers(batch_id)
    # Then the stalled lines were re-queued (by the sweep: the outbox holds more send
    # messages than dispatch wrote) and every one settled, each paid once
    assert progress.done
    with unit_of_work() as session:
        sends = session.execute(
            text("SELECT count(*) FROM outbox_messages WHERE actor_name = :a"), {"a": SEND}
        ).scalar_one()
    assert sends > report.messages
    rows = assert_paid_once(database_url, sandbox)
    assert all(r["status"] == "succeeded" for r in rows)
    assert all(r["sends"] == 1 and r["reference"].endswith("-1") for r in rows)


def test_dispatch_is_a_maker_s_or_approver_s_signed_request(world, sandbox):
    batch_id = make_batch(world)
    approve(batch_id)
    _fund(1_000_000, sandbox)
    for agent in ("root", "afi"):
        with pytest.raises(AuthorizationError, match="needs maker or approver"):
            dispatch(batch_id, agent=agent)
    # a request to dispatch another batch does not dispatch this one
    other = on_batch("kodjo", "dispatch", batch_id + 1)
    with pytest.raises(AuthorizationError, match="signed arguments"), unit_of_work() as session:
        dispatch_batch(session, other, batch_id, chunk=10)
    assert dispatch(batch_id, agent="awa").queued == 30


def test_an_export_in_clear_is_an_auditor_s_signed_logged_request(world, tmp_path):
    batch_id = make_batch(world, limit=3)
    with unit_of_work() as session:
        agents.add_agent(session, "yao", Role.AUDITOR)
    masked, clear = tmp_path / "masked.csv", tmp_path / "clear.csv"
    # masked, the export needs no request
    with unit_of_work() as session:
        assert export_batch(session, batch_id, masked, world) == 3
    assert "****" in masked.read_text(encoding="utf-8")
    # in clear it is an auditor's signed request: nobody else's, and never without one
    unsigned = "auditor's signed request"
    with pytest.raises(AuthorizationError, match=unsigned), unit_of_work() as session:
        export_batch(session, batch_id, clear, world, reveal=True)
    command, arguments = "agripme.batch.export", export_arguments(batch_id)
    for agent in ("awa", "kodjo", "root"):
        request = sign(agent, command, arguments)
        with pytest.raises(AuthorizationError, match="needs auditor"), unit_of_work() as session:
            export_batch(session, batch_id, clear, world, reveal=True, request=request)
    assert not clear.exists()
    with unit_of_work() as session:
        request = sign("yao", command, arguments)
        export_batch(session, batch_id, clear, world, reveal=True, request=request)
    assert "****" not in clear.read_text(encoding="utf-8")
    with unit_of_work() as session:
        [entry] = audit_entries(session, limit=1)
    assert (entry.agent_name, entry.action, entry.arguments) == ("yao", command, arguments)
