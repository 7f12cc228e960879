"""Signed requests: how an agent proves who is acting, and how a service checks it.

The CLI signs a canonical request (command, arguments, agent, request id, time) with the
agent's own Ed25519 key (`signed_by`); every state-changing service function calls
`authorize` itself, which checks key, role, freshness and a never-used request id and
records the request with its signature in the audit log, in the caller's transaction.
"""

from __future__ import annotations

import json
import re
import stat
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from core import audit, clock, signing
from core.audit import ChainBreak, RequestSeal, canonical_json, utc_text
from core.errors import AuthorizationError, ConfigError, ValidationError
from core.models import (
    AGENT_NAME_PATTERN,
    REQUEST_ID_PATTERN,
    Agent,
    AgentGrant,
    AgentKey,
    AuditEntry,
    GrantStatus,
    Role,
)
from core.settings import Settings, load_settings

__all__ = [
    "FRESHNESS",
    "SignedRequest",
    "authorize",
    "canonical_arguments",
    "key_path",
    "load_agent_key",
    "normalise_name",
    "parse_role",
    "request_bytes",
    "sign_request",
    "signature_valid",
    "signed_by",
    "verify_audit_log",
    "verify_recorded_signatures",
]

# A request is accepted this long either side of the server's clock: long enough for a
# slow terminal, short enough that a request copied off a screen soon stops working.
FRESHNESS = timedelta(minutes=5)
# Prefixed so a request's signature can never pass for a manifest's or a seal's.
_REQUEST_DOMAIN = b"sika.request.v1\n"
COMMAND_PATTERN = r"^[a-z][a-z0-9_.-]{0,99}$"
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


