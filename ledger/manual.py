"""Manual ledger entries, four eyes each: a maker proposes a transfer, or the post or void
of a pending transfer, and a different approver executes it (or rejects it). Creating an
account by hand is a signed request too.

Every step is a signed request checked here. The maker's request is kept whole with its
proposal and verified again on approval, so a proposal altered in the database is not
executed. A hold that belongs to a payout line is refused whoever asks: only the payout
engine knows what the operator did with the line, so only it posts or voids the hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError as PydanticError
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import clock
from core.authority import SignedRequest, authorize, signature_valid
from core.errors import AuthorizationError, LedgerError, NotFoundError, ValidationError
from core.models import Agent, Role
from ledger import api
from ledger.models import ProposalRow
from ledger.types import (
    Account,
    AccountKind,
    Limit,
    ProposalKind,
    ProposalStatus,
    Transfer,
    TransferKind,
    TransferOutcome,
)

# who opens accounts by hand (the programmes open theirs), proposes entries, executes them
ACCOUNT_ROLES = (Role.MAKER, Role.TREASURER)
PROPOSE_ROLES = (Role.MAKER,)
APPROVE_ROLES = (Role.APPROVER,)
# the payout engine's holds are named so (payouts.batches.pending_transfer_id), and so is
# nothing else: an id there is the engine's, never a person's
PAYOUT_HOLD_PREFIX = "payout:"


# --- accounts ---------------------------------------------------------------------------


def create_account(
    session: Session,
    request: SignedRequest,
    *,
    code: str,
    kind: AccountKind | str,
    limit: Limit | str | None = None,
) -> tuple[Account, bool]:
    """`sika ledger account create` (maker or treasurer): (account, created?); an account
    that exists as asked answers `exists`."""
    arguments = {
        "code": code,
        "kind": str(kind),
        "limit": str(limit) if limit is not None else None,
    }
    authorize(
        session,
        request,
        command="ledger.account.create",
        arguments=arguments,
        roles=ACCOUNT_ROLES,
    )
    return api.create_account(session, code, kind, limit)


# --- proposals ---------------------------------------------------------------------------


def transfer_arguments(
    *,
    id: str,
    debit: str,
    credit: str,
    amount: int,
    pending: bool = False,
    timeout: int = 0,
    code: int = 0,
) -> dict[str, Any]:
    """What `sika ledger transfer` signs and `propose_transfer` checks."""
    return {
        "id": id,
        "debit": debit,
        "credit": credit,
        "amount": amount,
        "pending": pending,
        "timeout": timeout,
        "code": code,
    }


def post_arguments(
    *, pending_id: str, id: str | None = None, amount: int | None = None
) -> dict[str, Any]:
    """What `sika ledger post` signs and `propose_post` checks."""
    return {"pending_id": pending_id, "id": id, "amount": amount}


def void_arguments(*, pending_id: str, id: str | None = None) -> dict[str, Any]:
    """What `sika ledger void` signs and `propose_void` checks."""
    return {"pending_id": pending_id, "id": id}


def transfer_of(kind: ProposalKind, arguments: Mapping[str, Any]) -> Transfer:
    """The transfer a proposal's arguments describe, validated as the ledger would."""
    if kind is ProposalKind.TRANSFER:
        if arguments["timeout"] and not arguments["pending"]:
            raise ValidationError("--timeout needs --pending")
        if arguments["pending"]:
            return Transfer.pending(
                arguments["id"],
                arguments["debit"],
                arguments["credit"],
                arguments["amount"],
                timeout=arguments["timeout"],
                code=arguments["code"],
            )
        return Transfer.single(
            arguments["id"],
            arguments["debit"],
            arguments["credit"],
            arguments["amount"],
            code=arguments["code"],
        )
    if kind is ProposalKind.POST:
        return Transfer.post(
            arguments["pending_id"], amount=arguments["amount"], id=arguments["id"]
        )
    return Transfer.void(arguments["pending_id"], id=arguments["id"])


def _holds_a_payout_line(session: Session, pending_id: str) -> bool:
    if pending_id.startswith(PAYOUT_HOLD_PREFIX):
        return True
    # whatever its id, a hold a payout line names is that line's money
    referenced = text("SELECT EXISTS (SELECT 1 FROM payout_lines WHERE pending_id = :id)")
    return bool(session.execute(referenced, {"id": pending_id}).scalar_one())


