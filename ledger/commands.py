"""`sika ledger` and `sika audit`: the ledger from the command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="Accounts, transfers, two-phase holds and balances.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Tamper evidence: daily seals and their verification.", no_args_is_help=True
)
