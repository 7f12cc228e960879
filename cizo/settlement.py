"""Paying solar companies what CIZO owes them, through the shared payout batches (a
maker's signed request here; a different approver approves and dispatches with
`sika cizo batch ...`).

Each settlement is its own scope `cizo:settle:<company>:<n>`; the batch's single line
debits `cizo:company:<company>`, whose DEBITS limit makes overpaying impossible.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cizo import registry
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import ValidationError
from core.models import Role
from payouts.batches import LineSpec, create_batch
from payouts.models import LineStatus, PayoutBatch, PayoutLine

PROGRAMME = "cizo"


def _scope_prefix(company: str) -> str:
    return f"cizo:settle:{company.lower()}:"


def _plain(text: str) -> str:
    return text.replace("{", "(").replace("}", ")")


def settleable(session: Session, company: str) -> int:
    """Francs owed to the company and not yet in a settlement line.

    Reserved lines already count as pending debits of the company's account; lines of
    batches not yet dispatched are not reserved, so they are subtracted here.
    """
    unreserved = session.scalar(
        select(func.coalesce(func.sum(PayoutLine.amount), 0)).where(
            PayoutLine.scope.startswith(_scope_prefix(company)),
            PayoutLine.status == LineStatus.CREATED.value,
        )
    )
    return registry.available(session, registry.company_account(company)) - int(unreserved or 0)


def settle(
    session: Session, request: SignedRequest, company_code: str, keys: PiiKeys
) -> PayoutBatch:
    """`sika cizo settle` (maker): a payout batch paying the company everything it is
    owed, made by the agent who signed `request`."""
    maker = authorize(
        session,
        request,
        command="cizo.settle",
        arguments={"company": company_code},
        roles=[Role.MAKER],
    )
    company = registry.get_company(session, company_code, lock=True)
    amount = settleable(session, company.code)
    if amount <= 0:
        raise ValidationError(f"nothing is owed to {company.code} beyond what is being paid")
    number = 1 + int(
        session.scalar(
            select(func.count())
            .select_from(PayoutBatch)
            .where(
                PayoutBatch.programme == PROGRAMME,
                PayoutBatch.scope.startswith(_scope_prefix(company.code)),
            )
        )
        or 0
    )
    registry.ensure_float(session, company.operator)
    scope = f"{_scope_prefix(company.code)}{number}"
    batch = create_batch(
        session,
        programme=PROGRAMME,
        scope=scope,
        debit_account=registry.company_account(company.code),
        description=f"CIZO {company.code} {number}",
        # the notice is a str.format template: braces in a company name must not reach it
        notice=f"CIZO : Sika a versé {{amount}} à {_plain(company.name)} (règlement n° {number}).",
        lines=[
            LineSpec(
                payee=f"company:{company.code}",
                msisdn=registry.company_msisdn(company, keys),
                operator=company.operator,
                amount=amount,
            )
        ],
        maker=maker,
        keys=keys,
    )
    return batch
