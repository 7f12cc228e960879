"""`sika agent` and `sika audit log`: agents' keys, grants and roles, and the audit trail.

Every command that changes an agent signs a request with the acting agent's own key
(`--agent` or SIKA_AGENT) and hands it to a service function in `core.agents`, which
checks it. `keygen` only writes a key on this machine; `bootstrap` works on an empty
agents table only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from core import agents, authority, console, signing
from core.audit import audit_entries
from core.db import unit_of_work
from core.errors import ConfigError, FindingsError, ValidationError
from core.models import Agent, AuditEntry
from core.settings import load_settings

app = typer.Typer(
    help="Agents: their own Ed25519 keys, their roles, and who granted them.",
    no_args_is_help=True,
)

_AGENT = typer.Option(
    None,
    "--agent",
    envvar="SIKA_AGENT",
    help="Acting agent; the request is signed with their key (SIKA_KEYS_DIR or SIKA_AGENT_KEY).",
)
_JSON = typer.Option(False, "--json", help="Print JSON.")
# a PEM public key is a few hundred bytes; anything far larger is the wrong file
_MAX_KEY_FILE = 16 * 1024


def _read_public_key(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > _MAX_KEY_FILE:
            raise ValidationError(f"{path} is {size} bytes: not a PEM public key")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not a PEM public key (not text)") from None


def _summary(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "status": "revoked" if agent.revoked else "active",
        "grants": {g.role: g.status for g in agent.grants},
        "fingerprint": agent.key_fingerprint or None,
    }


def _hint_pending(agent: Agent) -> None:
    for grant in agent.grants:
        if grant.status == "pending":
            console.err.print(
                f"{agent.name}'s {grant.role} grant awaits a second admin:"
                f" sika agent confirm {agent.name} --agent OTHER_ADMIN",
                markup=False,
            )


@app.command("keygen")
def keygen_command(
    name: str = typer.Argument(..., help="The agent's name: 2-63 of a-z 0-9 _ . -"),
) -> None:
    """Make this agent's Ed25519 key on their own machine; print the public half (PEM).

    The private key goes to SIKA_AGENT_KEY if set, else SIKA_KEYS_DIR/NAME.pem, mode 0600.
    Give the printed public key to an admin, who enrols it with `sika agent add`.
    """
    settings = load_settings()
    name = authority.normalise_name(name)
    path = (settings.agent_key or authority.key_path(name, settings)).expanduser().resolve()
    home = settings.home.expanduser().resolve()
    if path.is_relative_to(home):
        # SIKA_HOME is the server's; a person's key there is every admin's to read
        raise ConfigError(
            f"{path} lies under SIKA_HOME ({home}): keep agents' keys elsewhere"
            " (SIKA_KEYS_DIR, default ~/.config/sika/keys)"
        )
    if path.exists():
        raise ValidationError(f"a key already exists at {path}: keep it, or move it away first")
    key = signing.generate_private_key()
    signing.write_private_key(path, key)
    console.err.print(
        f"private key of {name} written to {path} (mode 0600); give the public key below to"
        " an admin",
        markup=False,
    )
    sys.stdout.write(signing.public_pem(key).decode("ascii"))


@app.command("bootstrap")
def bootstrap_command(
    name: str = typer.Argument(..., help="The first admin's name."),
    public_key: Path = typer.Option(..., "--public-key", help="Their PEM Ed25519 public key."),
    as_json: bool = _JSON,
) -> None:
    """Enrol the first admin; refused once any agent exists."""
    pem = _read_public_key(public_key)
    with unit_of_work() as session:
        row = _summary(agents.bootstrap(session, name, pem))
    console.emit(row, as_json, "agent")


@app.command("add")
def add_command(
    name: str = typer.Argument(..., help="Agent name: 2-63 of a-z 0-9 _ . -"),
    role: str = typer.Option(..., "--role", help="maker, approver, auditor, treasurer or admin."),
    public_key: Path = typer.Option(
        ..., "--public-key", help="The PEM public key `sika agent keygen` printed for them."
    ),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """An admin enrols an agent; approver, treasurer and admin wait for a second admin."""
    pem = _read_public_key(public_key)
    request = authority.signed_by(
        agent, "agent.add", {"name": name, "role": role, "public_key": pem}
    )
    with unit_of_work() as session:
        added = agents.enrol(session, request, name=name, role=role, public_key_pem=pem)
        row = _summary(added)
    console.emit(row, as_json, "agent")
    _hint_pending(added)


@app.command("grant")
def grant_command(
    name: str = typer.Argument(..., help="An enrolled agent."),
    role: str = typer.Option(..., "--role", help="The role to add."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """An admin gives an agent one more role (never maker with approver, nor admin with
    either)."""
    request = authority.signed_by(agent, "agent.grant", {"name": name, "role": role})
    with unit_of_work() as session:
        grant = agents.grant(session, request, name=name, role=role)
        row = _summary(grant.agent)
    console.emit(row, as_json, "agent")
    _hint_pending(grant.agent)


@app.command("confirm")
def confirm_command(
    name: str = typer.Argument(..., help="The agent whose grant awaits confirmation."),
    role: str | None = typer.Option(None, "--role", help="Only this grant (default: all)."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """A second admin confirms an agent's pending grants."""
    request = authority.signed_by(agent, "agent.confirm", {"name": name, "role": role})
    with unit_of_work() as session:
        confirmed = agents.confirm(session, request, name=name, role=role)
        row = _summary(confirmed[0].agent)
    console.emit(row, as_json, "agent")


