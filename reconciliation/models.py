"""Reconciliation tables: runs, statement lines, breaks and exceptions."""

from __future__ import annotations
