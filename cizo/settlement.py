"""Paying solar companies what CIZO owes them, through the shared payout batches (a
maker's signed request here; a different approver approves and dispatches with
`sika cizo batch ...`).

Each settlement is its own scope `cizo:settle:<company>:<n>`; the batch's single line
debits `cizo:company:<company>`, whose DEBITS limit makes overpaying impossible.

Before the batch is written, the company's merchant wallet goes through the pre-flight
(`payouts.preflight`) like any farmer's: its state, not a person's name, is checked. A
wallet that would refuse the money (not registered, inactive, locked, at its balance
cap) refuses the settlement, naming the state, and nothing is built: the money stays
owed to the company. A number the other operator now holds is paid there, and the
company's operator follows it (audited).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cizo import registry
from cizo.models import Company
from core.audit import record as audit_record
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import ValidationError
from core.models import Agent, Role
from core.settings import Settings
from payouts.batches import LineSpec, LineVerdict, create_batch
from payouts.models import EXCLUDING, LineStatus, PayoutBatch, PayoutLine
from payouts.preflight import (
    PreflightProgress,
    Subject,
    Verdict,
    check_no_preflight,
    verdicts_of,
)
from providers.msisdn import mask

PROGRAMME = "cizo"
SETTLE = "cizo.settle"
# the audit log's action when the pre-flight finds a company's number at the other operator
REROUTED = "cizo.company.rerouted"

# what the refusal says of a wallet, by the verdict that refused it
_STATE = {
    Verdict.NOT_REGISTERED: "is not a registered wallet",
    Verdict.INACTIVE: "is inactive",
    Verdict.LOCKED: "is locked",
    Verdict.AT_BALANCE_CAP: "is at its balance cap",
}


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


def settle_arguments(company: str, *, no_preflight: bool = False) -> dict[str, Any]:
    """What a `cizo.settle` request signs; skipping the pre-flight is signed too."""
    arguments: dict[str, Any] = {"company": company}
    if no_preflight:
        arguments["no_preflight"] = True
    return arguments


def _owed(session: Session, company: Company) -> int:
    amount = settleable(session, company.code)
    if amount <= 0:
        raise ValidationError(f"nothing is owed to {company.code} beyond what is being paid")
    return amount


@dataclass(frozen=True)
class _Plan:
    maker_id: int
    company: str
    msisdn: str
    operator: str


def _plan(
    factory: sessionmaker[Session],
    request: SignedRequest,
    company_code: str,
    keys: PiiKeys,
    *,
    no_preflight: bool,
    settings: Settings,
) -> _Plan:
    """The maker's request checked and recorded, and the company found owed something
    (one transaction); `no_preflight` refused unless its operator offers no look-up."""
    with factory() as session, session.begin():
        maker = authorize(
            session,
            request,
            command=SETTLE,
            arguments=settle_arguments(company_code, no_preflight=no_preflight),
            roles=[Role.MAKER],
        )
        company = registry.get_company(session, company_code, lock=True)
        _owed(session, company)
        if no_preflight:
            # refused here, before the request is recorded: nothing is spent or built
            check_no_preflight({company.operator}, settings)
        return _Plan(
            maker.id, company.code, registry.company_msisdn(company, keys), company.operator
        )


def wallet_verdict(
    factory: sessionmaker[Session],
    msisdn: str,
    operator: str,
    keys: PiiKeys,
    settings: Settings,
    *,
    no_preflight: bool = False,
    on_progress: Callable[[PreflightProgress], Any] | None = None,
) -> LineVerdict:
    """The pre-flight verdict on a company's merchant wallet: its state only (no name is
    compared), `skipped` at an operator this merchant account has no look-up at.

    Always looked up afresh: one look-up costs nothing next to a settlement, and a cached
    `locked` would go on refusing the company for hours after its wallet was unlocked."""
    fresh = settings.model_copy(update={"preflight_cache_hours": 0})
    (verdict,) = verdicts_of(
        factory,
        [Subject(msisdn, operator, None)],
        keys,
        fresh,
        no_preflight=no_preflight,
        on_progress=on_progress,
    )
    return verdict


def refusal(company: str, msisdn: str, verdict: LineVerdict, amount: int) -> str:
    """Why a settlement is refused when its company's wallet would refuse the money."""
    state = _STATE.get(verdict.verdict, f"was found {verdict.verdict}")
    return (
        f"{company}'s wallet {mask(msisdn)} at {verdict.operator} {state} (pre-flight"
        f" {verdict.verdict}): no settlement is made and the {amount} FCFA stay owed to"
        f" {company}; settle again once the company's wallet can receive them"
    )


