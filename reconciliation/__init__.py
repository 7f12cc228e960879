"""Nightly reconciliation of operator statements against the ledger, breaks and reports."""
