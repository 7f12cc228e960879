"""The double-entry ledger: accounts, transfers, two-phase holds, limits and daily seals.

Other packages call `ledger.api` (types in `ledger.types`, seals in `ledger.seals`);
it knows francs and account codes, never farmers or operators.
"""
