"""Tables owned by core: agents, their grants and key history, and the append-only audit log.

Rules live twice: CHECK constraints here, and in `migrations/sql/agents_*.sql` the
triggers that keep the audit log append-only, key history immutable, grant changes in
order and incompatible roles off one agent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base

__all__ = [
    "AGENT_NAME_PATTERN",
    "INCOMPATIBLE_ROLES",
    "REQUEST_ID_PATTERN",
    "TWO_ADMIN_ROLES",
    "Agent",
    "AgentGrant",
    "AgentKey",
    "AuditEntry",
    "Base",
    "GrantStatus",
    "Role",
]

# lower-case so a name is also a safe key file name (NAME.pem) on any file system
AGENT_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,62}$"
# uuid4 hex: what the CLI generates; anything else is not one of Sika's requests
REQUEST_ID_PATTERN = r"^[0-9a-f]{32}$"


class Role(enum.StrEnum):
    """A duty an agent is granted; an agent may hold several, never two that conflict."""

    MAKER = "maker"
    APPROVER = "approver"
    AUDITOR = "auditor"
    TREASURER = "treasurer"
    ADMIN = "admin"


class GrantStatus(enum.StrEnum):
    """Where a grant stands: awaiting a second admin, in force, or withdrawn for good."""

    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


# Separation of duties: no agent holds both roles of a pair. Admins manage people and keys,
# so they may neither prepare nor approve payments.
INCOMPATIBLE_ROLES: frozenset[frozenset[Role]] = frozenset(
    {
        frozenset({Role.MAKER, Role.APPROVER}),
        frozenset({Role.ADMIN, Role.MAKER}),
        frozenset({Role.ADMIN, Role.APPROVER}),
    }
)
# granting one of these needs a second admin's confirmation once two admins exist
TWO_ADMIN_ROLES: frozenset[Role] = frozenset({Role.APPROVER, Role.TREASURER, Role.ADMIN})

_ROLES_SQL = ", ".join(f"'{role.value}'" for role in Role)
_GRANT_STATUSES_SQL = ", ".join(f"'{status.value}'" for status in GrantStatus)


class Agent(Base):
    """A person or service acting on Sika: a name, grants of roles, and a history of keys."""

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(f"name ~ '{AGENT_NAME_PATTERN}'", name="name_format"),
        CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="revocation_whole"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the revoking admin; NULL with revoked_at NULL (the CHECK keeps them together)
    revoked_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id"), nullable=True
    )

    grants: Mapped[list[AgentGrant]] = relationship(
        back_populates="agent",
        foreign_keys="AgentGrant.agent_id",
        lazy="selectin",
        order_by="AgentGrant.id",
    )
    keys: Mapped[list[AgentKey]] = relationship(
        back_populates="agent",
        foreign_keys="AgentKey.agent_id",
        lazy="selectin",
        order_by="AgentKey.id",
    )

    @property
    def revoked(self) -> bool:
        """True once the agent was revoked: no role, no valid key, for good."""
        return self.revoked_at is not None

    @property
    def roles(self) -> frozenset[Role]:
        """The roles of the agent's grants in force (none once revoked)."""
        if self.revoked:
            return frozenset()
        return frozenset(Role(g.role) for g in self.grants if g.status == GrantStatus.ACTIVE)

    @property
    def current_key(self) -> AgentKey | None:
        """The key valid now, or None for a revoked agent."""
        return next((key for key in self.keys if key.valid_to is None), None)

    @property
    def public_key(self) -> str:
        """PEM of the key valid now ("" once revoked, which verifies nothing)."""
        key = self.current_key
        return key.public_key if key is not None else ""

    @property
    def key_fingerprint(self) -> str:
        """Fingerprint of the key valid now ("" once revoked)."""
        key = self.current_key
        return key.fingerprint if key is not None else ""


class AgentGrant(Base):
    """One role given to one agent: who granted it, who confirmed it, who revoked it."""

    __tablename__ = "agent_grants"
    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLES_SQL})", name="role_known"),
        CheckConstraint(f"status IN ({_GRANT_STATUSES_SQL})", name="status_known"),
        CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name="revoked_has_time"),
        CheckConstraint("status <> 'pending' OR confirmed_by IS NULL", name="pending_unconfirmed"),
        CheckConstraint(
            "(confirmed_by IS NULL) = (confirmed_at IS NULL)", name="confirmation_whole"
        ),
        CheckConstraint("granted_by IS NULL OR granted_by <> agent_id", name="not_self_granted"),
        CheckConstraint(
            "confirmed_by IS NULL OR (confirmed_by <> agent_id AND confirmed_by <> granted_by)",
            name="second_admin_confirms",
        ),
        # one live grant of a role per agent; revoked ones stay as history
        Index(
            "ux_agent_grants_live",
            "agent_id",
            "role",
            unique=True,
            postgresql_where=text("status <> 'revoked'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agents.id"))
    role: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    # NULL only for the first admin (bootstrap) and grants older than key history
    granted_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id"), nullable=True
    )
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    confirmed_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id"), nullable=True
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id"), nullable=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    agent: Mapped[Agent] = relationship(back_populates="grants", foreign_keys=[agent_id])


class AgentKey(Base):
    """One public key an agent held, and when: signatures are checked against the key
    valid when they were recorded."""

    __tablename__ = "agent_keys"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period_ordered"),
        # at most one key in force per agent
        Index(
            "ux_agent_keys_current",
            "agent_id",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("agents.id"))
    # unique across all agents and all time: one key names one agent, never two
    fingerprint: Mapped[str] = mapped_column(Text, unique=True)
    public_key: Mapped[str] = mapped_column(Text, comment="PEM SubjectPublicKeyInfo, Ed25519")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    added_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("agents.id"), nullable=True)

    agent: Mapped[Agent] = relationship(back_populates="keys", foreign_keys=[agent_id])


class AuditEntry(Base):
    """One command: who, what, when, the signed request it came from (if any), and a link
    in the hash chain, which covers the request and its signature too."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("octet_length(arguments_sha256) = 32", name="arguments_hash_size"),
        CheckConstraint("octet_length(prev_hash) = 32", name="prev_hash_size"),
        CheckConstraint("octet_length(entry_hash) = 32", name="entry_hash_size"),
        CheckConstraint(
            "num_nulls(request_id, issued_at, signature, key_fingerprint) IN (0, 4)",
            name="request_whole",
        ),
        CheckConstraint(f"request_id ~ '{REQUEST_ID_PATTERN}'", name="request_id_format"),
        CheckConstraint("request_id IS NULL OR agent_id IS NOT NULL", name="request_has_agent"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("agents.id"), nullable=True)
    agent_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB)
    arguments_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    # unique: two entries can never claim the same predecessor, so the chain cannot fork
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    # the signed request behind the entry; NULL for system acts (workers, migrations).
    # Unique: a request id is spent once, so a replayed request is refused by the database.
    request_id: Mapped[str | None] = mapped_column(Text, unique=True, nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True)
