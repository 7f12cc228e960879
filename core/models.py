"""Tables owned by core (agents, audit log, outbox) are declared here."""

from __future__ import annotations

from core.db import Base

__all__ = ["Base"]
