"""Counting a confirmed payment: the ledger transfers, the chèque solaire, the days of
credit and the OpenPAYGO tokens they buy; corrections and resent tokens (each a maker's
signed request); and the token SMS.

Money flows (ids derived from the operator's reference, so a replay answers `exists`):
  payment P     debit float:<op>            credit cizo:household:<kit>   applied part
                debit float:<op>            credit cizo:refunds           paid beyond the price
                debit cizo:unearned:<co>    credit cizo:company:<co>      applied part earned
  subsidy S     debit cizo:subsidy:<year>   credit cizo:household:<kit>
                debit cizo:unearned:<co>    credit cizo:company:<co>
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cizo import registry, tokens
from cizo.models import (
    Kit,
    KitStatus,
    Payment,
    PaymentStatus,
    Token,
    TokenKind,
)
from cizo.rules import month_bounds, split_payment
from core import clock
from core.authority import SignedRequest, authorize
from core.crypto import PiiKeys
from core.errors import ValidationError
from core.logging import get_logger
from core.settings import Settings
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Limit, Transfer
from providers.msisdn import mask
from providers.sms import SmsClient

log = get_logger(__name__)


@dataclass(frozen=True)
class Notice:
    """An SMS to send once the transaction that decided it has committed."""

    msisdn: str
    message: str
    reference: str


def _subsidy_this_month(session: Session, kit: Kit, paid_at: datetime) -> int:
    start, end = month_bounds(paid_at)
    total = session.scalar(
        select(func.coalesce(func.sum(Payment.subsidy_amount), 0)).where(
            Payment.kit_id == kit.id,
            Payment.status == PaymentStatus.CONFIRMED.value,
            Payment.paid_at >= start,
            Payment.paid_at < end,
        )
    )
    return int(total or 0)


def _store_tokens(
    session: Session, kit: Kit, issued: list[tokens.IssuedToken], payment_id: int | None
) -> list[Token]:
    rows = [
        Token(
            kit_id=kit.id,
            count=token.count,
            kind=token.kind.value,
            days=token.days,
            token=token.token,
            payment_id=payment_id,
        )
        for token in issued
    ]
    session.add_all(rows)
    if issued:
        kit.token_count = issued[-1].count
    session.flush()
    return rows


def apply_payment(
    session: Session, payment: Payment, keys: PiiKeys, *, now: datetime
) -> list[Notice]:
    """Count an unconfirmed payment: split it, move the money, credit days, issue tokens.

    The caller holds the payment row; the kit row is locked here so two payments of one
    kit are counted one after the other. Returns the SMS to send after commit.
    """
    if payment.status == PaymentStatus.CONFIRMED:
        return []
    kit = session.scalar(select(Kit).where(Kit.id == payment.kit_id).with_for_update())
    assert kit is not None
    plan = registry.get_plan(session, kit.plan)
    terms = registry.terms_of(plan)
    settings = registry.programme(session)
    year = payment.paid_at.year
    allocation = registry.subsidy_account(year)
    split = split_payment(
        terms,
        counted=kit.paid_amount + kit.subsidy_amount,
        amount=payment.amount,
        activated_at=kit.activated_at,
        paid_at=payment.paid_at,
        monthly_subsidy=settings.monthly_subsidy_amount,
        subsidy_months=settings.subsidy_months,
        subsidy_this_month=_subsidy_this_month(session, kit, payment.paid_at),
        allocation_left=registry.available(session, allocation),
    )
    _book(session, kit, payment, split.applied, split.excess, split.subsidy, allocation)
    kit.paid_amount += split.applied
    kit.subsidy_amount += split.subsidy
    kit.days_credited += split.days
    if split.activates:
        kit.activated_at = payment.paid_at
        kit.status = KitStatus.ACTIVE.value
    key, starting_code = registry.kit_secrets(kit, keys)
    issued: list[tokens.IssuedToken] = []
    if split.completes and kit.status != KitStatus.UNLOCKED:
        issued = [tokens.issue(key, starting_code, kit.token_count, TokenKind.DISABLE_PAYG)]
        kit.status = KitStatus.UNLOCKED.value
        kit.unlocked_at = now
        kit.expires_at = None
    elif split.days:
        issued = tokens.add_time(key, starting_code, kit.token_count, split.days)
        # OpenPAYGO ADD_TIME adds to what is left on the device, or starts now if it ran out
        kit.expires_at = max(kit.expires_at or now, now) + timedelta(days=split.days)
    _store_tokens(session, kit, issued, payment.id)
    payment.applied_amount = split.applied
    payment.excess_amount = split.excess
    payment.subsidy_amount = split.subsidy
    payment.days = split.days
    payment.status = PaymentStatus.CONFIRMED.value
    payment.confirmed_at = now
    session.flush()
    log.info(
        "cizo.payment.confirmed",
        kit=kit.serial,
        provider=payment.provider,
        reference=payment.operator_reference,
        amount=payment.amount,
        subsidy=split.subsidy,
        days=split.days,
        tokens=len(issued),
    )
    remaining = kit.price_amount - kit.paid_amount - kit.subsidy_amount
    msisdn = registry.kit_msisdn(kit, keys)
    notices: list[Notice] = []
    if not issued:
        message = tokens.token_sms(
            kit.serial, None, amount=payment.amount, subsidy=split.subsidy, remaining=remaining
        )
        notices.append(Notice(msisdn, message, f"cizo.p.{payment.id}"))
    for token in issued:
        message = tokens.token_sms(
            kit.serial, token, amount=payment.amount, subsidy=split.subsidy, remaining=remaining
        )
        notices.append(Notice(msisdn, message, f"cizo.t.{kit.id}.{token.count}"))
    if split.excess:
        log.warning("cizo.payment.excess", kit=kit.serial, excess=split.excess, msisdn=mask(msisdn))
    return notices


def _book(
    session: Session,
    kit: Kit,
    payment: Payment,
    applied: int,
    excess: int,
    subsidy: int,
    allocation: str,
) -> None:
    """The payment's and the subsidy's transfers, all in the caller's transaction."""
    registry.ensure_float(session, payment.provider)
    base = f"cizo.pay.{payment.provider}.{payment.operator_reference}"
    household = registry.household_account(kit.id)
    unearned = registry.unearned_account(kit.company)
    company = registry.company_account(kit.company)
    float_code = registry.float_account(payment.provider)
    transfers: list[Transfer] = []
    if applied:
        transfers.append(Transfer.single(base, float_code, household, applied))
        transfers.append(Transfer.single(f"{base}.earned", unearned, company, applied))
    if excess:
        ledger.create_accounts(
            session, [AccountSpec(registry.REFUNDS_ACCOUNT, AccountKind.LIABILITY, Limit.DEBITS)]
        )
        transfers.append(
            Transfer.single(f"{base}.excess", float_code, registry.REFUNDS_ACCOUNT, excess)
        )
    if subsidy:
        transfers.append(Transfer.single(f"{base}.subsidy", allocation, household, subsidy))
        transfers.append(Transfer.single(f"{base}.subsidy.earned", unearned, company, subsidy))
    registry.check_ok(ledger.create_transfers(session, transfers), f"payment {payment.id}")


