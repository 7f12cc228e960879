"""CIZO's registry: the programme settings, solar companies, plans and kits, their ledger
accounts, and the views `sika cizo ... show` and `report` print.

Each change is a signed request checked here (`core.authority.authorize`): a maker
registers companies, plans and kits; the chèque solaire's rules and funding are the
treasurer's. Phone numbers, names and kit secrets travel in a request as one keyed digest
(`personal_digest`), since the audit log keeps a request's arguments readable.

Ledger accounts (docs/architecture.md#chart-of-accounts): `cizo:household:<kit>` (asset,
what the household owes), `cizo:unearned:<company>` (liability, kits sold but not yet
paid), `cizo:company:<company>` (liability, owed to the company), `cizo:subsidy:<year>`
(liability, the chèque solaire allocation), `cizo:refunds` (liability, paid beyond the
price), `float:<operator>` (asset).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cizo import tokens
from cizo.models import (
    CODE_PATTERN,
    COMPANY_MSISDN,
    HOUSEHOLD_NAME,
    KIT_MSISDN,
    OPAYGO_KEY,
    SERIAL_PATTERN,
    STARTING_CODE,
    Company,
    Kit,
    KitStatus,
    Plan,
    Programme,
    Token,
)
from cizo.rules import PlanTerms
from core import clock
from core.audit import canonical_json
from core.authority import SignedRequest, authorize
from core.bounds import MAX_AMOUNT, check_amount, check_count, clean_text
from core.crypto import PiiKeys
from core.errors import LedgerError, NotFoundError, ValidationError
from core.models import Role
from ledger import api as ledger
from ledger.types import AccountKind, AccountSpec, Limit, Transfer, check_transfer_id
from providers.msisdn import Operator, mask, normalise, route

# the chèque solaire as announced in March 2019 (docs/architecture.md#cizo); the
# treasurer may change both
DEFAULT_MONTHLY_SUBSIDY = 2_000
DEFAULT_SUBSIDY_MONTHS = 36
INITIAL_TOKEN_COUNT = 1
REFUNDS_ACCOUNT = "cizo:refunds"
_CODE = re.compile(CODE_PATTERN)
_SERIAL = re.compile(SERIAL_PATTERN)
_MAX_NAME = 200
# add_months must stay within the calendar, and the columns within INTEGER: a century
MAX_MONTHS = 1_200
MAX_TERM_DAYS = 36_500
# who registers what households pay for, and asks them to pay: the field office
FIELD_ROLES = (Role.MAKER,)
# the chèque solaire is money: its rules and its funding are the treasurer's
TREASURY_ROLES = (Role.TREASURER,)


def personal_digest(keys: PiiKeys, command: str, *values: str) -> str:
    """Personal or secret fields as a signed request carries them: one keyed digest (hex).

    The audit log keeps a request's arguments readable, so phone numbers, names and kit
    secrets never travel in clear; the service recomputes the digest from the values it
    acts on, so a field changed after signing no longer matches the signature.
    """
    return keys.blind_index.digest(canonical_json(list(values)).decode("utf-8"), command).hex()


# --- accounts ------------------------------------------------------------------------------


def float_account(operator: str) -> str:
    """The e-money Sika holds at `operator`."""
    return f"float:{operator}"


def household_account(kit_id: int) -> str:
    """What the household of kit `kit_id` still owes."""
    return f"cizo:household:{kit_id}"


def unearned_account(company: str) -> str:
    """Price of the company's kits not yet paid by anyone."""
    return f"cizo:unearned:{company.lower()}"


def company_account(company: str) -> str:
    """What Sika owes the company (paid by settlement)."""
    return f"cizo:company:{company.lower()}"


def subsidy_account(year: int) -> str:
    """The year's chèque solaire allocation."""
    return f"cizo:subsidy:{year}"


def ensure_float(session: Session, operator: str) -> None:
    """`float:<operator>` exists, with the spec every programme gives it."""
    ledger.create_accounts(
        session, [AccountSpec(float_account(operator), AccountKind.ASSET, Limit.CREDITS)]
    )


def check_ok(outcomes: list[Any], what: str) -> None:
    for outcome in outcomes:
        if not outcome.ok:
            raise LedgerError(f"{what}: transfer {outcome.id} refused: {outcome.result.sentence}")


