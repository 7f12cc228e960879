"""`sika providers` diagnostics (route, balance, lookup) and `sika serve`, the HTTP callback
receiver. Each command is a thin shell over a plain function callable from tests.
"""

from __future__ import annotations

from typing import Any

import typer

from core import console
from core.errors import ValidationError
from core.settings import Settings, load_settings
from providers import registry
from providers.base import Outcome
from providers.msisdn import InvalidMsisdn, normalise, route

app = typer.Typer(help="Operators: routing, float balances, KYC look-ups.", no_args_is_help=True)


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
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
