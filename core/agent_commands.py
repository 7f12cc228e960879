"""`sika agent` and `sika audit log`: agents, their roles and keys, and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from core import agents, console
from core.db import unit_of_work
from core.errors import ConfigError, FindingsError
from core.models import Agent, AuditEntry

app = typer.Typer(help="Agents: identities, roles and Ed25519 keys.", no_args_is_help=True)


def _agent_row(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "role": agent.role,
        "fingerprint": agent.key_fingerprint,
        "private_key_here": agents.agent_key_path(agent.name).exists(),
        "created_at": agent.created_at.isoformat() if agent.created_at else None,
    }


@app.command("add")
def add_command(
    name: str = typer.Argument(..., help="Agent name: 2-63 of a-z 0-9 _ . -"),
    role: str = typer.Option(..., "--role", help="maker, approver, auditor or admin."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="Register this PEM Ed25519 public key; no private key is kept."
    ),
    actor: str | None = typer.Option(
        None, "--agent", envvar="SIKA_AGENT", help="Acting agent, recorded in the audit log."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an agent with a new Ed25519 key pair, or register an existing public key."""
    pem: bytes | None = None
    if public_key is not None:
        try:
            pem = public_key.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {public_key}: {exc.strerror}") from exc
    with unit_of_work() as session:
        acting = agents.get_agent(session, actor) if actor else None
        agent = agents.add_agent(session, name, role, public_key_pem=pem, actor=acting)
        row = _agent_row(agent)
    if pem is None:
        row["private_key"] = str(agents.agent_key_path(agent.name))
    console.emit(row, as_json, "agent")


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every agent with its role and key fingerprint."""
    with unit_of_work() as session:
        rows = [_agent_row(agent) for agent in agents.list_agents(session)]
    if as_json:
        console.print_json(rows)
    else:
        console.print_rows(rows, ["name", "role", "fingerprint", "private_key_here", "created_at"])


def _entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "agent": entry.agent_name,
        "action": entry.action,
        "arguments": entry.arguments,
        "arguments_sha256": bytes(entry.arguments_sha256).hex(),
        "entry_hash": bytes(entry.entry_hash).hex(),
    }


def audit_log(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N entries."),
    verify: bool = typer.Option(
        False, "--verify", help="Recompute the whole hash chain; exit 3 if it is broken."
    ),
) -> None:
    """Show the append-only log of state-changing commands."""
    with unit_of_work() as session:
        rows = [_entry_row(entry) for entry in agents.audit_entries(session, limit)]
        breaks = agents.verify_chain(session) if verify else []
    if as_json:
        data: Any = rows
        if verify:
            data = {
                "entries": rows,
                "intact": not breaks,
                "breaks": [{"id": b.entry_id, "reason": b.reason} for b in breaks],
            }
        console.print_json(data)
    else:
        console.print_rows(
            [{**row, "hash": row["entry_hash"][:16]} for row in rows],
            ["id", "at", "agent", "action", "arguments", "hash"],
            title="audit log",
        )
        if verify and not breaks:
            console.err.print("audit chain intact")
    if breaks:
        for item in breaks[:20]:
            console.err.print(f"entry {item.entry_id}: {item.reason}", markup=False)
        raise FindingsError(f"the audit log's hash chain is broken at {len(breaks)} place(s)")