def available(session: Session, code: str) -> int:
    """Credits not yet debited (pending debits count) of a liability; 0 when it is absent."""
    account = ledger.get_accounts(session, [code]).get(code)
    if account is None:
        return 0
    return account.credits_posted - account.debits_posted - account.debits_pending


# --- programme settings ----------------------------------------------------------------------


def programme(session: Session) -> Programme:
    """The chèque solaire settings (the migration writes the default row)."""
    row = session.get(Programme, 1)
    if row is None:
        raise NotFoundError("the CIZO programme settings are missing: run `sika db upgrade`")
    return row


def set_programme(
    session: Session,
    request: SignedRequest,
    *,
    monthly_amount: int | None = None,
    months: int | None = None,
) -> Programme:
    """`sika cizo programme set`: change the monthly subsidy cap or its duration (treasurer)."""
    if monthly_amount is not None:
        check_amount(monthly_amount, "--monthly-amount", allow_zero=True)
    if months is not None:
        check_count(months, "--months", low=0, high=MAX_MONTHS)
    authorize(
        session,
        request,
        command="cizo.programme.set",
        arguments={"monthly_amount": monthly_amount, "months": months},
        roles=TREASURY_ROLES,
    )
    row = session.get(Programme, 1, with_for_update=True)
    if row is None:
        raise NotFoundError("the CIZO programme settings are missing: run `sika db upgrade`")
    if monthly_amount is not None:
        row.monthly_subsidy_amount = monthly_amount
    if months is not None:
        row.subsidy_months = months
    row.updated_at = clock.now()
    session.flush()
    return row


def subsidy_funding_id(year: int, reference: str) -> str:
    """The ledger transfer recording one funding of a year's allocation."""
    return f"cizo.fund.{year}.{reference}"


def check_funding(*, year: int, amount: int, operator: str, reference: str) -> None:
    """Refuse a funding the ledger would refuse, before the money reaches the operator."""
    check_amount(amount, "--amount")
    if not 2017 <= year <= 2100:
        raise ValidationError("--year must be a year from 2017 (CIZO's launch) to 2100")
    try:
        Operator(operator)
    except ValueError:
        raise ValidationError("--operator must be flooz or tmoney") from None
    check_transfer_id(subsidy_funding_id(year, reference))


def fund_subsidy(
    session: Session,
    request: SignedRequest,
    *,
    year: int,
    amount: int,
    operator: str,
    reference: str,
    top_up: Callable[[str, int], object] | None = None,
) -> dict[str, Any]:
    """`sika cizo subsidy fund`: book the Treasury's allocation for `year`, received into
    `float:<operator>` (treasurer).

    `reference` names the funding (its transfer id), so repeating it is a replay. `top_up`
    (the sandbox's float, in a demo) is called once the request is accepted and only for
    a funding not booked before, so the operator's float and the ledger's keep agreeing.
    """
    check_funding(year=year, amount=amount, operator=operator, reference=reference)
    authorize(
        session,
        request,
        command="cizo.subsidy.fund",
        arguments={"year": year, "amount": amount, "operator": operator, "reference": reference},
        roles=TREASURY_ROLES,
    )
    operator = Operator(operator).value
    transfer_id = subsidy_funding_id(year, reference)
    if top_up is not None and ledger.get_transfer(session, transfer_id) is None:
        top_up(operator, amount)
    ensure_float(session, operator)
    code = subsidy_account(year)
    ledger.create_accounts(session, [AccountSpec(code, AccountKind.LIABILITY, Limit.DEBITS)])
    outcome = ledger.create_transfer(
        session, Transfer.single(transfer_id, float_account(operator), code, amount)
    )
    check_ok([outcome], "subsidy funding")
    return {
        "year": year,
        "account": code,
        "transfer": transfer_id,
        "result": outcome.result.value,
        "available": available(session, code),
    }


# --- companies and plans ----------------------------------------------------------------------


def normalise_code(code: str, what: str) -> str:
    """A company or plan code as stored: upper case, 2-32 of `A-Z 0-9 _ -`."""
    cleaned = (code or "").strip().upper()
    if not _CODE.match(cleaned):
        raise ValidationError(f"{what} must be 2 to 32 letters, digits, '_' or '-'")
    return cleaned


def normalise_serial(serial: str) -> str:
    """A kit serial as stored: upper case, 3-40 of `A-Z 0-9 -`."""
    cleaned = (serial or "").strip().upper()
    if not _SERIAL.match(cleaned):
        raise ValidationError("the kit serial must be 3 to 40 letters, digits or '-'")
    return cleaned


