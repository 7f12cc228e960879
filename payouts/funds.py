"""Money placed in an operator float: `sika funds add`.

The Treasury moves e-money into the government's merchant wallet at an operator; Sika
records it as a debit of `float:<operator>` against `treasury:funding`.
"""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from core.bounds import check_amount
from core.errors import LedgerError, ProviderError
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Result, Transfer, check_transfer_id
from payouts.dispatch import float_account, float_spec

FUNDING_ACCOUNT = "treasury:funding"


def add_funds(session: Session, operator: str, amount: int, transfer_id: str) -> Result:
    """Record `amount` francs placed in the operator's float; a repeated id is a replay."""
    check_funding(amount, transfer_id)
    ledger.create_accounts(
        session, [float_spec(operator), AccountSpec(FUNDING_ACCOUNT, AccountKind.EQUITY)]
    )
    outcome = ledger.create_transfer(
        session,
        Transfer.single(transfer_id, float_account(operator), FUNDING_ACCOUNT, amount),
    )
    if outcome.result not in (Result.CREATED, Result.EXISTS):
        raise LedgerError(f"the ledger refused the funding {transfer_id}: {outcome.result.value}")
    return outcome.result


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