def parse_role(role: Role | str) -> Role:
    """`"Maker"` → `Role.MAKER`; anything else is a `ValidationError` listing the roles."""
    if isinstance(role, Role):
        return role
    try:
        return Role((role or "").strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {role!r}: choose one of {known}") from None


# --- the request -----------------------------------------------------------------------


def _check_signable(value: Any, where: str) -> None:
    # JSON's own types only: they survive PostgreSQL's jsonb unchanged, so a signature
    # recorded today still verifies when the audit log is read back years later
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(f"request argument {where} holds a NUL character")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_signable(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"request argument {where} has a key that is not text")
            _check_signable(item, f"{where}.{key}")
        return
    raise ValidationError(
        f"request argument {where} is a {type(value).__name__}: requests carry whole numbers,"
        " text, booleans, lists and mappings only"
    )


def canonical_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """`arguments` as signed and stored: JSON types only (no floats), keys sorted."""
    _check_signable(arguments, "arguments")
    canonical: dict[str, Any] = json.loads(canonical_json(dict(arguments)))
    return canonical


def request_bytes(
    command: str, arguments: Mapping[str, Any], agent: str, request_id: str, issued_at: datetime
) -> bytes:
    """The exact bytes an agent signs: a domain tag, then canonical JSON of the five fields."""
    body = {
        "command": command,
        "arguments": canonical_arguments(arguments),
        "agent": agent,
        "request_id": request_id,
        "issued_at": utc_text(issued_at),
    }
    return _REQUEST_DOMAIN + canonical_json(body)


class SignedRequest(BaseModel):
    """One act an agent asks for, signed with the agent's key.

    Attributes:
        command: what to do, e.g. "agripme.batch.approve".
        arguments: what the service will act on (JSON types only).
        agent: the acting agent's name.
        request_id: uuid4 hex, spent the first time the request is accepted.
        issued_at: when it was signed (UTC).
        signature: base64 Ed25519 over `request_bytes` of the five fields above.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str = Field(pattern=COMMAND_PATTERN)
    arguments: dict[str, Any]
    agent: str = Field(pattern=AGENT_NAME_PATTERN)
    request_id: str = Field(pattern=REQUEST_ID_PATTERN)
    issued_at: AwareDatetime
    signature: str = Field(min_length=1, max_length=200)

    @field_validator("issued_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def signed_bytes(self) -> bytes:
        """What `signature` must be a signature of."""
        return request_bytes(
            self.command, self.arguments, self.agent, self.request_id, self.issued_at
        )


def sign_request(
    command: str,
    arguments: Mapping[str, Any],
    agent: str,
    key: Ed25519PrivateKey,
    *,
    now: datetime | None = None,
) -> SignedRequest:
    """A new request of `agent` to run `command` on `arguments`, signed with `key`."""
    name = normalise_name(agent)
    canonical = canonical_arguments(arguments)
    request_id = uuid.uuid4().hex
    issued_at = (now or clock.now()).astimezone(UTC)
    signature = signing.sign(key, request_bytes(command, canonical, name, request_id, issued_at))
    return SignedRequest(
        command=command,
        arguments=canonical,
        agent=name,
        request_id=request_id,
        issued_at=issued_at,
        signature=signature,
    )


# --- keys on the agent's machine -----------------------------------------------------------


def key_path(agent: str, settings: Settings | None = None) -> Path:
    """Where agent `agent`'s private key is kept on this machine: SIKA_KEYS_DIR/NAME.pem."""
    return (settings or load_settings()).keys_path / f"{normalise_name(agent)}.pem"


def load_agent_key(agent: str, settings: Settings | None = None) -> Ed25519PrivateKey:
    """The acting agent's private key: the file SIKA_AGENT_KEY names, else SIKA_KEYS_DIR/NAME.pem.

    A missing file, or one others may read, is a `ConfigError` naming the path.
    """
    settings = settings or load_settings()
    name = normalise_name(agent)
    path = settings.agent_key.expanduser() if settings.agent_key else key_path(name, settings)
    if not path.is_file():
        raise ConfigError(
            f"no private key for agent {name!r} at {path}: an agent signs with their own key,"
            f" made by `sika agent keygen {name}` on their own machine"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # as ssh does: a key others can read may already be someone else's too
        raise ConfigError(
            f"the private key at {path} can be read by others (mode {mode:o}): chmod 600 it"
        )
    return signing.load_private_key(path)


def signed_by(
    agent_option: str | None,
    command: str,
    arguments: Mapping[str, Any],
    *,
    settings: Settings | None = None,
) -> SignedRequest:
    """The CLI's side: `command` on `arguments`, signed as `--agent` (or SIKA_AGENT) with
    that agent's key from this machine."""
    settings = settings or load_settings()
    name = agent_option or settings.agent
    if not name:
        raise AuthorizationError("no acting agent: pass --agent NAME or set SIKA_AGENT")
    name = normalise_name(name)
    return sign_request(command, arguments, name, load_agent_key(name, settings))


# --- the service's side ----------------------------------------------------------------


def _public(pem: str) -> Ed25519PublicKey:
    return signing.load_public_key(pem)


def _minutes(delta: timedelta) -> str:
    minutes = abs(delta).total_seconds() / 60
    return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''}"


def _roles_text(roles: Iterable[Role]) -> str:
    ordered = [role.value for role in Role if role in set(roles)]
    return " or ".join(ordered)


def authorize(
    session: Session,
    request: SignedRequest,
    *,
    command: str,
    arguments: Mapping[str, Any],
    roles: Iterable[Role],
    now: datetime | None = None,
) -> Agent:
    """The acting agent, once `request` is proven to be theirs, fresh, unused and allowed.

    Checks, in order: the agent exists and is not revoked; the signature verifies with the
    key the agent holds now; the request is for `command` on exactly `arguments` (what the
    service will act on); it was signed within 5 minutes of now; the agent holds a grant
    in force of one of `roles`; its request id was never used. Then records the request
    and its signature in the audit log, in the caller's transaction, so the entry commits
    with the effect or not at all. Any failure is an `AuthorizationError` of one sentence
    and nothing is recorded.
    """
    allowed = frozenset(roles)
    now = (now or clock.now()).astimezone(UTC)
    name = request.agent
    # FOR SHARE: a revocation or key rotation of this agent waits for this act to commit,
    # and this act waits for one already under way, so neither sees half of the other
    agent = session.scalar(
        select(Agent)
        .where(Agent.name == name)
        .with_for_update(read=True)
        # grants and key are read below, fresh; the collections load only if a caller asks
        .options(lazyload(Agent.grants), lazyload(Agent.keys))
        .execution_options(populate_existing=True)
    )
    if agent is None:
        raise AuthorizationError(f"no agent is named {name!r}: the request is refused")
    if agent.revoked_at is not None:
        raise AuthorizationError(
            f"agent {name!r} was revoked on {agent.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M}"
            " UTC and can no longer act"
        )
    key = session.scalar(
        select(AgentKey).where(AgentKey.agent_id == agent.id, AgentKey.valid_to.is_(None))
    )
    if key is None or not signing.verify(
        _public(key.public_key), request.signed_bytes(), request.signature
    ):
        raise AuthorizationError(
            f"the request's signature does not verify with the key of agent {name!r}: it was"
            " altered, or signed by someone else, and only the holder of that key acts as them"
        )
    if request.command != command:
        raise AuthorizationError(
            f"the request was signed for {request.command!r}, not for {command!r}"
        )
    if canonical_arguments(request.arguments) != canonical_arguments(arguments):
        raise AuthorizationError(
            f"the signed arguments of {command!r} differ from those it would act on"
        )
    age = now - request.issued_at
    if abs(age) > FRESHNESS:
        when = "ago" if age > timedelta(0) else "ahead of the server's clock"
        raise AuthorizationError(
            f"the request was signed {_minutes(age)} {when}: requests are accepted for"
            f" {_minutes(FRESHNESS)}, so sign it again (and check the clock)"
        )
    grants = session.scalars(
        select(AgentGrant).where(
            AgentGrant.agent_id == agent.id, AgentGrant.status != GrantStatus.REVOKED
        )
    ).all()
    held = {Role(g.role) for g in grants if g.status == GrantStatus.ACTIVE}
    if not held & allowed:
        pending = {Role(g.role) for g in grants if g.status == GrantStatus.PENDING} & allowed
        if pending:
            raise AuthorizationError(
                f"the {_roles_text(pending)} grant of agent {name!r} awaits a second admin's"
                f" confirmation (`sika agent confirm {name}`)"
            )
        holds = _roles_text(held) or "no role"
        raise AuthorizationError(
            f"agent {name!r} holds {holds.replace(' or ', ', ')}; {command} needs"
            f" {_roles_text(allowed)}"
        )
    used = select(AuditEntry.id).where(AuditEntry.request_id == request.request_id)
    if session.scalar(used) is not None:
        raise AuthorizationError(f"request {request.request_id} was already used: sign a new one")
    seal = RequestSeal(request.request_id, request.issued_at, request.signature, key.fingerprint)
    try:
        with session.begin_nested():
            audit.record(session, agent, command, request.arguments, seal=seal, at=now)
    except IntegrityError as exc:
        # the same request accepted by a concurrent transaction that committed first
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == (
            "uq_audit_log_request_id"
        ):
            raise AuthorizationError(
                f"request {request.request_id} was already used: sign a new one"
            ) from None
        raise
    return agent


def signature_valid(
    session: Session, request: SignedRequest, *, at: datetime | None = None
) -> bool:
    """Whether `request` is signed with the key its agent held at `at` (default: now).

    For a request kept with what it produced (a batch's submit and approve requests),
    checked again later: pass the time it was accepted.
    """
    at = at or clock.now()
    agent_id = select(Agent.id).where(Agent.name == request.agent).scalar_subquery()
    # at the instant of a rotation both keys were valid; either signature stands
    keys = session.scalars(
        select(AgentKey).where(
            AgentKey.agent_id == agent_id,
            AgentKey.valid_from <= at,
            AgentKey.valid_to.is_(None) | (AgentKey.valid_to >= at),
        )
    )
    signed = request.signed_bytes()
    return any(signing.verify(_public(k.public_key), signed, request.signature) for k in keys)


def verify_recorded_signatures(session: Session) -> list[ChainBreak]:
    """Check every signed entry of the audit log against the key its agent held when the
    entry was recorded; an empty list means every signature stands."""
    keys = {key.fingerprint: key for key in session.scalars(select(AgentKey))}
    publics: dict[str, Ed25519PublicKey] = {}
    breaks: list[ChainBreak] = []
    for entry in audit.stream(session):
        seal = audit.seal_of(entry)
        if seal is None:
            continue
        key = keys.get(seal.key_fingerprint)
        if key is None or key.agent_id != entry.agent_id:
            reason = f"signed with key {seal.key_fingerprint}, which its agent never held"
            breaks.append(ChainBreak(entry.id, reason))
            continue
        if entry.at < key.valid_from or (key.valid_to is not None and entry.at > key.valid_to):
            breaks.append(
                ChainBreak(entry.id, f"signed with key {key.fingerprint} outside its validity")
            )
            continue
        public = publics.setdefault(key.fingerprint, _public(key.public_key))
        try:
            signed = request_bytes(
                entry.action,
                entry.arguments,
                entry.agent_name or "",
                seal.request_id,
                seal.issued_at,
            )
        except ValidationError:
            # stored arguments no request could carry (a float, say): altered after the fact
            breaks.append(ChainBreak(entry.id, "arguments could never have been signed"))
            continue
        if not signing.verify(public, signed, seal.signature):
            breaks.append(ChainBreak(entry.id, "signature does not verify"))
    return breaks


def verify_audit_log(session: Session) -> list[ChainBreak]:
    """The whole audit log checked: its hash chain, then every recorded signature."""
    breaks = audit.verify_chain(session) + verify_recorded_signatures(session)
    return sorted(breaks, key=lambda b: b.entry_id)