def _name(value: str, what: str) -> str:
    return clean_text(value or "", what, max_chars=_MAX_NAME)


def company_arguments(
    keys: PiiKeys, *, code: str, name: str, msisdn: str, operator: str | None = None
) -> dict[str, Any]:
    """What `sika cizo company add` signs, and what `add_company` checks: the number as a
    keyed digest of its normalised form."""
    return {
        "code": code,
        "name": name,
        "msisdn": personal_digest(keys, "cizo.company.add", normalise(msisdn)),
        "operator": operator,
    }


def add_company(
    session: Session,
    request: SignedRequest,
    keys: PiiKeys,
    *,
    code: str,
    name: str,
    msisdn: str,
    operator: str | None = None,
) -> Company:
    """`sika cizo company add`: register a solar company and open its ledger accounts
    (maker): the number given is where its settlements will be paid."""
    arguments = company_arguments(keys, code=code, name=name, msisdn=msisdn, operator=operator)
    code, number = normalise_code(code, "the company code"), normalise(msisdn)
    shown, routed = _name(name, "--name"), route(number, operator).value
    agent = authorize(
        session, request, command="cizo.company.add", arguments=arguments, roles=FIELD_ROLES
    )
    if session.get(Company, code) is not None:
        raise ValidationError(f"a company with the code {code} already exists")
    company = Company(
        code=code,
        name=shown,
        msisdn_enc=keys.keyring.encrypt(number, COMPANY_MSISDN),
        operator=routed,
        created_by=agent.id,
    )
    session.add(company)
    session.flush()
    ledger.create_accounts(
        session,
        [
            AccountSpec(unearned_account(code), AccountKind.LIABILITY, Limit.DEBITS),
            # DEBITS: a settlement can never pay the company more than it is owed
            AccountSpec(company_account(code), AccountKind.LIABILITY, Limit.DEBITS),
        ],
    )
    return company


def get_company(session: Session, code: str, *, lock: bool = False) -> Company:
    """The company with this code, or `NotFoundError`."""
    code = (code or "").strip().upper()
    company = session.get(Company, code, with_for_update=lock)
    if company is None:
        raise NotFoundError(
            f"no solar company with the code {code!r}: add it with `sika cizo company add`"
        )
    return company


def company_msisdn(company: Company, keys: PiiKeys) -> str:
    """The company's number, decrypted for paying it."""
    return keys.keyring.decrypt(company.msisdn_enc, COMPANY_MSISDN)


def company_view(session: Session, company: Company, keys: PiiKeys) -> dict[str, Any]:
    """The company for a screen, number masked, with what Sika owes it."""
    return {
        "code": company.code,
        "name": company.name,
        "msisdn": mask(company_msisdn(company, keys)),
        "operator": company.operator,
        "owed": available(session, company_account(company.code)),
        "unearned": available(session, unearned_account(company.code)),
    }


def add_plan(
    session: Session,
    request: SignedRequest,
    *,
    code: str,
    company: str,
    deposit: int,
    per_day: int,
    term_days: int,
) -> Plan:
    """`sika cizo plan add`: register a PAYG plan of a company (maker)."""
    arguments = {
        "code": code,
        "company": company,
        "deposit": deposit,
        "per_day": per_day,
        "term_days": term_days,
    }
    code = normalise_code(code, "the plan code")
    check_amount(deposit, "--deposit", allow_zero=True)
    check_amount(per_day, "--per-day")
    check_count(term_days, "--term-days", low=1, high=MAX_TERM_DAYS)
    price = PlanTerms(deposit, per_day, term_days).price
    if price > MAX_AMOUNT:
        raise ValidationError(
            f"the plan's price (--deposit + --per-day x --term-days) is {price:,} francs,"
            f" more than {MAX_AMOUNT:,} (10^15)"
        )
    agent = authorize(
        session, request, command="cizo.plan.add", arguments=arguments, roles=FIELD_ROLES
    )
    owner = get_company(session, company)
    if session.get(Plan, code) is not None:
        raise ValidationError(f"a plan with the code {code} already exists")
    plan = Plan(
        code=code,
        company=owner.code,
        deposit_amount=deposit,
        per_day_amount=per_day,
        term_days=term_days,
        created_by=agent.id,
    )
    session.add(plan)
    session.flush()
    return plan


