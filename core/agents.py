"""Agents: who they are (a name and a key history), what they may do (grants), and the
service functions that change either, each a signed request checked by `authorize`.

An agent may hold several grants, never two that conflict (`INCOMPATIBLE_ROLES`: maker
with approver, admin with maker or approver). Granting approver, treasurer or admin waits
for a second admin's confirmation once two admins are in force. Private keys never reach
this module's storage: the database holds public keys only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core import clock, signing
from core.audit import (
    GENESIS,
    ChainBreak,
    audit_entries,
    canonical_json,
    record,
    verify_chain,
)
from core.authority import (
    SignedRequest,
    authorize,
    normalise_name,
    parse_role,
)
from core.errors import AuthorizationError, ConfigError, NotFoundError, ValidationError
from core.models import (
    INCOMPATIBLE_ROLES,
    TWO_ADMIN_ROLES,
    Agent,
    AgentGrant,
    AgentKey,
    GrantStatus,
    Role,
)
from core.settings import load_settings

__all__ = [
    "GENESIS",
    "AgentView",
    "ChainBreak",
    "add_agent",
    "audit_entries",
    "bootstrap",
    "canonical_json",
    "confirm",
    "enrol",
    "get_agent",
    "grant",
    "list_agents",
    "normalise_name",
    "parse_role",
    "record",
    "revoke",
    "rotate_key",
    "verify_chain",
]

# every change to agents, grants or keys runs alone: the two-admin count, the
# separation-of-duties check and the empty-table test of bootstrap stay true until commit
_AGENTS_LOCK = 0x51CA_A9E7
ALL_ROLES: frozenset[Role] = frozenset(Role)


def _lock(session: Session, target: str | None = None) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AGENTS_LOCK})
    if target is not None:
        # the agent acted on is locked before `authorize` takes the audit log's lock: an
        # act of that agent under way (holding its row, waiting for the log) finishes
        # first, instead of the two waiting for each other
        session.execute(
            select(Agent.id).where(Agent.name == normalise_name(target)).with_for_update()
        )


def get_agent(session: Session, name: str) -> Agent:
    """The agent called `name`, or `NotFoundError`."""
    agent = session.scalar(select(Agent).where(Agent.name == normalise_name(name)))
    if agent is None:
        raise NotFoundError(f"no agent named {name!r}: an admin enrols it with `sika agent add`")
    return agent


def _public_pem(pem: str | bytes) -> tuple[str, str]:
    """(canonical PEM, fingerprint) of a public key given as PEM; a private key is refused."""
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in data:
        # an admin must never receive, let alone store, someone's private key
        raise ValidationError(
            "that file holds a private key: give the public key `sika agent keygen` printed"
        )
    try:
        public = signing.load_public_key(data)
    except ConfigError:
        raise ValidationError(
            "that is not an Ed25519 public key in PEM form: give the key `sika agent keygen`"
            " printed"
        ) from None
    return signing.public_pem(public).decode("ascii"), signing.fingerprint(public)


def _key_owner(session: Session, fingerprint: str) -> str | None:
    return session.scalar(
        select(Agent.name)
        .join(AgentKey, AgentKey.agent_id == Agent.id)
        .where(AgentKey.fingerprint == fingerprint)
    )


def _check_new_key(session: Session, fingerprint: str) -> None:
    owner = _key_owner(session, fingerprint)
    if owner is not None:
        raise ValidationError(
            f"key {fingerprint} is (or was) the key of agent {owner!r}: every agent has a key"
            " of their own"
        )


def _live_grants(session: Session, agent: Agent) -> list[AgentGrant]:
    return list(
        session.scalars(
            select(AgentGrant)
            .where(AgentGrant.agent_id == agent.id, AgentGrant.status != GrantStatus.REVOKED)
            .order_by(AgentGrant.id)
        )
    )


def _check_compatible(name: str, held: Iterable[Role], role: Role) -> None:
    for other in held:
        if frozenset({other, role}) in INCOMPATIBLE_ROLES:
            raise ValidationError(
                f"agent {name!r} holds {other.value} and cannot also hold {role.value}:"
                " maker and approver are never one agent, and admins neither make nor approve"
            )


def active_admins(session: Session) -> int:
    """How many agents hold an admin grant in force."""
    count = session.scalar(
        select(func.count(func.distinct(AgentGrant.agent_id)))
        .join(Agent, Agent.id == AgentGrant.agent_id)
        .where(
            AgentGrant.role == Role.ADMIN,
            AgentGrant.status == GrantStatus.ACTIVE,
            Agent.revoked_at.is_(None),
        )
    )
    return int(count or 0)


def _new_grant(
    session: Session, agent: Agent, role: Role, granted_by: Agent | None, at: datetime
) -> AgentGrant:
    held = [Role(g.role) for g in _live_grants(session, agent)]
    if role in held:
        raise ValidationError(f"agent {agent.name!r} already holds {role.value}")
    _check_compatible(agent.name, held, role)
    # a second admin confirms privileged grants, unless there is no second admin to ask
    needs_second = role in TWO_ADMIN_ROLES and active_admins(session) >= 2
    entry = AgentGrant(
        role=role.value,
        status=(GrantStatus.PENDING if needs_second else GrantStatus.ACTIVE).value,
        granted_by=granted_by.id if granted_by is not None else None,
        granted_at=at,
    )
    agent.grants.append(entry)
    session.flush()
    return entry


def _create(
    session: Session,
    name: str,
    role: Role,
    public_pem: str,
    fingerprint: str,
    granted_by: Agent | None,
    at: datetime,
) -> Agent:
    if session.scalar(select(Agent.id).where(Agent.name == name)) is not None:
        raise ValidationError(f"an agent named {name!r} already exists")
    _check_new_key(session, fingerprint)
    agent = Agent(name=name, created_at=at)
    session.add(agent)
    agent.keys.append(
        AgentKey(
            fingerprint=fingerprint,
            public_key=public_pem,
            valid_from=at,
            added_by=granted_by.id if granted_by is not None else None,
        )
    )
    session.flush()
    _new_grant(session, agent, role, granted_by, at)
    return agent


# --- service functions: each a signed request, checked here ---------------------------


def bootstrap(session: Session, name: str, public_key_pem: str | bytes) -> Agent:
    """The first admin, on an empty agents table only: nobody exists yet to sign for it."""
    _lock(session)
    if session.scalar(select(func.count()).select_from(Agent)):
        raise AuthorizationError(
            "agents already exist: bootstrap makes only the first admin; an admin adds others"
            " with `sika agent add`"
        )
    name = normalise_name(name)
    pem, fingerprint = _public_pem(public_key_pem)
    now = clock.now()
    agent = _create(session, name, Role.ADMIN, pem, fingerprint, None, now)
    record(session, agent, "agent.bootstrap", {"name": name, "public_key": pem}, at=now)
    return agent


def enrol(
    session: Session,
    request: SignedRequest,
    *,
    name: str,
    role: Role | str,
    public_key_pem: str,
) -> Agent:
    """`sika agent add`: an admin enrols a new agent with a role and their public key.

    Approver, treasurer and admin grants wait for a second admin while two are in force.
    """
    arguments = {"name": name, "role": str(role), "public_key": public_key_pem}
    parsed_name, parsed_role = normalise_name(name), parse_role(role)
    pem, fingerprint = _public_pem(public_key_pem)
    _lock(session)
    actor = authorize(
        session, request, command="agent.add", arguments=arguments, roles=[Role.ADMIN]
    )
    return _create(session, parsed_name, parsed_role, pem, fingerprint, actor, clock.now())


def grant(session: Session, request: SignedRequest, *, name: str, role: Role | str) -> AgentGrant:
    """`sika agent grant`: an admin gives an existing agent one more role."""
    arguments = {"name": name, "role": str(role)}
    parsed_role = parse_role(role)
    _lock(session, name)
    actor = authorize(
        session, request, command="agent.grant", arguments=arguments, roles=[Role.ADMIN]
    )
    agent = _target(session, name)
    if agent.id == actor.id:
        raise AuthorizationError(f"agent {actor.name!r} cannot grant a role to themselves")
    return _new_grant(session, agent, parsed_role, actor, clock.now())


def confirm(
    session: Session, request: SignedRequest, *, name: str, role: Role | str | None = None
) -> list[AgentGrant]:
    """`sika agent confirm`: a second admin puts an agent's pending grants in force."""
    arguments = {"name": name, "role": str(role) if role is not None else None}
    parsed_role = parse_role(role) if role is not None else None
    _lock(session, name)
    actor = authorize(
        session, request, command="agent.confirm", arguments=arguments, roles=[Role.ADMIN]
    )
    agent = _target(session, name)
    pending = [
        g
        for g in _live_grants(session, agent)
        if g.status == GrantStatus.PENDING and (parsed_role is None or g.role == parsed_role)
    ]
    if not pending:
        raise ValidationError(f"agent {agent.name!r} has no grant awaiting confirmation")
    if agent.id == actor.id:
        raise AuthorizationError(f"agent {actor.name!r} cannot confirm their own grant")
    now = clock.now()
    for item in pending:
        if item.granted_by == actor.id:
            raise AuthorizationError(
                f"agent {actor.name!r} granted {item.role} to {agent.name!r}: another admin"
                " must confirm it"
            )
        item.status, item.confirmed_by, item.confirmed_at = GrantStatus.ACTIVE, actor.id, now
    session.flush()
    return pending