def _check_by_hand(session: Session, transfer: Transfer) -> None:
    """Refuse what no person may write to the ledger by hand, whatever their role."""
    if transfer.pending_id is not None:
        if _holds_a_payout_line(session, transfer.pending_id):
            raise ValidationError(
                f"{transfer.pending_id} holds a payout line's money: only the payout engine"
                " posts or voids it, from what the operator says of the line"
            )
        pending = api.get_transfer(session, transfer.pending_id)
        if pending is None:
            raise NotFoundError(f"no transfer {transfer.pending_id} in the ledger")
        if pending["kind"] != TransferKind.PENDING:
            raise ValidationError(
                f"transfer {transfer.pending_id} is a {pending['kind']} transfer, not a"
                " pending one"
            )
    if transfer.id.startswith(PAYOUT_HOLD_PREFIX):
        raise ValidationError(
            f"transfer ids starting {PAYOUT_HOLD_PREFIX!r} are the payout engine's: choose"
            " another --id"
        )


def propose(
    session: Session, request: SignedRequest, kind: ProposalKind, arguments: Mapping[str, Any]
) -> ProposalRow:
    """A maker's proposal of the entry `arguments` describe (`transfer_arguments`,
    `post_arguments` or `void_arguments`); nothing moves until a different approver
    approves it."""
    transfer = transfer_of(kind, arguments)
    _check_by_hand(session, transfer)
    now = clock.now()
    agent = authorize(
        session,
        request,
        command=f"ledger.{kind}",
        arguments=arguments,
        roles=PROPOSE_ROLES,
        now=now,
    )
    waiting = session.scalar(
        select(ProposalRow.id).where(
            ProposalRow.transfer_id == transfer.id,
            ProposalRow.status == ProposalStatus.PROPOSED,
        )
    )
    if waiting is not None:
        raise ValidationError(
            f"proposal {waiting} for transfer {transfer.id} already awaits an approver"
        )
    row = ProposalRow(
        kind=kind.value,
        transfer_id=transfer.id,
        command=request.command,
        arguments=request.arguments,
        agent=request.agent,
        request_id=request.request_id,
        issued_at=request.issued_at,
        signature=request.signature,
        proposed_by=agent.id,
        proposed_at=now,
        status=ProposalStatus.PROPOSED.value,
    )
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # the same transfer proposed by a concurrent transaction that committed first
        raise ValidationError(
            f"a proposal for transfer {transfer.id} already awaits an approver"
        ) from None
    return row


def propose_transfer(
    session: Session,
    request: SignedRequest,
    *,
    id: str,
    debit: str,
    credit: str,
    amount: int,
    pending: bool = False,
    timeout: int = 0,
    code: int = 0,
) -> ProposalRow:
    """`sika ledger transfer` (maker): propose moving `amount` from `debit` to `credit`,
    or reserving it with `pending`; nothing moves until a different approver approves."""
    arguments = transfer_arguments(
        id=id,
        debit=debit,
        credit=credit,
        amount=amount,
        pending=pending,
        timeout=timeout,
        code=code,
    )
    return propose(session, request, ProposalKind.TRANSFER, arguments)


def propose_post(
    session: Session,
    request: SignedRequest,
    *,
    pending_id: str,
    id: str | None = None,
    amount: int | None = None,
) -> ProposalRow:
    """`sika ledger post` (maker): propose posting a pending transfer, fully or partly."""
    arguments = post_arguments(pending_id=pending_id, id=id, amount=amount)
    return propose(session, request, ProposalKind.POST, arguments)


def propose_void(
    session: Session, request: SignedRequest, *, pending_id: str, id: str | None = None
) -> ProposalRow:
    """`sika ledger void` (maker): propose releasing a pending transfer."""
    return propose(
        session, request, ProposalKind.VOID, void_arguments(pending_id=pending_id, id=id)
    )


# --- decisions ---------------------------------------------------------------------------


