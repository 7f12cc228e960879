"""`sika sandbox serve`: the operator simulators over HTTP."""

from __future__ import annotations

import typer

app = typer.Typer(help="The Flooz, T-Money and SMS simulators.", no_args_is_help=True)
