"""Money placed in an operator float: `sika funds add`, the treasurer's signed request.

The Treasury moves e-money into the government's merchant wallet at an operator; Sika
records it as a debit of `float:<operator>` against `treasury:funding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session

from core.authority import SignedRequest, authorize
from core.bounds import check_amount
from core.errors import LedgerError, ProviderError, ValidationError
from core.models import Role
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Result, Transfer, check_transfer_id
from payouts.dispatch import float_account, float_spec
from providers.msisdn import Operator

FUNDING_ACCOUNT = "treasury:funding"
FUNDS_ADD = "funds.add"


@dataclass(frozen=True)
class Funding:
    """What `add_funds` did: the ledger's answer, and the sandbox's float after its top-up
    (None when no sandbox was topped up, a replay included)."""

    result: Result
    sandbox_float: int | None = None


def funding_arguments(operator: str, amount: int, transfer_id: str) -> dict[str, Any]:
    """What a `funds.add` request signs."""
    return {"operator": operator, "amount": amount, "transfer": transfer_id}


def add_funds(
    session: Session,
    request: SignedRequest,
    *,
    operator: str,
    amount: int,
    transfer_id: str,
    sandbox_url: str | None = None,
) -> Funding:
    """Record `amount` francs placed in the operator's float, at a treasurer's signed
    request; a repeated id is a replay. With `sandbox_url` the sandbox's float is topped
    up first (the money reaches the operator, then the ledger records what happened)."""
    check_funding(amount, transfer_id)
    if operator not in {op.value for op in Operator}:
        known = ", ".join(op.value for op in Operator)
        raise ValidationError(f"--operator: {operator!r} is not an operator ({known})")
    authorize(
        session,
        request,
        command=FUNDS_ADD,
        arguments=funding_arguments(operator, amount, transfer_id),
        roles=[Role.TREASURER],
    )
    sandbox_float = None
    if sandbox_url and ledger.get_transfer(session, transfer_id) is None:
        sandbox_float = top_up_sandbox(sandbox_url, operator, amount)
    ledger.create_accounts(
        session, [float_spec(operator), AccountSpec(FUNDING_ACCOUNT, AccountKind.EQUITY)]
    )
    outcome = ledger.create_transfer(
        session,
        Transfer.single(transfer_id, float_account(operator), FUNDING_ACCOUNT, amount),
    )
    if outcome.result not in (Result.CREATED, Result.EXISTS):
        raise LedgerError(f"the ledger refused the funding {transfer_id}: {outcome.result.value}")
    return Funding(outcome.result, sandbox_float)


def check_funding(amount: int, transfer_id: str) -> None:
    """Refuse a funding the ledger would refuse, before the money reaches the operator."""
    check_amount(amount, "--amount")
    check_transfer_id(transfer_id)


def top_up_sandbox(sandbox_url: str, operator: str, amount: int) -> int:
    """Mirror a funding in the sandbox's merchant float; returns the sandbox's new float."""
    try:
        response = httpx.post(
            f"{sandbox_url.rstrip('/')}/_sandbox/float",
            json={"operator": operator, "amount": amount},
            timeout=10,
        )
        response.raise_for_status()
        floats = httpx.get(f"{sandbox_url.rstrip('/')}/_sandbox/float", timeout=10).json()
    except httpx.HTTPError as exc:
        raise ProviderError(f"the sandbox at {sandbox_url} did not take the top-up: {exc}") from exc
    return int(floats[operator])
