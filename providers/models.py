"""providers tables: every operator callback as received, parsed or not, and when a
status query was last made on a callback's word.

Callback rows are the evidence behind a callback-driven status query; they are written
once and never updated. The body, which names farmers and their phones, is kept only
encrypted; the columns beside it hold what was parsed from it, nothing personal.
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
    # AES-GCM under the personal-data keyring (providers.receiver.CALLBACK_BODY); NULL
    # for callbacks received before bodies were encrypted, whose clear bodies were dropped
    body_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    sika_reference: Mapped[str | None] = mapped_column(String(128))
    operator_reference: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str | None] = mapped_column(String(16))
    parse_error: Mapped[str | None] = mapped_column(Text)


class CallbackHintQuery(Base):
    """When a status query was last made because a callback named `subject` (e.g.
    `payout_line:42`): callbacks naming it again within the interval add no query."""

    __tablename__ = "callback_hint_queries"

    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    queried_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
