"""Auditors' decisions on exceptions: an acknowledgement closes one at once; a resolution
that moves money is proposed by one auditor and takes effect when a second agent approves.

Both are signed requests checked here. The second agent is told apart from the proposer by
identity, which only their own key proves: an auditor cannot approve her own resolution
under her name, nor under another's without that person's key, and cannot mint a second
identity (enrolling an agent is an admin's act, and an approver's grant needs a second
admin).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.authority import SignedRequest, authorize
from core.errors import AuthorizationError, LedgerError, NotFoundError, ValidationError
from core.logging import get_logger
from core.models import Role
from ledger import api as ledger
from ledger.types import Result, Transfer
from payouts.dispatch import LineOutcome, record_outcomes
from payouts.models import LineStatus, PayoutLine
from reconciliation.models import Action, ExceptionCategory, ExceptionStatus, ReconException
from reconciliation.service import fees_account, float_account, suspense_account

log = get_logger(__name__)

_OK = (Result.CREATED, Result.EXISTS)
_NEEDS_LINE = (Action.POST, Action.VOID)
# what leaves the float (a payout the ledger does not have) versus what came into it
_OUT_OF_FLOAT = ("payout",)
# who decides what an exception means, and who may be the second pair of eyes on money
RESOLVE_ROLES = (Role.AUDITOR,)
APPROVE_ROLES = (Role.AUDITOR, Role.APPROVER)


def get_exception(session: Session, exception_id: int, *, lock: bool = False) -> ReconException:
    """One exception; NotFoundError when there is none."""
    query = select(ReconException).where(ReconException.id == exception_id)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise NotFoundError(f"no reconciliation exception {exception_id}")
    return found


def parse_action(value: str) -> Action:
    """`--action` as an Action; ValidationError listing the actions."""
    try:
        return Action(value.strip().lower())
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise ValidationError(f"--action {value!r} is not known: choose one of {known}") from None


def _check_applicable(exc: ReconException, action: Action) -> None:
    if action in _NEEDS_LINE and exc.payout_line_id is None:
        raise ValidationError(
            f"exception {exc.id} ({exc.category}) names no payout line: --action {action} needs one"
        )
    if action is Action.BOOK_FEE and exc.category != ExceptionCategory.FEE_MISMATCH:
        raise ValidationError(f"--action book_fee applies to a fee_mismatch, not {exc.category}")
    if action is Action.BOOK_FEE and not exc.fee:
        raise ValidationError(f"exception {exc.id}: the statement shows no fee to book")
    if action is Action.TO_SUSPENSE and exc.amount <= 0:
        raise ValidationError(f"exception {exc.id} has no amount to hold in suspense")


def resolve(
    session: Session, request: SignedRequest, exception_id: int, action: Action, note: str
) -> ReconException:
    """`sika reconcile resolve` (auditor): applied now if it moves no money, else awaiting
    a second agent's approval."""
    if not note.strip():
        raise ValidationError("--note must say why (it is kept in the audit log)")
    agent = authorize(
        session,
        request,
        command="reconcile.resolve",
        arguments={"exception_id": exception_id, "action": action.value, "note": note},
        roles=RESOLVE_ROLES,
    )
    exc = get_exception(session, exception_id, lock=True)
    if exc.status not in (ExceptionStatus.OPEN, ExceptionStatus.AWAITING_APPROVAL):
        raise ValidationError(f"exception {exc.id} is {exc.status}: only open ones are resolved")
    _check_applicable(exc, action)
    now = clock.now()
    exc.action, exc.note = action.value, note.strip()
    exc.proposed_by, exc.proposed_at, exc.approved_by = agent.id, now, None
    if action.moves_money:
        exc.status = ExceptionStatus.AWAITING_APPROVAL.value
    else:
        exc.status, exc.resolved_at = ExceptionStatus.RESOLVED.value, now
    session.flush()
    return exc


def approval_arguments(session: Session, exception_id: int) -> dict[str, Any]:
    """What an approval signs: the exception and the action proposed for it, so a proposal
    changed after the approver read it is not the one approved."""
    exc = get_exception(session, exception_id)
    return {"exception_id": exc.id, "action": exc.action}


def approve(session: Session, request: SignedRequest, exception_id: int) -> ReconException:
    """`sika reconcile approve` (auditor or approver, never the proposer): the proposed
    resolution is approved and applied in the same transaction."""
    exc = get_exception(session, exception_id, lock=True)
    if exc.status != ExceptionStatus.AWAITING_APPROVAL:
        raise ValidationError(f"exception {exc.id} is {exc.status}, not awaiting approval")
    agent = authorize(
        session,
        request,
        command="reconcile.approve",
        arguments={"exception_id": exc.id, "action": exc.action},
        roles=APPROVE_ROLES,
    )
    if exc.proposed_by == agent.id:
        raise AuthorizationError(
            f"agent {agent.name!r} proposed this resolution: a second agent must approve it"
        )
    effect = _apply(session, exc, Action(str(exc.action)))
    log.info("reconcile.approved", exception_id=exc.id, agent=agent.name, **effect)
    exc.approved_by, exc.status = agent.id, ExceptionStatus.RESOLVED.value
    exc.resolved_at = clock.now()
    session.flush()
    return exc


def _apply(session: Session, exc: ReconException, action: Action) -> dict[str, Any]:
    """Write the approved resolution to the ledger (and to the payout line)."""
    if action in _NEEDS_LINE:
        line = session.get(PayoutLine, exc.payout_line_id)
        if line is None or line.status not in ("submitted", "pending", "unknown"):
            state = line.status if line is not None else "gone"
            raise ValidationError(
                f"payout line {exc.payout_line_id} is {state}: only an in-flight line is"
                f" posted or voided"
            )
        status = LineStatus.SUCCEEDED if action is Action.POST else LineStatus.FAILED
        changed = record_outcomes(
            session,
            [
                LineOutcome(
                    line.id,
                    status,
                    reason=f"reconciliation exception {exc.id}" if action is Action.VOID else None,
                    operator_reference=exc.operator_reference,
                )
            ],
        )
        return {"line": line.id, "status": status.value, "changed": changed}
    if action is Action.BOOK_FEE:
        transfer = Transfer.single(
            f"recon:fee:{exc.provider}:{exc.operator_reference}",
            fees_account(exc.provider),
            float_account(exc.provider),
            int(exc.fee or 0),
        )
    elif exc.kind in _OUT_OF_FLOAT:
        transfer = Transfer.single(
            f"recon:exception:{exc.id}",
            suspense_account(exc.provider),
            float_account(exc.provider),
            int(exc.amount),
        )
    else:
        transfer = Transfer.single(
            f"recon:exception:{exc.id}",
            float_account(exc.provider),
            suspense_account(exc.provider),
            int(exc.amount),
        )
    outcome = ledger.create_transfer(session, transfer)
    if outcome.result not in _OK:
        raise LedgerError(f"the ledger refused {transfer.id}: {outcome.result.sentence}")
    return {"transfer": transfer.id, "amount": transfer.amount}
