"""`sika providers` diagnostics and `sika serve`, the HTTP callback receiver."""

from __future__ import annotations

import typer

app = typer.Typer(help="Operators: routing, float balances, KYC look-ups.", no_args_is_help=True)


def serve() -> None:
    """Receive operator callbacks and SMS delivery reports over HTTP."""