@app.command("revoke")
def revoke_command(
    name: str = typer.Argument(..., help="The agent to revoke."),
    role: str | None = typer.Option(
        None, "--role", help="Only this grant; without it the agent and its key, for good."
    ),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Revoke an agent (every grant and its key) or one grant, at once."""
    request = authority.signed_by(agent, "agent.revoke", {"name": name, "role": role})
    with unit_of_work() as session:
        row = _summary(agents.revoke(session, request, name=name, role=role))
    console.emit(row, as_json, "agent")


@app.command("rotate-key")
def rotate_key_command(
    name: str = typer.Argument(..., help="The agent whose key changes."),
    public_key: Path = typer.Option(..., "--public-key", help="The new PEM public key."),
    agent: str | None = _AGENT,
    as_json: bool = _JSON,
) -> None:
    """Replace an agent's key: by an admin, or by the agent signing with the old key."""
    pem = _read_public_key(public_key)
    request = authority.signed_by(agent, "agent.rotate_key", {"name": name, "public_key": pem})
    with unit_of_work() as session:
        key = agents.rotate_key(session, request, name=name, public_key_pem=pem)
        row = _summary(key.agent)
    console.emit(row, as_json, "agent")


@app.command("list")
def list_command(agent: str | None = _AGENT, as_json: bool = _JSON) -> None:
    """Every agent: roles, grant status, who granted and confirmed, key fingerprints."""
    request = authority.signed_by(agent, "agent.list", {})
    with unit_of_work() as session:
        views = agents.list_agents(session, request)
    if as_json:
        console.print_json([view.as_dict() for view in views])
        return
    rows = [
        {
            "name": view.name,
            "role": grant["role"],
            "grant": grant["status"],
            "granted_by": grant["granted_by"],
            "confirmed_by": grant["confirmed_by"],
            "fingerprint": view.fingerprint or None,
            "agent": view.status,
        }
        for view in views
        for grant in view.grants
    ]
    console.print_rows(
        rows,
        ["name", "role", "grant", "granted_by", "confirmed_by", "fingerprint", "agent"],
        title="agents",
    )


def _entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "agent": entry.agent_name,
        "action": entry.action,
        "arguments": entry.arguments,
        "arguments_sha256": bytes(entry.arguments_sha256).hex(),
        "entry_hash": bytes(entry.entry_hash).hex(),
        "request_id": entry.request_id,
        "issued_at": entry.issued_at.isoformat() if entry.issued_at else None,
        "signature": entry.signature,
        "key_fingerprint": entry.key_fingerprint,
    }


def audit_log(
    as_json: bool = _JSON,
    limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N entries."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Recompute the whole hash chain and check every signature; exit 3 on a failure.",
    ),
) -> None:
    """Show the append-only log of what agents did, each act with its signed request."""
    with unit_of_work() as session:
        rows = [_entry_row(entry) for entry in audit_entries(session, limit)]
        breaks = authority.verify_audit_log(session) if verify else []
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
            [
                {**row, "hash": row["entry_hash"][:16], "signed": row["key_fingerprint"]}
                for row in rows
            ],
            ["id", "at", "agent", "action", "arguments", "signed", "hash"],
            title="audit log",
        )
        if verify and not breaks:
            console.err.print("audit log intact: hash chain and every signature verify")
    if breaks:
        for item in breaks[:20]:
            console.err.print(f"entry {item.entry_id}: {item.reason}", markup=False)
        first = breaks[0]
        raise FindingsError(
            f"the audit log fails verification in {len(breaks)} place(s), first at entry"
            f" {first.entry_id}: {first.reason}"
        )