def get_plan(session: Session, code: str) -> Plan:
    """The plan with this code, or `NotFoundError`."""
    code = (code or "").strip().upper()
    plan = session.get(Plan, code)
    if plan is None:
        raise NotFoundError(f"no plan with the code {code!r}: add it with `sika cizo plan add`")
    return plan


def plan_view(plan: Plan) -> dict[str, Any]:
    """The plan for a screen, with its full price."""
    return {
        "code": plan.code,
        "company": plan.company,
        "deposit": plan.deposit_amount,
        "per_day": plan.per_day_amount,
        "term_days": plan.term_days,
        "price": terms_of(plan).price,
    }


def terms_of(plan: Plan) -> PlanTerms:
    """The plan's arithmetic."""
    return PlanTerms(plan.deposit_amount, plan.per_day_amount, plan.term_days)


# --- kits ------------------------------------------------------------------------------------


def kit_arguments(
    keys: PiiKeys,
    *,
    household: str,
    msisdn: str,
    company: str,
    plan: str,
    serial: str,
    opaygo_key: str,
    starting_code: str,
    operator: str | None = None,
) -> dict[str, Any]:
    """What `sika cizo kit register` signs, and what `register_kit` checks: the household's
    name and number and the kit's OpenPAYGO secrets as one keyed digest."""
    return {
        "serial": serial,
        "company": company,
        "plan": plan,
        "operator": operator,
        "personal": personal_digest(
            keys, "cizo.kit.register", household, normalise(msisdn), opaygo_key, starting_code
        ),
    }


def register_kit(
    session: Session,
    request: SignedRequest,
    keys: PiiKeys,
    *,
    household: str,
    msisdn: str,
    company: str,
    plan: str,
    serial: str,
    opaygo_key: str,
    starting_code: str,
    operator: str | None = None,
) -> Kit:
    """`sika cizo kit register`: a kit sold to a household, which now owes the plan's
    price (maker)."""
    arguments = kit_arguments(
        keys,
        household=household,
        msisdn=msisdn,
        company=company,
        plan=plan,
        serial=serial,
        opaygo_key=opaygo_key,
        starting_code=starting_code,
        operator=operator,
    )
    serial = normalise_serial(serial)
    key = tokens.check_key(opaygo_key)
    code = tokens.check_starting_code(starting_code)
    number = normalise(msisdn)
    shown, routed = _name(household, "--household"), route(number, operator).value
    agent = authorize(
        session, request, command="cizo.kit.register", arguments=arguments, roles=FIELD_ROLES
    )
    owner = get_company(session, company)
    chosen = get_plan(session, plan)
    if chosen.company != owner.code:
        raise ValidationError(f"--plan {chosen.code} belongs to {chosen.company}, not {owner.code}")
    ring = keys.keyring
    kit = Kit(
        serial=serial,
        company=owner.code,
        plan=chosen.code,
        household_name_enc=ring.encrypt(shown, HOUSEHOLD_NAME),
        msisdn_enc=ring.encrypt(number, KIT_MSISDN),
        msisdn_bidx=keys.blind_index.digest(number, KIT_MSISDN),
        operator=routed,
        opaygo_key_enc=ring.encrypt(key, OPAYGO_KEY),
        starting_code_enc=ring.encrypt(code, STARTING_CODE),
        price_amount=terms_of(chosen).price,
        status=KitStatus.AWAITING_DEPOSIT.value,
        paid_amount=0,
        subsidy_amount=0,
        days_credited=0,
        token_count=INITIAL_TOKEN_COUNT,
        created_by=agent.id,
    )
    session.add(kit)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ValidationError(f"a kit with the serial {serial} is already registered") from None
    household_code = household_account(kit.id)
    ledger.create_accounts(
        session,
        [
            # CREDITS: payments and subsidies can never exceed what the household owes
            AccountSpec(household_code, AccountKind.ASSET, Limit.CREDITS),
        ],
    )
    outcome = ledger.create_transfer(
        session,
        Transfer.single(
            f"cizo.kit.{kit.id}.sale",
            household_code,
            unearned_account(owner.code),
            kit.price_amount,
        ),
    )
    check_ok([outcome], "kit registration")
    return kit


