"""`sika providers` diagnostics (route, balance, lookup, the go-live check) and `sika serve`,
the HTTP callback receiver. Each command is a thin shell over a plain function callable from
tests.
"""

from __future__ import annotations

import inspect
import signal
from types import FrameType
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from core import console
from core.errors import FindingsError, ValidationError
from core.settings import Settings, load_settings
from providers import registry
from providers.base import Outcome
from providers.check import CheckReport, check_operator
from providers.msisdn import InvalidMsisdn, normalise, route

app = typer.Typer(
    help="Operators: routing, float balances, KYC look-ups, the go-live check.",
    no_args_is_help=True,
)


def route_msisdn(msisdn: str) -> dict[str, str]:
    """`{"msisdn": "228XXXXXXXX", "operator": ...}`; `InvalidMsisdn` with the reason."""
    number = normalise(msisdn)
    # A registry override (ported numbers) will be passed here once the registry exists.
    return {"msisdn": number, "operator": str(route(number))}


def balances(settings: Settings) -> list[dict[str, Any]]:
    """Each installed operator's float as it reports it (unconfigured ones say so)."""
    rows: list[dict[str, Any]] = []
    for name in registry.available():
        try:
            adapter = registry.load_adapter(name, settings)
        except Exception as exc:  # one misconfigured operator must not hide the others
            rows.append(
                {"provider": name, "outcome": "unconfigured", "balance": None, "detail": str(exc)}
            )
            continue
        try:
            result = adapter.balance()
        finally:
            adapter.close()
        rows.append(
            {
                "provider": name,
                "outcome": str(result.outcome),
                "balance": result.balance,
                "detail": result.detail,
            }
        )
    return rows


def lookup_msisdn(msisdn: str, settings: Settings) -> dict[str, Any]:
    """The KYC answer of the operator the number routes to."""
    routed = route_msisdn(msisdn)
    adapter = registry.load_adapter(routed["operator"], settings)
    try:
        result = adapter.lookup(routed["msisdn"])
    finally:
        adapter.close()
    return {
        "msisdn": routed["msisdn"],
        "operator": routed["operator"],
        "outcome": str(result.outcome),
        "status": str(result.status),
        "name": result.name,
        "first_name": result.first_name,
        "last_name": result.last_name,
        "detail": result.detail,
    }


@app.command("route")
def route_command(
    msisdn: str = typer.Argument(..., help="A Togolese mobile number, any spelling."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Which operator pays this number (prefix default; registry overrides later)."""
    try:
        routed = route_msisdn(msisdn)
    except InvalidMsisdn as exc:
        raise ValidationError(str(exc)) from exc
    console.emit(routed, as_json, "route")


@app.command("balance")
def balance_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each operator's merchant float, as the operator reports it."""
    rows = balances(load_settings())
    if as_json:
        console.print_json(rows)
    else:
        console.print_rows(rows, ["provider", "outcome", "balance", "detail"], "float")
    if any(row["outcome"] != Outcome.SUCCEEDED for row in rows):
        raise typer.Exit(1)


@app.command("lookup")
def lookup_command(
    msisdn: str = typer.Argument(..., help="A Togolese mobile number, any spelling."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The operator's KYC answer for a number: wallet status and holder's name."""
    answer = lookup_msisdn(msisdn, load_settings())
    console.emit(answer, as_json, "kyc")
    if answer["outcome"] != Outcome.SUCCEEDED:
        raise typer.Exit(1)


def check_command(
    operator: str = typer.Option(..., "--operator", help="flooz or tmoney."),
    msisdn: str | None = typer.Option(
        None, "--msisdn", help="Also look this number up (KYC); any spelling."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Go-live check of one operator's endpoint, moving no money.

    Runs, in order: `sign_in` (T-Money only), `balance` (the merchant float),
    `lookup` (with --msisdn: the KYC answer for that number), `status_unknown_reference`
    (a status query of a fresh SIKACHECK-... reference, which must answer "does not exist")
    and, for T-Money, `collection_status_unknown_reference` (the same for collections).

    One row a step: ok, or FAILED with the most likely cause (refused credentials or a
    wrong key, wrong URL, a firewall, wrong SIKA_FLOOZ_DIALECT / SIKA_TMONEY_DIALECT) and
    what the adapter saw. After refused credentials or no connection the remaining steps
    are not run, so a wrong password is not repeated against the operator.

    --json prints {"operator", "ok", "steps": [{"name", "ok", "detail"}]}. Exit 0 when
    every step passed, 3 when one failed, 1 for a bad --operator or --msisdn or a missing
    setting.
    """
    report = check_operator(operator, load_settings(), msisdn)
    if as_json:
        console.print_json(report.as_dict())
    else:
        _print_check(report)
    if not report.ok:
        raise typer.Exit(FindingsError.exit_code)


def _reflowed(doc: str | None) -> str:
    """A docstring as --help text: Typer keeps its line breaks, which a narrow terminal
    breaks again mid-sentence, so each paragraph becomes one line."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


# Registered here rather than by decorator so the help text is the reflowed docstring.
app.command("check", help=_reflowed(check_command.__doc__))(check_command)


def _print_check(report: CheckReport) -> None:
    failed = sum(not step.ok for step in report.steps)
    verdict = "every step passed" if report.ok else f"{failed} of {len(report.steps)} failed"
    table = Table(title=f"{report.operator} go-live check: {verdict}")
    # Step names and verdicts stay whole on a narrow terminal; the detail wraps instead.
    table.add_column("step", no_wrap=True)
    table.add_column("ok", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for step in report.steps:
        # Text, not markup: operator answers may hold brackets Rich would read as styles.
        table.add_row(
            step.name,
            Text("ok", style="green") if step.ok else Text("FAILED", style="bold red"),
            Text(step.detail),
        )
    console.out.print(table)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8800, "--port", help="Port to listen on."),
) -> None:
    """Receive operator callbacks and SMS delivery reports over HTTP."""
    import uvicorn

    from core.db import get_sessionmaker
    from providers.receiver import create_app

    application = create_app(get_sessionmaker())
    console.err.print(f"listening on http://{host}:{port} (POST /callbacks/<provider>)")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; exiting
    # normally then runs the exit hooks that release the embedded database.
    signal.signal(signal.SIGTERM, _exit_normally)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def _exit_normally(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
