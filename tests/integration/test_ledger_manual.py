"""Manual ledger entries on real PostgreSQL: four eyes told apart by identity, not by role;
a proposal altered behind Sika's back is not executed; the database refuses what Python
refuses; and a payout line's hold is the payout engine's alone, whatever its id."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from core import agents
from core.authority import SignedRequest, signed_by
from core.errors import AuthorizationError, ValidationError
from core.models import AuditEntry
from ledger import api, manual
from ledger.models import ProposalRow
from ledger.types import AccountKind, AccountSpec, ProposalKind, Transfer

MOVE = manual.transfer_arguments(id="t1", debit="treasury", credit="float", amount=700)


def _libpq(url: str) -> str:
    return url.replace("+psycopg", "")


@pytest.fixture
def office(session_factory: sessionmaker[Session], sika_env: dict[str, str]) -> None:
    """root (the only admin), awa (maker), kodjo (approver); a treasury and a float."""
    with session_factory() as s, s.begin():
        for name, role in (("root", "admin"), ("awa", "maker"), ("kodjo", "approver")):
            agents.add_agent(s, name, role)
        api.create_accounts(
            s,
            [
                AccountSpec("treasury", AccountKind.EQUITY),
                AccountSpec("float", AccountKind.ASSET),
                AccountSpec("budget", AccountKind.LIABILITY),
            ],
        )
        api.create_transfer(s, Transfer.single("fund", "float", "budget", 5_000))


def _run(factory: sessionmaker[Session], work: Any) -> Any:
    with factory() as session, session.begin():
        return work(session)


def _propose(factory: sessionmaker[Session], arguments: dict[str, Any] = MOVE) -> int:
    request = signed_by("awa", "ledger.transfer", arguments)
    row = _run(factory, lambda s: manual.propose(s, request, ProposalKind.TRANSFER, arguments))
    return int(row.id)


def _approval(factory: sessionmaker[Session], name: str, proposal: int) -> SignedRequest:
    arguments = _run(factory, lambda s: manual.approval_arguments(s, proposal))
    return signed_by(name, "ledger.approve", arguments)


def _approve(factory: sessionmaker[Session], name: str, proposal: int) -> ProposalRow:
    request = _approval(factory, name, proposal)
    return _run(factory, lambda s: manual.approve(s, request, proposal))


def _credits(factory: sessionmaker[Session], code: str = "float") -> int:
    with factory() as s:
        return api.balance(s, code).credits_posted


def _entries(factory: sessionmaker[Session], action: str) -> int:
    with factory() as s:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        return int(s.scalar(query) or 0)


def test_a_maker_turned_approver_cannot_approve_her_own_entry(
    session_factory: sessionmaker[Session], office: None
) -> None:
    # Given a transfer awa proposed as a maker
    proposal = _propose(session_factory)
    # When an admin takes her maker grant away and makes her an approver
    for command, arguments, service in (
        ("agent.revoke", {"name": "awa", "role": "maker"}, agents.revoke),
        ("agent.grant", {"name": "awa", "role": "approver"}, agents.grant),
    ):
        request = signed_by("root", command, arguments)
        _run(session_factory, lambda s, r=request, a=arguments, f=service: f(s, r, **a))
    # Then she still cannot approve what she proposed: four eyes are two identities
    with pytest.raises(AuthorizationError, match="'awa' proposed ledger entry"):
        _approve(session_factory, "awa", proposal)
    # And nor can kodjo: its maker is no longer a maker, so it is not executed
    with pytest.raises(AuthorizationError, match="no longer a maker"):
        _approve(session_factory, "kodjo", proposal)
    assert _credits(session_factory) == 0
    assert _entries(session_factory, "ledger.approve") == 0


def test_an_approval_names_the_entry_it_approves(
    session_factory: sessionmaker[Session], office: None
) -> None:
    # Given kodjo's approval of proposal 1 as he read it
    first = _propose(session_factory)
    stale = _approval(session_factory, "kodjo", first)
    # When it is presented for another proposal
    second = _propose(session_factory, {**MOVE, "id": "t2", "amount": 9})
    # Then it is refused: it names another entry
    with pytest.raises(AuthorizationError, match="differ from those it would act on"):
        _run(session_factory, lambda s: manual.approve(s, stale, second))
    # And used where it belongs, it executes the entry once; used again, it is spent
    assert _run(session_factory, lambda s: manual.approve(s, stale, first)).result == "created"
    assert _credits(session_factory) == 700


def test_a_proposal_altered_behind_sikas_back_is_not_executed(
    session_factory: sessionmaker[Session], office: None, database_url: str,
    admin_database_url: str,
) -> None:
    proposal = _propose(session_factory)
    # sika_app may decide a proposal, never change what its maker signed
    with (
        psycopg.connect(_libpq(database_url)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            "UPDATE ledger_proposals SET arguments = jsonb_set(arguments, '{amount}', '7000')"
        )
    # a superuser can, with the trigger switched off; the approval then refuses the entry
    with psycopg.connect(_libpq(admin_database_url)) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "UPDATE ledger_proposals SET arguments = jsonb_set(arguments, '{amount}', '7000')"
        )
    with pytest.raises(AuthorizationError, match="no longer matches what its maker signed"):
        _approve(session_factory, "kodjo", proposal)
    assert _credits(session_factory) == 0


def test_the_database_keeps_four_eyes_and_final_decisions(
    session_factory: sessionmaker[Session], office: None, admin_database_url: str
) -> None:
    proposal = _propose(session_factory)
    # its maker deciding it is refused even to a superuser
    with (
        psycopg.connect(_libpq(admin_database_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="four_eyes"),
    ):
        conn.execute(
            "UPDATE ledger_proposals SET status = 'rejected', decided_by = proposed_by,"
            " decided_at = now() WHERE id = %s",
            (proposal,),
        )
    _approve(session_factory, "kodjo", proposal)
    # and a decision, once made, stays
    with (
        psycopg.connect(_libpq(admin_database_url)) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match="a decision is final"),
    ):
        conn.execute(
            "UPDATE ledger_proposals SET status = 'proposed', decided_by = NULL,"
            " decided_at = NULL, result = NULL WHERE id = %s",
            (proposal,),
        )


def test_a_hold_a_payout_line_names_is_refused_whatever_its_id(
    session_factory: sessionmaker[Session], office: None
) -> None:
    # Given a hold under an ordinary id that a payout line references
    with session_factory() as s, s.begin():
        api.create_transfer(s, Transfer.pending("h1", "budget", "float", 900))
        maker = agents.get_agent(s, "awa")
        batch = s.execute(
            text(
                "INSERT INTO payout_batches (programme, scope, debit_account, description,"
                " status, nonce, lines, total, manifest, maker_id)"
                " VALUES ('agripme', 's', 'budget', 'd', 'dispatched', 'n', 1, 900, 'm', :m)"
                " RETURNING id"
            ),
            {"m": maker.id},
        ).scalar_one()
        s.execute(
            text(
                "INSERT INTO payout_lines (batch_id, seq, scope, payee, msisdn_enc, operator,"
                " amount, status, attempt, reference, pending_id, retryable, sends, checks,"
                " submitted_at) VALUES (:b, 1, 's', 'farmer:1', '\\x00', 'flooz', 900,"
                " 'pending', 1, 'R1', 'h1', false, 1, 0, :at)"
            ),
            {"b": batch, "at": dt.datetime.now(dt.UTC)},
        )
    # When a maker proposes to void or post it
    for kind, arguments in (
        (ProposalKind.VOID, manual.void_arguments(pending_id="h1")),
        (ProposalKind.POST, manual.post_arguments(pending_id="h1", amount=1)),
    ):
        request = signed_by("awa", f"ledger.{kind}", arguments)
        # Then it is refused in one sentence, and nothing is proposed or recorded
        with pytest.raises(ValidationError, match="only the payout engine") as caught:
            _run(session_factory, lambda s, r=request, k=kind, a=arguments: manual.propose(
                s, r, k, a))
        assert "\n" not in str(caught.value)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ProposalRow)) == 0
        assert api.balance(s, "budget").debits_pending == 900
    assert _entries(session_factory, "ledger.void") == 0
