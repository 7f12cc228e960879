"""Tables owned by core: agents with their role and public key, and the append-only audit log.

Rules live twice: CHECK constraints here, and in `migrations/sql/agents_*.sql` the
triggers that refuse any UPDATE, DELETE or TRUNCATE of the audit log.
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
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

__all__ = ["AGENT_NAME_PATTERN", "Agent", "AuditEntry", "Base", "Role"]

# lower-case so a name is also a safe key file name (agents/NAME.pem) on any file system
AGENT_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,62}$"


class Role(enum.StrEnum):
    """What an agent may do; one role per agent keeps separation of duties readable."""

    MAKER = "maker"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


_ROLES_SQL = ", ".join(f"'{role.value}'" for role in Role)


class Agent(Base):
    """A person or service acting on Sika, with an Ed25519 public key."""

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(f"role IN ({_ROLES_SQL})", name="role_known"),
        CheckConstraint(f"name ~ '{AGENT_NAME_PATTERN}'", name="name_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text, comment="PEM SubjectPublicKeyInfo, Ed25519")
    key_fingerprint: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEntry(Base):
    """One state-changing command: who, what, when, and a link in the hash chain."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("octet_length(arguments_sha256) = 32", name="arguments_hash_size"),
        CheckConstraint("octet_length(prev_hash) = 32", name="prev_hash_size"),
        CheckConstraint("octet_length(entry_hash) = 32", name="entry_hash_size"),
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
