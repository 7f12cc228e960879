"""Operators' payout fee grids, against which each run checks the fees a statement shows.

Recording a grid is a signed request of an auditor or the treasurer, checked here: a fee
that matches the grid is booked by the run itself, so the grid is a money rule.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.authority import SignedRequest, authorize
from core.bounds import check_amount
from core.errors import ValidationError
from core.models import Role
from reconciliation.models import FeeRule

FEE_ROLES = (Role.AUDITOR, Role.TREASURER)
MAX_BPS = 10_000


def record_fee_rule(
    session: Session,
    request: SignedRequest,
    *,
    provider: str,
    fixed: int,
    bps: int,
    valid_from: dt.date,
) -> FeeRule:
    """`sika reconcile fees`: `provider` charges `fixed + amount * bps // 10000` francs a
    payout from `valid_from` on (auditor or treasurer)."""
    check_amount(fixed, "--fixed", allow_zero=True)
    if not 0 <= bps <= MAX_BPS:
        raise ValidationError(f"--bps must be between 0 and {MAX_BPS}")
    agent = authorize(
        session,
        request,
        command="reconcile.fees",
        arguments={
            "provider": provider,
            "fixed": fixed,
            "bps": bps,
            "from": valid_from.isoformat(),
        },
        roles=FEE_ROLES,
    )
    known = select(FeeRule.id).where(FeeRule.provider == provider, FeeRule.valid_from == valid_from)
    if session.scalar(known) is not None:
        raise ValidationError(
            f"{provider} already has a fee grid from {valid_from.isoformat()}: record the new"
            " grid from another day"
        )
    rule = FeeRule(
        provider=provider, valid_from=valid_from, fee_fixed=fixed, fee_bps=bps, created_by=agent.id
    )
    session.add(rule)
    session.flush()
    return rule
