"""Agents, their roles and Ed25519 keys, and the hash-chained audit log of what they did.

Other packages call `require_role` before changing money, `sign_as` / `verify_agent_signature`
for manifests, and `record` in the same transaction as the change it describes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import signing
from core.errors import AuthorizationError, ConfigError, NotFoundError, ValidationError
from core.models import AGENT_NAME_PATTERN, Agent, AuditEntry, Role
from core.settings import load_settings

GENESIS = bytes(32)
# one writer at a time extends the chain; the unique prev_hash would refuse a fork anyway
_AUDIT_LOCK = 0x51CA_A0D1
_NAME = re.compile(AGENT_NAME_PATTERN)


def normalise_name(name: str) -> str:
    """An agent name as stored: stripped, lower case, 2–63 of `a-z 0-9 _ . -`."""
    cleaned = (name or "").strip().lower()
    if not _NAME.match(cleaned):
        raise ValidationError(
            f"agent name {name!r} is not valid: use 2 to 63 characters a-z, 0-9, '_', '.', '-', "
            "starting with a letter"
        )
    return cleaned


def parse_role(role: str) -> Role:
    """`"Maker"` → `Role.MAKER`; anything else is a `ValidationError` listing the roles."""
    try:
        return Role((role or "").strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {role!r}: choose one of {known}") from None


def agents_dir(home: Path | None = None) -> Path:
    """Where the private keys of agents created on this machine live."""
    return (home or load_settings().home_dir) / "agents"


def agent_key_path(name: str, home: Path | None = None) -> Path:
    """The private key file of agent `name` (it may not exist)."""
    return agents_dir(home) / f"{normalise_name(name)}.pem"


def get_agent(session: Session, name: str) -> Agent:
    """The agent called `name`, or `NotFoundError`."""
    agent = session.scalar(select(Agent).where(Agent.name == normalise_name(name)))
    if agent is None:
        raise NotFoundError(f"no agent named {name!r}: create it with `sika agent add`")
    return agent


def list_agents(session: Session) -> list[Agent]:
    """Every agent, by name."""
    return list(session.scalars(select(Agent).order_by(Agent.name)))


def add_agent(
    session: Session,
    name: str,
    role: Role | str,
    *,
    public_key_pem: bytes | None = None,
    actor: Agent | None = None,
    home: Path | None = None,
) -> Agent:
    """Create an agent: with a new key pair (private key written 0600) or a given public key.

    The caller commits; the creation is written to the audit log in the same transaction.
    """
    name = normalise_name(name)
    role = parse_role(role) if isinstance(role, str) else role
    if session.scalar(select(Agent.id).where(Agent.name == name)) is not None:
        raise ValidationError(f"an agent named {name!r} already exists")
    key_path: Path | None = None
    if public_key_pem is None:
        private = signing.generate_private_key()
        public: Ed25519PublicKey = private.public_key()
        key_path = agent_key_path(name, home)
        if key_path.exists():
            raise ValidationError(f"a private key already exists at {key_path}: move it away first")
    else:
        private = None
        public = signing.load_public_key(public_key_pem)
    agent = Agent(
        name=name,
        role=role.value,
        public_key=signing.public_pem(public).decode("ascii"),
        key_fingerprint=signing.fingerprint(public),
    )
    session.add(agent)
    session.flush()
    record(
        session,
        actor,
        "agent.add",
        {
            "name": name,
            "role": role.value,
            "fingerprint": agent.key_fingerprint,
            "key": "generated" if private is not None else "registered",
        },
    )
    if private is not None and key_path is not None:
        # last, so a refused insert leaves no orphan key file behind
        signing.write_private_key(key_path, private)
    return agent


def resolve_agent(session: Session, name_or_none: str | None) -> Agent:
    """The acting agent: `name_or_none`, else `SIKA_AGENT`; refused when neither is given."""
    name = name_or_none or load_settings().agent
    if not name:
        raise AuthorizationError("no acting agent: pass --agent NAME or set SIKA_AGENT")
    return get_agent(session, name)


def require_role(session: Session, name: str | None, *roles: Role | str) -> Agent:
    """The acting agent if it holds one of `roles`, else `AuthorizationError` naming both."""
    agent = resolve_agent(session, name)
    allowed = [Role(r) for r in roles]
    if Role(agent.role) not in allowed:
        needed = " or ".join(r.value for r in allowed)
        raise AuthorizationError(
            f"agent {agent.name!r} has the role {agent.role}; this needs {needed}"
        )
    return agent


def agent_private_key(name: str, home: Path | None = None) -> Ed25519PrivateKey:
    """Agent `name`'s private key from this machine; `ConfigError` when it is held elsewhere."""
    path = agent_key_path(name, home)
    if not path.exists():
        raise ConfigError(
            f"agent {name!r}'s private key is not on this machine (expected at {path})"
        )
    return signing.load_private_key(path)


