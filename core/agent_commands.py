"""`sika agent` and `sika audit log`: agents, their roles and keys, and the audit trail."""

from __future__ import annotations

import typer

app = typer.Typer(help="Agents: identities, roles and Ed25519 keys.", no_args_is_help=True)


def audit_log() -> None:
    """Show the append-only log of state-changing commands."""