def get_proposal(session: Session, proposal_id: int, *, lock: bool = False) -> ProposalRow:
    """One proposal, or `NotFoundError`."""
    query = select(ProposalRow).where(ProposalRow.id == proposal_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        raise NotFoundError(f"no ledger proposal {proposal_id}")
    return row


def _approval(row: ProposalRow) -> dict[str, Any]:
    return {"proposal_id": row.id, "kind": row.kind, "transfer": row.arguments}


def approval_arguments(session: Session, proposal_id: int) -> dict[str, Any]:
    """What an approval signs: the proposal and the entry it proposes, so an entry changed
    after the approver read it is not the one approved."""
    return _approval(get_proposal(session, proposal_id))


def _check_open(row: ProposalRow) -> None:
    if row.status != ProposalStatus.PROPOSED:
        raise ValidationError(f"ledger proposal {row.id} was {row.status}: a decision is final")


def _check_maker(session: Session, row: ProposalRow) -> None:
    """The proposal is still what its maker signed, and its maker still a maker."""
    maker = session.get(Agent, row.proposed_by)
    try:
        signed = SignedRequest(
            command=row.command,
            arguments=row.arguments,
            agent=row.agent,
            request_id=row.request_id,
            issued_at=row.issued_at,
            signature=row.signature,
        )
    except PydanticError:
        signed = None
    if (
        maker is None
        or signed is None
        or signed.agent != maker.name
        or signed.command != f"ledger.{row.kind}"
        or not signature_valid(session, signed, at=row.proposed_at)
    ):
        raise AuthorizationError(
            f"ledger proposal {row.id} no longer matches what its maker signed: it was altered"
            " and is not executed"
        )
    if Role.MAKER not in maker.roles:
        raise AuthorizationError(
            f"agent {maker.name!r}, who proposed ledger entry {row.id}, is no longer a maker:"
            " it is not executed"
        )


def approve(session: Session, request: SignedRequest, proposal_id: int) -> ProposalRow:
    """`sika ledger approve` (approver, never the proposer): the proposed entry is written
    to the ledger in this transaction; `status` and `result` say what the ledger answered.

    A refusal by the ledger (an overdrawn account, say) is a decision too: the proposal is
    `refused`, with the ledger's result, and the maker proposes again.
    """
    row = get_proposal(session, proposal_id, lock=True)
    _check_open(row)
    agent = authorize(
        session,
        request,
        command="ledger.approve",
        arguments=_approval(row),
        roles=APPROVE_ROLES,
    )
    if agent.id == row.proposed_by:
        raise AuthorizationError(
            f"agent {agent.name!r} proposed ledger entry {row.id}: a different approver must"
            " approve it"
        )
    _check_maker(session, row)
    transfer = transfer_of(ProposalKind(row.kind), row.arguments)
    if transfer.id != row.transfer_id:
        raise AuthorizationError(
            f"ledger proposal {row.id} no longer matches what its maker signed: it was altered"
            " and is not executed"
        )
    _check_by_hand(session, transfer)
    outcome = _write(session, row, transfer)
    row.status = (ProposalStatus.EXECUTED if outcome.ok else ProposalStatus.REFUSED).value
    row.result = outcome.result.value
    row.decided_by, row.decided_at = agent.id, clock.now()
    session.flush()
    return row


def _write(session: Session, row: ProposalRow, transfer: Transfer) -> TransferOutcome:
    try:
        with session.begin_nested():
            return api.create_transfer(session, transfer)
    except IntegrityError:
        # the same id written by a concurrent transaction that committed first
        raise LedgerError(
            f"transfer {transfer.id} was written at the same moment by someone else: approve"
            f" ledger proposal {row.id} again to see what the ledger holds"
        ) from None


def reject(session: Session, request: SignedRequest, proposal_id: int) -> ProposalRow:
    """`sika ledger reject` (approver, never the proposer): turn a proposal down; nothing
    moves."""
    row = get_proposal(session, proposal_id, lock=True)
    _check_open(row)
    agent = authorize(
        session,
        request,
        command="ledger.reject",
        arguments={"proposal_id": row.id},
        roles=APPROVE_ROLES,
    )
    if agent.id == row.proposed_by:
        raise AuthorizationError(
            f"agent {agent.name!r} proposed ledger entry {row.id}: a different approver decides"
        )
    row.status = ProposalStatus.REJECTED.value
    row.decided_by, row.decided_at = agent.id, clock.now()
    session.flush()
    return row


# --- reading -----------------------------------------------------------------------------


def proposals(session: Session, status: ProposalStatus | None = None) -> list[ProposalRow]:
    """Proposals, oldest first; only those of `status` when given."""
    query = select(ProposalRow).order_by(ProposalRow.id)
    if status is not None:
        query = query.where(ProposalRow.status == status.value)
    return list(session.scalars(query))


def proposal_view(session: Session, row: ProposalRow) -> dict[str, Any]:
    """A proposal for a screen: the entry, who proposed and who decided, and the result."""
    decider = session.get(Agent, row.decided_by) if row.decided_by is not None else None
    return {
        "proposal": row.id,
        "kind": row.kind,
        "id": row.transfer_id,
        "transfer": dict(row.arguments),
        "status": row.status,
        "result": row.result,
        "maker": row.agent,
        "proposed_at": row.proposed_at.isoformat(),
        "decided_by": decider.name if decider is not None else None,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
    }