def get_kit(session: Session, serial: str, *, lock: bool = False) -> Kit:
    """The kit with this serial, or `NotFoundError`."""
    cleaned = (serial or "").strip().upper()
    query = select(Kit).where(Kit.serial == cleaned)
    if lock:
        query = query.with_for_update()
    kit = session.scalar(query)
    if kit is None:
        raise NotFoundError(f"no kit with the serial {cleaned!r}")
    return kit


def find_kit(session: Session, serial: str) -> Kit | None:
    """The kit whose serial is exactly `serial` (a merchant reference), if any."""
    return session.scalar(select(Kit).where(Kit.serial == serial))


def kit_msisdn(kit: Kit, keys: PiiKeys) -> str:
    """The household's number, decrypted for a push or an SMS."""
    return keys.keyring.decrypt(kit.msisdn_enc, KIT_MSISDN)


def kit_secrets(kit: Kit, keys: PiiKeys) -> tuple[str, str]:
    """(OpenPAYGO key, starting code), decrypted to generate a token."""
    ring = keys.keyring
    return ring.decrypt(kit.opaygo_key_enc, OPAYGO_KEY), ring.decrypt(
        kit.starting_code_enc, STARTING_CODE
    )


def kit_tokens(session: Session, kit: Kit) -> list[Token]:
    """Every token of the kit, in count order."""
    return list(session.scalars(select(Token).where(Token.kit_id == kit.id).order_by(Token.count)))


def token_view(token: Token) -> dict[str, Any]:
    """A token for a screen."""
    return {
        "count": token.count,
        "type": token.kind,
        "days": token.days,
        "token": token.token,
        "created_at": token.created_at.isoformat() if token.created_at else None,
    }


def kit_view(session: Session, kit: Kit, keys: PiiKeys) -> dict[str, Any]:
    """The `sika cizo kit show --json` shape: a fixed set of keys that scripts rely on."""
    return {
        "serial": kit.serial,
        "status": kit.status,
        "paid": kit.paid_amount,
        "subsidy": kit.subsidy_amount,
        "remaining": kit.price_amount - kit.paid_amount - kit.subsidy_amount,
        "days_credited": kit.days_credited,
        "expires_at": kit.expires_at.isoformat() if kit.expires_at else None,
        "token_count": kit.token_count,
        "tokens": [token_view(token) for token in kit_tokens(session, kit)],
    }


def kit_details(session: Session, kit: Kit, keys: PiiKeys) -> dict[str, Any]:
    """The kit for a registration screen: who sells it, on which plan, to which number."""
    view = kit_view(session, kit, keys)
    view.update(
        {
            "company": kit.company,
            "plan": kit.plan,
            "msisdn": mask(kit_msisdn(kit, keys)),
            "price": kit.price_amount,
        }
    )
    return view


def report(session: Session, now: datetime, *, within_days: int = 3) -> dict[str, Any]:
    """Kits in arrears (credit run out, plan not paid) and kits whose credit ends soon."""
    if within_days < 0:
        raise ValidationError("--within-days must be 0 or more")
    plans = {plan.code: plan for plan in session.scalars(select(Plan))}
    kits = session.scalars(
        select(Kit).where(Kit.status != KitStatus.UNLOCKED.value).order_by(Kit.expires_at, Kit.id)
    ).all()
    arrears: list[dict[str, Any]] = []
    soon: list[dict[str, Any]] = []
    horizon = now + timedelta(days=within_days)
    for kit in kits:
        remaining = kit.price_amount - kit.paid_amount - kit.subsidy_amount
        row: dict[str, Any] = {
            "serial": kit.serial,
            "company": kit.company,
            "status": kit.status,
            "remaining": remaining,
            "expires_at": kit.expires_at.isoformat() if kit.expires_at else None,
        }
        if kit.expires_at is None or kit.expires_at <= now:
            # a day not paid is a day the kit stays dark: arrears in days and francs
            # created_at is the database's stamp, on the wall clock
            registered = clock.sika_time(kit.created_at) if kit.created_at else None
            since = kit.expires_at or registered or now
            days_late = max((now - since).days, 0)
            row["days_late"] = days_late
            row["arrears"] = min(days_late * plans[kit.plan].per_day_amount, remaining)
            arrears.append(row)
        elif kit.expires_at <= horizon:
            row["hours_left"] = int((kit.expires_at - now).total_seconds() // 3600)
            soon.append(row)
    return {"at": now.isoformat(), "arrears": arrears, "about_to_lock": soon}