def revoke(
    session: Session, request: SignedRequest, *, name: str, role: Role | str | None = None
) -> Agent:
    """`sika agent revoke`: at once, the agent (every grant and its key) or one grant."""
    arguments = {"name": name, "role": str(role) if role is not None else None}
    parsed_role = parse_role(role) if role is not None else None
    _lock(session, name)
    actor = authorize(
        session, request, command="agent.revoke", arguments=arguments, roles=[Role.ADMIN]
    )
    agent = _target(session, name)
    live = _live_grants(session, agent)
    chosen = [g for g in live if parsed_role is None or g.role == parsed_role]
    if parsed_role is not None and not chosen:
        raise ValidationError(f"agent {agent.name!r} holds no {parsed_role.value} grant")
    removes_admin = any(g.role == Role.ADMIN and g.status == GrantStatus.ACTIVE for g in chosen)
    if removes_admin and active_admins(session) <= 1:
        raise ValidationError(
            f"agent {agent.name!r} is the last admin: add and confirm another admin first"
        )
    now = clock.now()
    for item in chosen:
        item.status, item.revoked_by, item.revoked_at = GrantStatus.REVOKED, actor.id, now
    if parsed_role is None:
        agent.revoked_at, agent.revoked_by = now, actor.id
        for key in agent.keys:
            if key.valid_to is None:
                key.valid_to = now
    session.flush()
    return agent


