"""`sika agripme`: the farmer registry, seasons and payout batches."""

from __future__ import annotations

import typer

app = typer.Typer(help="AgriPME: farmers, seasons and payout batches.", no_args_is_help=True)