def sign_as(agent: Agent, data: bytes, home: Path | None = None) -> str:
    """Sign `data` with the agent's private key (base64), checking it is the registered key."""
    key = agent_private_key(agent.name, home)
    if signing.fingerprint(key) != agent.key_fingerprint:
        raise AuthorizationError(
            f"the private key found for agent {agent.name!r} is not the one registered for it"
        )
    return signing.sign(key, data)


def verify_agent_signature(agent: Agent, data: bytes, signature: str) -> bool:
    """True when `signature` is the agent's registered key's signature of `data`."""
    return signing.verify(signing.load_public_key(agent.public_key), data, signature)


# --- audit log -------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same arguments always hash the same."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def _micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def _entry_hash(
    prev: bytes, at: datetime, agent_name: str | None, action: str, arguments_sha256: bytes
) -> bytes:
    body = canonical_json(
        {
            "prev": prev.hex(),
            "at_us": _micros(at),
            "agent": agent_name,
            "action": action,
            "arguments_sha256": arguments_sha256.hex(),
        }
    )
    return hashlib.sha256(body).digest()


def record(
    session: Session, agent: Agent | None, action: str, arguments: Mapping[str, Any]
) -> AuditEntry:
    """Append one entry to the audit log, chained to the previous one.

    Call it in the transaction of the change it describes, so both commit or neither.
    Pass identifiers, not personal data: arguments are stored readable.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
    prev = session.scalar(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1))
    prev = bytes(prev) if prev is not None else GENESIS
    # store exactly what was hashed, so verification recomputes the same bytes
    stored = json.loads(canonical_json(dict(arguments)))
    arguments_sha256 = hashlib.sha256(canonical_json(stored)).digest()
    at = datetime.now(UTC)
    agent_name = agent.name if agent is not None else None
    entry = AuditEntry(
        at=at,
        agent_id=agent.id if agent is not None else None,
        agent_name=agent_name,
        action=action,
        arguments=stored,
        arguments_sha256=arguments_sha256,
        prev_hash=prev,
        entry_hash=_entry_hash(prev, at, agent_name, action, arguments_sha256),
    )
    session.add(entry)
    session.flush()
    return entry


def audit_entries(session: Session, limit: int | None = None) -> list[AuditEntry]:
    """The newest `limit` entries (all when None), oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.scalars(query).all()))


@dataclass(frozen=True)
class ChainBreak:
    """An audit entry that does not fit the chain.

    Attributes:
        entry_id: the entry's id.
        reason: what does not match.
    """

    entry_id: int
    reason: str


def _stream(session: Session) -> Iterator[AuditEntry]:
    last_id = 0
    while True:
        page = session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(1000)
        ).all()
        if not page:
            return
        yield from page
        last_id = page[-1].id


def verify_chain(session: Session) -> list[ChainBreak]:
    """Recompute every entry's hashes and links; an empty list means the log is intact."""
    breaks: list[ChainBreak] = []
    prev = GENESIS
    for entry in _stream(session):
        if bytes(entry.prev_hash) != prev:
            breaks.append(ChainBreak(entry.id, "does not follow the previous entry (removed?)"))
        if hashlib.sha256(canonical_json(entry.arguments)).digest() != bytes(
            entry.arguments_sha256
        ):
            breaks.append(ChainBreak(entry.id, "arguments altered"))
        expected = _entry_hash(
            bytes(entry.prev_hash),
            entry.at,
            entry.agent_name,
            entry.action,
            bytes(entry.arguments_sha256),
        )
        if expected != bytes(entry.entry_hash):
            breaks.append(ChainBreak(entry.id, "entry altered"))
        prev = bytes(entry.entry_hash)
    return breaks
