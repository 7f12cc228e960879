"""`sika cizo`: solar companies, plans, kits, collections, tokens and settlements.

Each command that changes something signs a request with the acting agent's own key
(`--agent` or SIKA_AGENT) and hands it to a service function, which checks it: a maker
registers and collects, the treasurer funds and sets the chèque solaire, a maker or an
auditor counts a statement. `collections check` asks the operators only and runs as the
server, with no agent, as `sika serve` does for each callback.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from cizo import collections, payments, registry, settlement
from cizo.models import CollectionStatus
from core import console
from core.authority import signed_by
from core.crypto import load_keys
from core.db import get_sessionmaker, unit_of_work
from core.errors import ValidationError
from core.settings import load_settings
from payouts import commands as payout_commands
from payouts.batches import preflight_summary
from payouts.funds import top_up_sandbox

app = typer.Typer(
    help="CIZO: pay-as-you-go solar kits and the chèque solaire.", no_args_is_help=True
)
company_app = typer.Typer(help="Solar companies approved for CIZO.", no_args_is_help=True)
plan_app = typer.Typer(help="PAYG plans: deposit, price per day, term.", no_args_is_help=True)
kit_app = typer.Typer(help="Kits sold to households.", no_args_is_help=True)
token_app = typer.Typer(help="OpenPAYGO activation tokens.", no_args_is_help=True)
collections_app = typer.Typer(help="USSD pushes Sika requested.", no_args_is_help=True)
payments_app = typer.Typer(help="Household payments and their confirmation.", no_args_is_help=True)
subsidy_app = typer.Typer(help="The chèque solaire allocation.", no_args_is_help=True)
programme_app = typer.Typer(help="The chèque solaire's settings.", no_args_is_help=True)
app.add_typer(company_app, name="company")
app.add_typer(plan_app, name="plan")
app.add_typer(kit_app, name="kit")
app.add_typer(token_app, name="token")
app.add_typer(collections_app, name="collections")
app.add_typer(payments_app, name="payments")
app.add_typer(subsidy_app, name="subsidy")
app.add_typer(programme_app, name="programme")

_AGENT = typer.Option(
    None,
    "--agent",
    envvar="SIKA_AGENT",
    help="Acting agent; the request is signed with their key (SIKA_KEYS_DIR or SIKA_AGENT_KEY).",
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


@company_app.command("add")
def company_add(
    code: str = typer.Argument(..., help="Short code, e.g. BBOXX."),
    name: str = typer.Option(..., "--name", help="The company's name."),
    msisdn: str = typer.Option(..., "--msisdn", help="The mobile-money number it is paid on."),
    operator: str | None = typer.Option(
        None, "--operator", help="flooz or tmoney, when the number was ported."
    ),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Approve a solar company for CIZO (maker)."""
    keys = load_keys(load_settings())
    fields = {"code": code, "name": name, "msisdn": msisdn, "operator": operator}
    request = signed_by(agent, "cizo.company.add", registry.company_arguments(keys, **fields))
    with unit_of_work() as session:
        company = registry.add_company(session, request, keys, **fields)
        view = registry.company_view(session, company, keys)
    console.emit(view, as_json, "company")


@company_app.command("show")
def company_show(code: str = typer.Argument(...), as_json: bool = _JSON) -> None:
    """One company, with what Sika owes it."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        view = registry.company_view(session, registry.get_company(session, code), keys)
    console.emit(view, as_json, "company")


@plan_app.command("add")
def plan_add(
    code: str = typer.Argument(..., help="Plan code, e.g. BBOXX-S."),
    company: str = typer.Option(..., "--company", help="The company selling it."),
    deposit: int = typer.Option(..., "--deposit", help="Installation, paid before any day."),
    per_day: int = typer.Option(..., "--per-day", help="Francs per day of light."),
    term_days: int = typer.Option(..., "--term-days", help="Days to pay before it is owned."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Add a PAYG plan of a company (maker)."""
    fields = {
        "code": code,
        "company": company,
        "deposit": deposit,
        "per_day": per_day,
        "term_days": term_days,
    }
    request = signed_by(agent, "cizo.plan.add", fields)
    with unit_of_work() as session:
        plan = registry.add_plan(session, request, **fields)
        view = registry.plan_view(plan)
    console.emit(view, as_json, "plan")


@plan_app.command("show")
def plan_show(code: str = typer.Argument(...), as_json: bool = _JSON) -> None:
    """One plan, with its full price."""
    with unit_of_work() as session:
        view = registry.plan_view(registry.get_plan(session, code))
    console.emit(view, as_json, "plan")