def correct_kit(
    session: Session,
    request: SignedRequest,
    keys: PiiKeys,
    *,
    serial: str,
    days: int,
    now: datetime,
) -> tuple[Token, Notice]:
    """`sika cizo kit correct` (maker): a SET_TIME token, so the device's credit becomes
    exactly `days` from now.

    A correction moves no money and does not change the days the household has paid for.
    """
    tokens.check_days(days)
    authorize(
        session,
        request,
        command="cizo.kit.correct",
        arguments={"serial": serial, "days": days},
        roles=registry.FIELD_ROLES,
    )
    kit = registry.get_kit(session, serial, lock=True)
    if kit.status == KitStatus.UNLOCKED:
        raise ValidationError(f"kit {kit.serial} is paid off and unlocked: nothing to correct")
    key, starting_code = registry.kit_secrets(kit, keys)
    issued = tokens.issue(key, starting_code, kit.token_count, TokenKind.SET_TIME, days)
    [row] = _store_tokens(session, kit, [issued], None)
    kit.expires_at = now + timedelta(days=days)
    message = f"CIZO kit {kit.serial} : {tokens.token_line(issued)}"
    notice = Notice(registry.kit_msisdn(kit, keys), message, f"cizo.t.{kit.id}.{issued.count}")
    return row, notice


def resend_token(
    session: Session, request: SignedRequest, keys: PiiKeys, *, serial: str, now: datetime
) -> tuple[Token, Notice]:
    """`sika cizo token resend` (maker): the kit's last token and the SMS carrying it
    again, with no new count used."""
    authorize(
        session,
        request,
        command="cizo.token.resend",
        arguments={"serial": serial},
        roles=registry.FIELD_ROLES,
    )
    kit = registry.get_kit(session, serial)
    rows = registry.kit_tokens(session, kit)
    if not rows:
        raise ValidationError(f"kit {kit.serial} has no token yet: nothing to resend")
    last = rows[-1]
    issued = tokens.IssuedToken(last.count, TokenKind(last.kind), last.days, last.token)
    message = f"CIZO kit {kit.serial} : {tokens.token_line(issued)}"
    # a new SMS reference: a gateway may drop a message that repeats an earlier reference
    reference = f"cizo.t.{kit.id}.{last.count}.r{int(now.timestamp())}"
    return last, Notice(registry.kit_msisdn(kit, keys), message, reference)


def send_notices(settings: Settings, notices: list[Notice]) -> list[dict[str, Any]]:
    """Send each SMS; a failure is logged and reported, never raised (an SMS is no money)."""
    if not notices:
        return []
    client = SmsClient.from_settings(settings)
    results: list[dict[str, Any]] = []
    try:
        for notice in notices:
            result = client.send(notice.msisdn, notice.message, notice.reference)
            results.append({"reference": notice.reference, "outcome": result.outcome.value})
    finally:
        client.close()
    return results


def utcnow() -> datetime:
    """The current time on Sika's clock (core.clock), UTC (Lomé's time zone)."""
    return clock.now()