class CompanyRegistry:
    """The companies as a re-run of the pre-flight needs them
    (`payouts.preflight.PayeeRegistry`): no name to compare, and the operator a ported
    number moves to."""

    def names(self, session: Session, payees: Sequence[str]) -> Mapping[str, str | None]:
        """A merchant wallet is checked for its state only: no names."""
        return {}

    def reroute(self, session: Session, agent: Agent, payee: str, operator: str) -> None:
        """Pay the company at `operator` from now on (audited: codes and operators only)."""
        company = session.get(Company, payee.removeprefix("company:"), with_for_update=True)
        if company is None or company.operator == operator:
            return
        before = company.operator
        company.operator = operator
        session.flush()
        audit_record(
            session,
            agent,
            REROUTED,
            {"company": company.code, "from": before, "to": operator, "why": "ported"},
        )


def settle(
    factory: sessionmaker[Session],
    request: SignedRequest,
    company_code: str,
    keys: PiiKeys,
    *,
    settings: Settings,
    no_preflight: bool = False,
    on_progress: Callable[[PreflightProgress], Any] | None = None,
    then: Callable[[Session, PayoutBatch], Any] | None = None,
) -> PayoutBatch:
    """`sika cizo settle` (maker): a payout batch paying the company everything it is
    owed, made by the agent who signed `request`.

    The request is checked and recorded first; the company's wallet is looked up (a
    network call, no transaction held); then the batch is written, what is owed counted
    again under the company's lock, and `then` (the maker's submit) runs in that same
    transaction. A wallet that would refuse the money refuses the settlement (see
    `refusal`)."""
    plan = _plan(factory, request, company_code, keys, no_preflight=no_preflight, settings=settings)
    verdict = wallet_verdict(
        factory,
        plan.msisdn,
        plan.operator,
        keys,
        settings,
        no_preflight=no_preflight,
        on_progress=on_progress,
    )
    with factory() as session, session.begin():
        company = registry.get_company(session, plan.company, lock=True)
        amount = _owed(session, company)
        if verdict.verdict in EXCLUDING:
            raise ValidationError(refusal(company.code, plan.msisdn, verdict, amount))
        maker = session.get(Agent, plan.maker_id)
        assert maker is not None
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
        registry.ensure_float(session, verdict.operator)
        spec = LineSpec(
            payee=f"company:{company.code}",
            msisdn=plan.msisdn,
            operator=plan.operator,
            amount=amount,
            # a merchant wallet: its pre-flight checks the status, not a person's name
            name=None,
        )
        batch = create_batch(
            session,
            programme=PROGRAMME,
            scope=f"{_scope_prefix(company.code)}{number}",
            debit_account=registry.company_account(company.code),
            description=f"CIZO {company.code} {number}",
            # the notice is a str.format template: braces in a company name must not reach it
            notice=(
                f"CIZO : Sika a versé {{amount}} à {_plain(company.name)} (règlement n° {number})."
            ),
            lines=[spec],
            maker=maker,
            keys=keys,
            verdicts=[verdict],
        )
        if verdict.operator != spec.operator:
            CompanyRegistry().reroute(session, maker, spec.payee, verdict.operator)
        if then is not None:
            then(session, batch)
        session.expunge(batch)
        return batch