def rotate_key(
    session: Session, request: SignedRequest, *, name: str, public_key_pem: str
) -> AgentKey:
    """`sika agent rotate-key`: a new key for an agent, from an admin or the agent
    themselves (signing with the old key); the old key stops being valid at once."""
    arguments = {"name": name, "public_key": public_key_pem}
    own = request.agent == normalise_name(name)
    pem, fingerprint = _public_pem(public_key_pem)
    _lock(session, name)
    actor = authorize(
        session,
        request,
        command="agent.rotate_key",
        arguments=arguments,
        roles=ALL_ROLES if own else [Role.ADMIN],
    )
    agent = _target(session, name)
    _check_new_key(session, fingerprint)
    now = clock.now()
    for key in agent.keys:
        if key.valid_to is None:
            key.valid_to = now
    # the old key's period is closed in the database before the new one opens, so the
    # one-key-in-force index never sees two
    session.flush()
    new = AgentKey(fingerprint=fingerprint, public_key=pem, valid_from=now, added_by=actor.id)
    agent.keys.append(new)
    session.flush()
    return new


@dataclass(frozen=True)
class AgentView:
    """One agent as `sika agent list` shows it.

    Attributes:
        name: the agent's name.
        status: "active" or "revoked".
        roles: roles in force.
        grants: every grant, with who granted, confirmed or revoked it and when.
        fingerprint: the key in force ("" once revoked).
        keys: every key the agent held, with its period.
        created_at: when the agent was enrolled.
    """

    name: str
    status: str
    roles: tuple[str, ...]
    grants: tuple[dict[str, Any], ...]
    fingerprint: str
    keys: tuple[dict[str, Any], ...]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "status": self.status,
            "roles": list(self.roles),
            "grants": list(self.grants),
            "fingerprint": self.fingerprint,
            "keys": list(self.keys),
            "created_at": self.created_at.isoformat(),
        }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def list_agents(session: Session, request: SignedRequest) -> list[AgentView]:
    """`sika agent list`: every agent, its grants and keys; any agent in force may look."""
    authorize(session, request, command="agent.list", arguments={}, roles=ALL_ROLES)
    agents = list(session.scalars(select(Agent).order_by(Agent.name)))
    names = {agent.id: agent.name for agent in agents}
    views = []
    for agent in agents:
        grants = tuple(
            {
                "role": g.role,
                "status": g.status,
                "granted_by": names.get(g.granted_by) if g.granted_by else None,
                "granted_at": _iso(g.granted_at),
                "confirmed_by": names.get(g.confirmed_by) if g.confirmed_by else None,
                "confirmed_at": _iso(g.confirmed_at),
                "revoked_by": names.get(g.revoked_by) if g.revoked_by else None,
                "revoked_at": _iso(g.revoked_at),
            }
            for g in agent.grants
        )
        keys = tuple(
            {
                "fingerprint": k.fingerprint,
                "valid_from": _iso(k.valid_from),
                "valid_to": _iso(k.valid_to),
                "added_by": names.get(k.added_by) if k.added_by else None,
            }
            for k in agent.keys
        )
        views.append(
            AgentView(
                name=agent.name,
                status="revoked" if agent.revoked else "active",
                roles=tuple(r.value for r in Role if r in agent.roles),
                grants=grants,
                fingerprint=agent.key_fingerprint,
                keys=keys,
                created_at=agent.created_at,
            )
        )
    return views


