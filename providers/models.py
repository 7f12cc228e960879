"""providers tables: every operator callback exactly as received, parsed or not.

Rows are the raw evidence behind a callback-driven status query; they are written once
and never updated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class ProviderCallback(Base):
    """One HTTP callback from an operator (or the SMS gateway), stored before parsing."""

    __tablename__ = "provider_callbacks"
    __table_args__ = (Index("ix_provider_callbacks_reference", "provider", "sika_reference"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    sika_reference: Mapped[str | None] = mapped_column(String(128))
    operator_reference: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str | None] = mapped_column(String(16))
    parse_error: Mapped[str | None] = mapped_column(Text)
