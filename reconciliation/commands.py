"""`sika reconcile` and `sika scheduler`: nightly matching, exceptions and signed reports.

`run`, `resolve` and `fees` sign a request with the acting agent's own key (`--agent` or
SIKA_AGENT), as does `approve`, whose request names the action it approves. The services
check them. `sika scheduler` signs nothing: it runs as the server, on what the operators
say (reconciliation.runs).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from core import console
from core.authority import signed_by
from core.broker import get_broker, is_in_process, running_worker
from core.db import get_sessionmaker, unit_of_work
from core.errors import FindingsError, ValidationError
from core.settings import load_settings
from ledger.seals import load_ledger_key
from reconciliation import fees, reports, resolutions, scheduler, service
from reconciliation.runs import run_arguments, run_day

app = typer.Typer(
    help="Reconciliation of operator statements against the ledger.", no_args_is_help=True
)

_AGENT = typer.Option(
    None,
    "--agent",
    envvar="SIKA_AGENT",
    help="Acting agent; the request is signed with their key (SIKA_KEYS_DIR or SIKA_AGENT_KEY).",
)
JSON = typer.Option(False, "--json", help="Print JSON.")
PROVIDERS = ("flooz", "tmoney")


def _day(value: str, option: str = "--date") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{option} must be a date as YYYY-MM-DD, not {value!r}") from None


def _moment(value: str, option: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{option} must be a time as YYYY-MM-DDTHH:MM[:SS], not {value!r}"
        ) from None
    # Lomé time is UTC all year round
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _provider(value: str) -> str:
    provider = value.strip().lower()
    if provider not in PROVIDERS:
        raise ValidationError(f"--provider must be one of {', '.join(PROVIDERS)}, not {value!r}")
    return provider


@app.command("run")
def run_command(
    provider: str = typer.Option(..., "--provider", help="flooz or tmoney."),
    date: str = typer.Option(..., "--date", help="The statement's day, YYYY-MM-DD (Lomé)."),
    statement: Path | None = typer.Option(
        None, "--statement", help="The operator's statement file (default: fetch it)."
    ),
    closing_float: int | None = typer.Option(
        None, "--closing-float", help="The operator's closing float in FCFA (default: ask it)."
    ),
    cutoff: str | None = typer.Option(
        None,
        "--cutoff",
        help="Time (ISO 8601, UTC when naive) up to which the statement is complete:"
        " payouts sent before it must be listed (default: ten minutes ago).",
    ),
    agent: str | None = _AGENT,
    as_json: bool = JSON,
) -> None:
    """Match a day's statement against the ledger (auditor); exit 3 while breaks remain.

    The request names the statement by its SHA-256 (none: fetched from the operator)."""
    settings = load_settings()
    chosen, day = _provider(provider), _day(date)
    moment = _moment(cutoff, "--cutoff") if cutoff else None
    data = service.read_statement_file(statement) if statement is not None else None
    fields = {"statement": data, "closing_float": closing_float, "cutoff": moment}
    request = signed_by(agent, "reconcile.run", run_arguments(chosen, day, **fields))
    summary = run_day(
        get_sessionmaker(),
        settings,
        request,
        chosen,
        day,
        source=str(statement) if statement is not None else None,
        **fields,
    )
    data = summary.as_dict()
    if as_json:
        console.print_json(data)
    else:
        console.print_rows(
            [
                {"category": c, "lines": n, "francs": summary.amounts[c]}
                for c, n in summary.counts.items()
            ],
            ["category", "lines", "francs"],
            title=f"{summary.provider} {summary.day.isoformat()} (run {summary.run_id})",
        )
        console.print_record(
            {
                "float (ledger)": summary.float_ledger,
                "float (operator)": summary.float_provider,
                "difference": summary.float_difference,
                "auto-resolved": summary.auto_resolved,
                "open exceptions": summary.open_exceptions,
                **{f"report ({k})": v for k, v in summary.report.items()},
            }
        )
    if summary.open_exceptions:
        raise typer.Exit(FindingsError.exit_code)


@app.command("exceptions")
def exceptions_command(
    provider: str | None = typer.Option(None, "--provider", help="Only this operator."),
    as_json: bool = JSON,
) -> None:
    """List the open exceptions (and those awaiting a second agent's approval)."""
    with unit_of_work() as session:
        rows = reports.open_exceptions(session, _provider(provider) if provider else None)
    if as_json:
        console.print_json(rows)
    else:
        console.print_rows(
            rows,
            ["id", "provider", "day", "category", "status", "amount", "action", "detail"],
            title="open exceptions",
        )


@app.command("resolve")
def resolve_command(
    exception_id: int = typer.Argument(..., help="The exception's id."),
    action: str = typer.Option(
        ..., "--action", help="acknowledge, post, void, book_fee or to_suspense."
    ),
    note: str = typer.Option(..., "--note", help="Why (kept in the audit log)."),
    agent: str | None = _AGENT,
    as_json: bool = JSON,
) -> None:
    """Resolve an exception (auditor); one that moves money waits for a second agent."""
    chosen = resolutions.parse_action(action)
    request = signed_by(
        agent,
        "reconcile.resolve",
        {"exception_id": exception_id, "action": chosen.value, "note": note},
    )
    with unit_of_work() as session:
        exc = resolutions.resolve(session, request, exception_id, chosen, note)
        data = {"exception": exc.id, "action": exc.action, "status": exc.status}
    console.emit(data, as_json, "resolution")


@app.command("approve")
def approve_command(
    exception_id: int = typer.Argument(..., help="The exception whose resolution to apply."),
    agent: str | None = _AGENT,
    as_json: bool = JSON,
) -> None:
    """Approve and apply a resolution another agent proposed (auditor or approver).

    The request names the action approved; its proposer never approves it."""
    with unit_of_work() as session:
        arguments = resolutions.approval_arguments(session, exception_id)
    request = signed_by(agent, "reconcile.approve", arguments)
    with unit_of_work() as session:
        exc = resolutions.approve(session, request, exception_id)
        data = {"exception": exc.id, "action": exc.action, "status": exc.status}
    console.emit(data, as_json, "approval")


@app.command("fees")
def fees_command(
    provider: str = typer.Option(..., "--provider", help="flooz or tmoney."),
    fixed: int = typer.Option(0, "--fixed", help="Fixed francs per payout."),
    bps: int = typer.Option(0, "--bps", help="Basis points of the amount (1 % = 100)."),
    valid_from: str = typer.Option(..., "--from", help="First day it applies, YYYY-MM-DD."),
    agent: str | None = _AGENT,
    as_json: bool = JSON,
) -> None:
    """Record an operator's payout fee grid (auditor or treasurer).

    Statement fees are checked against it, and those that match are booked."""
    chosen, day = _provider(provider), _day(valid_from, "--from")
    request = signed_by(
        agent,
        "reconcile.fees",
        {"provider": chosen, "fixed": fixed, "bps": bps, "from": day.isoformat()},
    )
    with unit_of_work() as session:
        fees.record_fee_rule(
            session, request, provider=chosen, fixed=fixed, bps=bps, valid_from=day
        )
    data = {"provider": chosen, "from": day.isoformat(), "fixed": fixed, "bps": bps}
    console.emit(data, as_json, "fee rule")


@app.command("verify-report")
def verify_report_command(
    file: Path = typer.Argument(..., help="A report file (its .sig sits beside it)."),
    as_json: bool = JSON,
) -> None:
    """Say whether a report is intact; exit 3 when it is not."""
    public = load_ledger_key(load_settings()).public_key()
    ok, why = reports.verify_file(file, public)
    console.emit({"file": str(file), "intact": ok, "detail": why}, as_json, "report")
    if not ok:
        raise typer.Exit(FindingsError.exit_code)


def scheduler_command(
    once: bool = typer.Option(
        False, "--once", help="Run the nightly job now (for --date, default yesterday) and exit."
    ),
    date: str | None = typer.Option(None, "--date", help="With --once: the day, YYYY-MM-DD."),
    as_json: bool = JSON,
) -> None:
    """Run the nightly reconciliation and seal at 02:00 Lomé time (or once, now).

    No agent: the job runs as the server, on the operators' own statements and floats, and
    signs its reports and seal with the ledger key."""
    if once:
        result = scheduler.nightly(_day(date) if date else None)
        console.emit(result, as_json, "nightly")
        return
    if date is not None:
        raise ValidationError("--date goes with --once")
    broker = get_broker()
    scheduler.declare(broker)
    console.err.print(
        f"scheduler: reconciliation and seal every day at 02:00 UTC ({scheduler.SCHEDULE})"
    )
    if is_in_process(broker):
        # no broker configured: this process also consumes what it schedules
        with running_worker(broker, threads=1, queues={scheduler.QUEUE}):
            scheduler.serve(broker)
    else:
        scheduler.serve(broker)
