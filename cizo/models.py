"""CIZO tables: solar companies, plans, kits, payments, subsidies and tokens."""

from __future__ import annotations
