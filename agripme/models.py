"""AgriPME tables: the farmer registry, personal data encrypted at rest.

Names, national IDs and phone numbers are stored only as AES-GCM ciphertexts
(`core.crypto`); equality and uniqueness go through keyed HMAC blind indexes.
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


class Region(enum.StrEnum):
    """Togo's five administrative regions, spelled as stored."""

    MARITIME = "Maritime"
    PLATEAUX = "Plateaux"
    CENTRALE = "Centrale"
    KARA = "Kara"
    SAVANES = "Savanes"


_REGIONS_SQL = ", ".join(f"'{region.value}'" for region in Region)

# ciphertext contexts (AES-GCM associated data) and blind-index contexts
NATIONAL_ID = "farmers.national_id"
FIRST_NAME = "farmers.first_name"
LAST_NAME = "farmers.last_name"
PHONE = "farmers.phone"
RECORD = "farmers.record"


class Farmer(Base):
    """A registered farmer; `area_m2` is the farm's area in whole square metres.

    Square metres are exact integer ten-thousandths of a hectare: `1,25` ha → 12,500.
    """

    __tablename__ = "farmers"
    __table_args__ = (
        CheckConstraint(f"region IN ({_REGIONS_SQL})", name="region_known"),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        CheckConstraint("operator IN ('flooz', 'tmoney')", name="operator_known"),
        CheckConstraint("octet_length(national_id_bidx) = 32", name="national_id_bidx_size"),
        CheckConstraint("octet_length(phone_bidx) = 32", name="phone_bidx_size"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    national_id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    national_id_bidx: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    first_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    last_name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_bidx: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    region: Mapped[str] = mapped_column(Text)
    prefecture: Mapped[str] = mapped_column(Text)
    canton: Mapped[str] = mapped_column(Text)
    village: Mapped[str] = mapped_column(Text)
    crop: Mapped[str] = mapped_column(Text)
    area_m2: Mapped[int] = mapped_column(BigInteger)
    operator: Mapped[str | None] = mapped_column(Text, nullable=True)
    # keyed digest of every field: an unchanged re-import is seen without decrypting
    record_digest: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Season(Base):
    """A season's rules (`agripme.seasons.SeasonRules`, stored as given) and its budget."""

    __tablename__ = "agripme_seasons"
    __table_args__ = (
        CheckConstraint("code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$'", name="code_format"),
        CheckConstraint("budget > 0", name="budget_positive"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    budget: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