def _target(session: Session, name: str) -> Agent:
    """The agent a command acts on, fresh from the database; a revoked one is refused."""
    query = select(Agent).where(Agent.name == normalise_name(name))
    agent = session.scalar(query.execution_options(populate_existing=True))
    if agent is None:
        raise NotFoundError(f"no agent named {name!r}")
    if agent.revoked:
        raise ValidationError(f"agent {agent.name!r} is revoked: nothing about it changes any more")
    session.refresh(agent, ["grants", "keys"])
    return agent


def add_agent(
    session: Session,
    name: str,
    role: Role | str,
    *,
    public_key_pem: bytes | str | None = None,
    actor: Agent | None = None,
    keys_dir: Path | None = None,
) -> Agent:
    """An agent with one grant in force, written straight to the database: how tests and
    set-up scripts make agents. No signed request is checked here, so no command calls it.

    Without `public_key_pem` a key pair is made and the private half written (mode 0600)
    to `keys_dir` (default SIKA_KEYS_DIR), where `load_agent_key` finds it.
    """
    name = normalise_name(name)
    role = parse_role(role)
    private: Ed25519PrivateKey | None = None
    if public_key_pem is None:
        private = signing.generate_private_key()
        public_key_pem = signing.public_pem(private)
        key_file = (keys_dir or load_settings().keys_path) / f"{name}.pem"
        if key_file.exists():
            raise ValidationError(f"a private key already exists at {key_file}: move it away first")
    pem, fingerprint = _public_pem(public_key_pem)
    _lock(session)
    now = clock.now()
    agent = _create(session, name, role, pem, fingerprint, actor, now)
    record(
        session,
        actor,
        "agent.add",
        {"name": name, "role": role.value, "public_key": pem},
        at=now,
    )
    if private is not None:
        # last, so a refused insert leaves no orphan key file behind
        signing.write_private_key(key_file, private)
    return agent
