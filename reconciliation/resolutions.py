"""Auditors' decisions on exceptions: an acknowledgement closes one at once; a resolution
that moves money is proposed by one auditor and takes effect when a second agent approves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import agents
from core.errors import AuthorizationError, LedgerError, NotFoundError, ValidationError
from core.models import Agent, Role
from ledger import api as ledger
from ledger.types import Result, Transfer
from payouts.dispatch import LineOutcome, record_outcomes
from payouts.models import LineStatus, PayoutLine
from reconciliation.models import Action, ExceptionCategory, ExceptionStatus, ReconException
from reconciliation.service import fees_account, float_account, suspense_account

_OK = (Result.CREATED, Result.EXISTS)
_NEEDS_LINE = (Action.POST, Action.VOID)
# what leaves the float (a payout the ledger does not have) versus what came into it
_OUT_OF_FLOAT = ("payout",)


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
    session: Session, exception_id: int, action: Action, note: str, agent: Agent
) -> ReconException:
    """An auditor's decision: applied now if it moves no money, else awaiting approval."""
    if Role(agent.role) is not Role.AUDITOR:
        raise AuthorizationError(
            f"agent {agent.name!r} has the role {agent.role}; resolving needs auditor"
        )
    if not note.strip():
        raise ValidationError("--note must say why (it is kept in the audit log)")
    exc = get_exception(session, exception_id, lock=True)
    if exc.status not in (ExceptionStatus.OPEN, ExceptionStatus.AWAITING_APPROVAL):
        raise ValidationError(f"exception {exc.id} is {exc.status}: only open ones are resolved")
    _check_applicable(exc, action)
    now = dt.datetime.now(dt.UTC)
    exc.action, exc.note = action.value, note.strip()
    exc.proposed_by, exc.proposed_at, exc.approved_by = agent.id, now, None
    if action.moves_money:
        exc.status = ExceptionStatus.AWAITING_APPROVAL.value
    else:
        exc.status, exc.resolved_at = ExceptionStatus.RESOLVED.value, now
    session.flush()
    agents.record(
        session,
        agent,
        "reconcile.resolve",
        {"exception": exc.id, "action": action.value, "note": exc.note, "status": exc.status},
    )
    return exc


def approve(session: Session, exception_id: int, agent: Agent) -> ReconException:
    """A second agent (auditor, approver or admin) approves a money-moving resolution,
    which is then applied in the same transaction."""
    if Role(agent.role) not in (Role.AUDITOR, Role.APPROVER, Role.ADMIN):
        raise AuthorizationError(
            f"agent {agent.name!r} has the role {agent.role}; approving needs auditor,"
            " approver or admin"
        )
    exc = get_exception(session, exception_id, lock=True)
    if exc.status != ExceptionStatus.AWAITING_APPROVAL:
        raise ValidationError(f"exception {exc.id} is {exc.status}, not awaiting approval")
    if exc.proposed_by == agent.id:
        raise AuthorizationError(
            f"agent {agent.name!r} proposed this resolution: a second agent must approve it"
        )
    action = Action(str(exc.action))
    effect = _apply(session, exc, action)
    exc.approved_by, exc.status = agent.id, ExceptionStatus.RESOLVED.value
    exc.resolved_at = dt.datetime.now(dt.UTC)
    session.flush()
    agents.record(
        session,
        agent,
        "reconcile.approve",
        {"exception": exc.id, "action": action.value, "effect": effect},
    )
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
