"""The hash-chained, append-only audit log: appending an entry and checking the chain.

Each entry hashes its predecessor, its arguments and, for a signed request, the request id,
time, signature and key fingerprint, so none of them can change unseen. Who may sign
what, and whether a recorded signature still verifies, is `core.authority`'s business.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import clock
from core.models import Agent, AuditEntry

GENESIS = bytes(32)
# one writer at a time extends the chain; the unique prev_hash would refuse a fork anyway
_AUDIT_LOCK = 0x51CA_A0D1


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same arguments always hash the same."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def utc_text(at: datetime) -> str:
    """An instant as signed and hashed: UTC, ISO 8601, microseconds (PostgreSQL's precision)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RequestSeal:
    """What an audit entry keeps of the signed request it records.

    Attributes:
        request_id: the request's id, spent by this entry.
        issued_at: when the agent signed it.
        signature: base64 Ed25519 signature of the request.
        key_fingerprint: the key that signed it.
    """

    request_id: str
    issued_at: datetime
    signature: str
    key_fingerprint: str


def _micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def _entry_hash(
    prev: bytes,
    at: datetime,
    agent_name: str | None,
    action: str,
    arguments_sha256: bytes,
    seal: RequestSeal | None,
) -> bytes:
    body: dict[str, Any] = {
        "prev": prev.hex(),
        "at_us": _micros(at),
        "agent": agent_name,
        "action": action,
        "arguments_sha256": arguments_sha256.hex(),
    }
    # entries of unsigned acts hash exactly as before signed requests existed
    if seal is not None:
        body["request"] = {
            "id": seal.request_id,
            "issued_at": utc_text(seal.issued_at),
            "signature": seal.signature,
            "key": seal.key_fingerprint,
        }
    return hashlib.sha256(canonical_json(body)).digest()


def record(
    session: Session,
    agent: Agent | None,
    action: str,
    arguments: Mapping[str, Any],
    *,
    seal: RequestSeal | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the audit log, chained to the previous one.

    Call it in the transaction of the change it describes, so both commit or neither.
    Pass identifiers, not personal data: arguments are stored readable. Acts of agents go
    through `core.authority.authorize`, which calls this with the request's `seal`.
    """
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
    prev = session.scalar(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1))
    prev = bytes(prev) if prev is not None else GENESIS
    # store exactly what was hashed, so verification recomputes the same bytes
    stored = json.loads(canonical_json(dict(arguments)))
    arguments_sha256 = hashlib.sha256(canonical_json(stored)).digest()
    at = at or clock.now()
    agent_name = agent.name if agent is not None else None
    entry = AuditEntry(
        at=at,
        agent_id=agent.id if agent is not None else None,
        agent_name=agent_name,
        action=action,
        arguments=stored,
        arguments_sha256=arguments_sha256,
        prev_hash=prev,
        entry_hash=_entry_hash(prev, at, agent_name, action, arguments_sha256, seal),
        request_id=seal.request_id if seal else None,
        issued_at=seal.issued_at if seal else None,
        signature=seal.signature if seal else None,
        key_fingerprint=seal.key_fingerprint if seal else None,
    )
    session.add(entry)
    session.flush()
    return entry


def seal_of(entry: AuditEntry) -> RequestSeal | None:
    """The signed request an entry records, or None for an unsigned act."""
    if entry.request_id is None or entry.issued_at is None:
        return None
    return RequestSeal(
        entry.request_id, entry.issued_at, entry.signature or "", entry.key_fingerprint or ""
    )


def audit_entries(session: Session, limit: int | None = None) -> list[AuditEntry]:
    """The newest `limit` entries (all when None), oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(reversed(session.scalars(query).all()))


@dataclass(frozen=True)
class ChainBreak:
    """An audit entry that does not fit the chain, or whose signature does not verify.

    Attributes:
        entry_id: the entry's id.
        reason: what does not match.
    """

    entry_id: int
    reason: str


def stream(session: Session) -> Iterator[AuditEntry]:
    """Every entry, oldest first, a page at a time so a long log fits in memory."""
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
    for entry in stream(session):
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
            seal_of(entry),
        )
        if expected != bytes(entry.entry_hash):
            breaks.append(ChainBreak(entry.id, "entry altered"))
        prev = bytes(entry.entry_hash)
    return breaks
