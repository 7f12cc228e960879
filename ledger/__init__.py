"""The double-entry ledger: accounts, transfers, two-phase holds, limits and daily seals.

It knows francs and account codes, never farmers or operators.
"""