@kit_app.command("register")
def kit_register(
    household: str = typer.Option(..., "--household", help="The household's name."),
    msisdn: str = typer.Option(..., "--msisdn", help="The household's mobile-money number."),
    company: str = typer.Option(..., "--company"),
    plan: str = typer.Option(..., "--plan"),
    serial: str = typer.Option(..., "--serial", help="The kit's serial (its merchant reference)."),
    opaygo_key: str = typer.Option(..., "--opaygo-key", help="OpenPAYGO secret, 32 hex."),
    starting_code: str = typer.Option(..., "--starting-code", help="OpenPAYGO starting code."),
    operator: str | None = typer.Option(None, "--operator", help="flooz or tmoney if ported."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Register a kit sold to a household (maker); its secrets are encrypted at rest."""
    keys = load_keys(load_settings())
    fields = {
        "household": household,
        "msisdn": msisdn,
        "company": company,
        "plan": plan,
        "serial": serial,
        "opaygo_key": opaygo_key,
        "starting_code": starting_code,
        "operator": operator,
    }
    request = signed_by(agent, "cizo.kit.register", registry.kit_arguments(keys, **fields))
    with unit_of_work() as session:
        kit = registry.register_kit(session, request, keys, **fields)
        view = registry.kit_details(session, kit, keys)
    console.emit(view, as_json, "kit")


@kit_app.command("show")
def kit_show(serial: str = typer.Argument(...), as_json: bool = _JSON) -> None:
    """A kit: what is paid, the subsidy, what is left, its credit and every token."""
    keys = load_keys(load_settings())
    with unit_of_work() as session:
        view = registry.kit_view(session, registry.get_kit(session, serial), keys)
    if as_json:
        console.print_json(view)
        return
    console.print_record({k: v for k, v in view.items() if k != "tokens"}, "kit")
    console.print_rows(view["tokens"], ["count", "type", "days", "token", "created_at"], "tokens")


@kit_app.command("correct")
def kit_correct(
    serial: str = typer.Argument(...),
    days: int = typer.Option(..., "--days", help="Credit the device should show, 0 to 995."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Issue a SET_TIME token (a correction, maker): no money moves."""
    settings = load_settings()
    keys = load_keys(settings)
    request = signed_by(agent, "cizo.kit.correct", {"serial": serial, "days": days})
    with unit_of_work() as session:
        token, notice = payments.correct_kit(
            session, request, keys, serial=serial, days=days, now=payments.utcnow()
        )
        view = registry.token_view(token)
    view["sms"] = payments.send_notices(settings, [notice])
    console.emit(view, as_json, "correction")


@token_app.command("resend")
def token_resend(
    serial: str = typer.Argument(...), agent: str | None = _AGENT, as_json: bool = _JSON
) -> None:
    """Send the kit's last token again by SMS, without using a new count (maker)."""
    settings = load_settings()
    keys = load_keys(settings)
    request = signed_by(agent, "cizo.token.resend", {"serial": serial})
    with unit_of_work() as session:
        token, notice = payments.resend_token(
            session, request, keys, serial=serial, now=payments.utcnow()
        )
        last = registry.token_view(token)
    last["sms"] = payments.send_notices(settings, [notice])
    console.emit(last, as_json, "token")


@app.command("collect")
def collect(
    serial: str = typer.Argument(...),
    amount: int = typer.Option(..., "--amount", help="Francs to ask the household for."),
    wait: float = typer.Option(15.0, "--wait", help="Seconds to wait for the operator."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Ask the household to pay by USSD push (maker).

    It counts once the operator confirms it."""
    settings = load_settings()
    keys = load_keys(settings)
    request = signed_by(agent, "cizo.collect", {"serial": serial, "amount": amount})
    factory = get_sessionmaker()
    started = collections.start_collection(
        factory, settings, keys, request, serial=serial, amount=amount
    )
    if started.status == CollectionStatus.FAILED:
        raise ValidationError(
            f"the operator refused the push for kit {serial}: {started.detail or 'no reason'}"
        )
    console.err.print(f"push {started.reference} sent; waiting for the household to approve")
    outcome = collections.wait_for_collection(
        factory, settings, keys, started.reference, timeout=wait
    )
    with unit_of_work() as session:
        kit = registry.get_kit(session, serial)
        view = {
            "reference": started.reference,
            "result": "confirmed"
            if outcome.confirmed
            else "failed"
            if outcome.failed
            else "waiting",
            "kit": registry.kit_view(session, kit, keys),
        }
    if as_json:
        console.print_json(view)
    else:
        console.print_record({"reference": view["reference"], "result": view["result"]}, "push")
        console.print_record({k: v for k, v in view["kit"].items() if k != "tokens"}, "kit")
    if outcome.failed:
        raise typer.Exit(1)


@collections_app.command("check")
def collections_check(as_json: bool = _JSON) -> None:
    """Ask the operators again about pushes and merchant payments not yet final.

    A cron job, or after callbacks were lost. It runs as the server, with no agent: a
    payment counts only when the operator confirms it to Sika's own query, exactly as when
    a callback arrives."""
    settings = load_settings()
    keys = load_keys(settings)
    factory = get_sessionmaker()
    outcome = collections.check_open_collections(factory, settings, keys)
    merchant = collections.check_merchant_payments(factory, settings, keys)
    outcome.confirmed += merchant.confirmed
    outcome.unconfirmed += merchant.unconfirmed
    outcome.sms += merchant.sms
    console.emit(outcome.as_dict(), as_json, "collections")


@payments_app.command("confirm")
def payments_confirm(
    provider: str = typer.Option(..., "--provider", help="flooz or tmoney."),
    statement: Path = typer.Option(..., "--statement", help="The operator's daily statement."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Count the CIZO payments an operator statement lists as successful (maker or auditor).

    The request names the statement by its SHA-256."""
    settings = load_settings()
    keys = load_keys(settings)
    try:
        data = statement.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read --statement {statement}: {exc.strerror}") from None
    request = signed_by(
        agent,
        "cizo.payments.confirm",
        {"provider": provider, "statement_sha256": collections.statement_digest(data)},
    )
    outcome = collections.confirm_statement(
        get_sessionmaker(), settings, keys, request, provider=provider, data=data
    )
    console.emit(outcome.as_dict(), as_json, "statement")


@subsidy_app.command("fund")
def subsidy_fund(
    year: int = typer.Option(..., "--year"),
    amount: int = typer.Option(..., "--amount", help="Francs received from the Treasury."),
    operator: str = typer.Option(..., "--operator", help="The float it arrived in."),
    reference: str = typer.Option(..., "--reference", help="The funding's reference."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Book the year's chèque solaire allocation (treasurer).

    Repeating a reference replays. In the sandbox the money is also placed in the
    operator's float there, as the Treasury would place it at the real operator, so the two
    floats keep agreeing."""
    settings = load_settings()
    # before anything, the operator's float above all
    registry.check_funding(year=year, amount=amount, operator=operator, reference=reference)
    fields = {"year": year, "amount": amount, "operator": operator, "reference": reference}
    request = signed_by(agent, "cizo.subsidy.fund", fields)
    top_up = partial(top_up_sandbox, settings.sandbox_url) if settings.sandbox_url else None
    with unit_of_work() as session:
        result = registry.fund_subsidy(session, request, top_up=top_up, **fields)
    console.emit(result, as_json, "subsidy")


@programme_app.command("show")
def programme_show(as_json: bool = _JSON) -> None:
    """The monthly cap and its duration."""
    with unit_of_work() as session:
        row = registry.programme(session)
        view = {"monthly_amount": row.monthly_subsidy_amount, "months": row.subsidy_months}
    console.emit(view, as_json, "programme")


@programme_app.command("set")
def programme_set(
    monthly_amount: int | None = typer.Option(None, "--monthly-amount"),
    months: int | None = typer.Option(None, "--months"),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Change the monthly cap or its duration (treasurer).

    They are the chèque solaire's money rules, so they are the treasurer's, not an admin's."""
    fields = {"monthly_amount": monthly_amount, "months": months}
    request = signed_by(agent, "cizo.programme.set", fields)
    with unit_of_work() as session:
        row = registry.set_programme(session, request, **fields)
        view = {"monthly_amount": row.monthly_subsidy_amount, "months": row.subsidy_months}
    console.emit(view, as_json, "programme")


@app.command("settle")
def settle(
    company: str = typer.Option(..., "--company"),
    no_preflight: bool = typer.Option(
        False,
        "--no-preflight",
        help="Skip the look-up of the company's wallet: only when its operator offers none"
        " (SIKA_LOOKUP_UNAVAILABLE); recorded on the line as `skipped`.",
    ),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Build and sign a payout batch paying the company what it is owed (maker), once the
    pre-flight has looked its wallet up at the operator; refused, the money still owed, if
    the wallet would refuse it (not registered, inactive, locked, at its balance cap)."""
    settings = load_settings()
    keys = load_keys(settings)
    request = signed_by(
        agent, settlement.SETTLE, settlement.settle_arguments(company, no_preflight=no_preflight)
    )
    with payout_commands.preflight_bar(f"{company.upper()} pre-flight") as show:
        batch = settlement.settle(
            get_sessionmaker(),
            request,
            company,
            keys,
            settings=settings,
            no_preflight=no_preflight,
            on_progress=show,
            # the maker's signature on the batch's manifest, in the batch's transaction
            then=lambda session, made: payout_commands.submit(session, made, request.agent),
        )
    with unit_of_work() as session:
        summary = preflight_summary(session, batch.id)
    payout_commands.print_preflight(batch.id, summary)
    view = {
        "batch_id": batch.id,
        "scope": batch.scope,
        "debit_account": batch.debit_account,
        "total": batch.total,
        "status": batch.status,
        "maker": request.agent,
        "preflight": summary if as_json else payout_commands.preflight_text(summary),
    }
    console.emit(view, as_json, "settlement")
    console.err.print(f"a different approver now runs: sika cizo batch approve {view['batch_id']}")


@app.command("report")
def report(
    within_days: int = typer.Option(3, "--within-days", help="What 'about to lock' means."),
    as_json: bool = _JSON,
) -> None:
    """Kits in arrears and kits whose credit ends soon."""
    with unit_of_work() as session:
        data = registry.report(session, payments.utcnow(), within_days=within_days)
    if as_json:
        console.print_json(data)
        return
    console.print_rows(
        data["arrears"], ["serial", "company", "days_late", "arrears", "remaining"], "in arrears"
    )
    console.print_rows(
        data["about_to_lock"],
        ["serial", "company", "expires_at", "hours_left", "remaining"],
        "about to lock",
    )
